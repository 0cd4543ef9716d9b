"""Driving load from separate processes: wrk (with post.lua) or the aiohttp load generator."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WRK_SCRIPT = Path(__file__).with_name("post.lua")


@dataclass(frozen=True)
class Load:
    """Reports sent to prefix + key + suffix for `keys` keys, round robin."""

    url: str
    method: str
    prefix: str
    suffix: str
    keys: int
    body: str
    content_type: str


@dataclass(frozen=True)
class LoadResult:
    ok: int  # 2xx answers
    failed: int  # other answers and socket errors
    seconds: float
    p50_ms: float
    p99_ms: float
    tool: str
    cpu_seconds: float = math.nan  # CPU time the server used meanwhile

    @property
    def cpu_us_per_report(self) -> float:
        return self.cpu_seconds / self.ok * 1e6 if self.ok else math.nan

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else math.nan


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _wrk(load: Load, clients: int, duration: float) -> LoadResult:
    seconds = max(1, round(duration))
    command = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s"]
    command += ["-s", str(WRK_SCRIPT), load.url, "--", load.method, load.prefix, load.suffix]
    command += [str(load.keys), load.body, load.content_type]
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH_JSON "))
    r = json.loads(line.removeprefix("BENCH_JSON "))
    failed = r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return LoadResult(
        ok=r["requests"] - r["non2xx"],
        failed=failed,
        seconds=r["duration_us"] / 1e6,
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        tool="wrk",
    )


def loadgen(mode: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one mode of bench.loadgen in its own process; return what it printed."""
    with background(mode, args, timeout) as result:
        return result()


@contextlib.contextmanager
def background(
    mode: str, args: dict[str, Any], timeout: float
) -> Iterator[Callable[[], dict[str, Any]]]:
    """Start a load generator process; the yielded function waits for it and returns its result."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen", mode, json.dumps(args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def result() -> dict[str, Any]:
        out, err = process.communicate(timeout=timeout)
        if process.returncode != 0:
            raise RuntimeError(f"bench.loadgen {mode} failed:\n{err[-3000:]}")
        parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return parsed

    try:
        yield result
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _python(load: Load, clients: int, duration: float) -> LoadResult:
    args = {
        "url": load.url,
        "method": load.method,
        "prefix": load.prefix,
        "suffix": load.suffix,
        "keys": load.keys,
        "key_format": "m{:05d}",
        "body": load.body,
        "content_type": load.content_type,
        "clients": clients,
        "duration": duration,
        "max_requests": int(duration * 100_000),
    }
    r = loadgen("post", args, duration + 120)
    return LoadResult(r["ok"], r["failed"], r["seconds"], r["p50_ms"], r["p99_ms"], "python")


def drive(load: Load, clients: int, duration: float, tool: str) -> LoadResult:
    """`clients` concurrent connections sending `load` for `duration` seconds."""
    return _wrk(load, clients, duration) if tool == "wrk" else _python(load, clients, duration)
