"""`python -m bench`: run the benchmark scenarios and print the results table."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import yaml

from bench.load import wrk_available
from bench.plan import FULL, SCENARIOS, SMOKE
from bench.processes import ServiceOptions, prometheus_binary, pushgateway_binary
from bench.replicas import available as replicas_available
from bench.replicas import replicas
from bench.results import table, write_json
from bench.scenarios import SCENARIO_FUNCTIONS, Bench


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the service (each scenario on its own process and database) "
        "and print a table with PASS/MISS against the targets.",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, 1 s loads: checks the suite runs"
    )
    parser.add_argument("--duration", type=float, help="seconds of each ingest load (default 30)")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios (default: all of {','.join(SCENARIOS)})",
    )
    parser.add_argument("--clients", type=int, help="concurrent connections (default 32)")
    parser.add_argument(
        "--load-tool",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="report load generator: wrk when installed (auto), or the aiohttp one",
    )
    parser.add_argument(
        "--database-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="service config database.NAME, e.g. synchronous=NORMAL or max_group_size=64",
    )
    parser.add_argument(
        "--service-python",
        default=sys.executable,
        help="interpreter that runs `-m exporter serve` (e.g. a scratch venv to compare)",
    )
    parser.add_argument(
        "--exporter",
        type=Path,
        help="run the service from this source tree (put first on PYTHONPATH), e.g. a "
        "snapshot of a commit or a scratch copy with a change to compare",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record each service process with py-spy into DIR/<database name>.txt (collapsed "
        "stacks, for speedscope or flamegraph.pl); its sampling lowers the numbers a little",
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (logs, dbs)")
    return parser


def _database_options(pairs: Sequence[str]) -> dict[str, object]:
    options: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--database-option {pair!r}: expected NAME=VALUE")
        options[name] = yaml.safe_load(value)
    return options


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def _measured_code(args: argparse.Namespace) -> str:
    """Which exporter the service runs: its folder, and the commit when it is a checkout."""
    env = dict(os.environ)
    if args.exporter:
        env["PYTHONPATH"] = str(args.exporter)
    found = subprocess.run(
        [args.service_python, "-c", "import exporter, sys; print(exporter.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
        env=env,
    ).stdout.strip()
    package = Path(found).parent
    commit = _git(package, "rev-parse", "--short", "HEAD")
    if not commit:
        return str(package)
    changed = _git(package, "status", "--porcelain", "--", ".")
    return f"{package} at {commit}{' with uncommitted changes' if changed else ''}"


def _about(args: argparse.Namespace, tool: str, options: dict[str, object]) -> dict[str, str]:
    service_python = subprocess.run(
        [args.service_python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return {
        "exporter": _measured_code(args),
        "date": datetime.date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, {_cpu_model()}, {platform.system()}",
        "python": service_python,
        "sqlite": sqlite3.sqlite_version,
        "load tool": tool,
        "database options": ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults",
        "sizes": "smoke" if args.smoke else "full",
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = (SMOKE if args.smoke else FULL).with_duration(args.duration)
    if args.clients:
        sizes = replace(sizes, clients=args.clients)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"--only: unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    if "pushgateway" in chosen and pushgateway_binary() is None:
        print("pushgateway: prometheus-pushgateway is not installed; skipped", file=sys.stderr)
        chosen.remove("pushgateway")
    if "prometheus" in chosen and prometheus_binary() is None:
        print("prometheus: the prometheus binary is not installed; skipped", file=sys.stderr)
        chosen.remove("prometheus")
    missing = replicas_available()
    if "replicas" in chosen and missing:
        print(f"replicas: {missing}; skipped", file=sys.stderr)
        chosen.remove("replicas")
    tool = args.load_tool
    if tool == "auto":
        tool = "wrk" if wrk_available() else "python"
    options = _database_options(args.database_option)
    about = _about(args, tool, options)
    with tempfile.TemporaryDirectory(prefix="im-bench-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        service = ServiceOptions(args.service_python, args.exporter, options)
        bench = Bench(sizes, workdir, service, tool, args.profile)
        started = time.perf_counter()
        for name in SCENARIOS:
            if name in chosen:
                print(f"{name}:", flush=True)
                {**SCENARIO_FUNCTIONS, "replicas": replicas}[name](bench)
    about["wall time"] = f"{time.perf_counter() - started:.0f} s"
    print()
    print("; ".join(f"{k}: {v}" for k, v in about.items()))
    print()
    print(table(bench.rows))
    if args.json:
        write_json(bench.rows, args.json, about)
    return 0


if __name__ == "__main__":
    sys.exit(main())
