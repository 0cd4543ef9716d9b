"""Instructions per report, counted by callgrind: a CPU cost that noise does not move.

On a shared machine the CPU time per report of the same code varies by a factor of two from
one run to the next; the number of instructions the process executes for the same requests does
not. This runs the real app (`create_app`, a real TCP socket, SQLite with `synchronous: FULL`)
under `valgrind --tool=callgrind` twice per tree, with few and with many reports sent one after
another on one keep-alive connection, and divides the difference by the difference in reports:
start-up and shutdown cancel out. Client and server share the process, but the client is the
same loop of raw socket writes for every tree compared.

    python -m bench.instructions                                  # the working tree
    python -m bench.instructions /tmp/before /tmp/after           # trees from `git archive`

Each tree is a folder holding an `exporter/` package (put first on PYTHONPATH). About half a
minute per tree and size under valgrind; the trees run two at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BODY = b'{"logstatus":"ok","no_created":1}'
MONITORS = 50
FEW = 100
ROOT = Path(__file__).resolve().parent.parent


async def _send_reports(count: int) -> None:
    """The measured work: `count` batch reports through the real app, one after another."""
    from aiohttp import web

    from exporter.app import create_app
    from exporter.config import parse_config

    folder = tempfile.mkdtemp(prefix="im-instructions-")
    monitors = [{"integration_key": f"m{i}", "name": f"m{i}"} for i in range(MONITORS)]
    config = parse_config({"database": {"path": f"{folder}/i.db"}, "monitors": monitors}, env={})
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in range(count):
        head = (
            f"POST /api/v1/monitors/m{i % MONITORS}/batches HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
        )
        writer.write(head.encode() + BODY)
        answer = await reader.readuntil(b"\r\n\r\n")
        if not answer.startswith(b"HTTP/1.1 201"):
            raise SystemExit(f"report {i}: {answer[:80]!r}")
        length = int(re.search(rb"Content-Length: (\d+)", answer).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
    writer.close()
    await runner.cleanup()
    print(Path(sys.modules["exporter"].__file__ or "").parent)


def _count(tree: Path, reports: int) -> int:
    """Instructions of one process that sends `reports` reports (callgrind's total)."""
    # The tree first, then this checkout for `bench`; run from elsewhere, so that the current
    # folder (first on sys.path with -m) holds no exporter of its own.
    env = {**os.environ, "PYTHONPATH": f"{tree.resolve()}{os.pathsep}{ROOT}"}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
        done = subprocess.run(
            [*command, "-m", "bench.instructions", "--child", str(reports)],
            capture_output=True,
            text=True,
            env=env,
            cwd=folder,
            check=False,
            timeout=1800,
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or found is None:
            raise SystemExit(f"callgrind run failed:\n{done.stderr[-2000:]}")
        measured = done.stdout.strip()
        if not Path(measured).is_relative_to(tree.resolve()):
            raise SystemExit(f"measured {measured}, not the exporter of {tree}")
        return int(found.group(1))


def per_report(tree: Path, reports: int) -> float:
    """Instructions per report: the slope between FEW and FEW + `reports` reports."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        few, many = pool.map(lambda n: _count(tree, n), (FEW, FEW + reports))
    return (many - few) / reports


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("trees", nargs="*", type=Path, help="folders holding exporter/")
    parser.add_argument("--reports", type=int, default=500, help="reports measured (500)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        asyncio.run(_send_reports(args.child))
        return 0
    trees: list[Path] = list(args.trees) or [ROOT]
    results = [(tree, per_report(tree, args.reports)) for tree in trees]
    base = results[0][1]
    for index, (tree, value) in enumerate(results):
        change = f"{(value / base - 1) * 100:+.1f} %" if index else ""
        print(f"{value / 1e6:.3f} M instructions per report  {change:>8}  {tree}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
