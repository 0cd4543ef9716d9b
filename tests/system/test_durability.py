"""Crash and shutdown: every report that got a 2xx survives SIGKILL and SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.support.service import free_port

CONFIG = """
monitors:
  - {integration_key: crm, name: CRM}
"""


def _start(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    command = [sys.executable, "-m", "exporter", "serve", "--config", str(config)]
    command += ["--port", str(port), "--database", str(tmp_path / "im.db")]
    with open(tmp_path / "service.log", "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)


async def _wait_ready(url: str, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < end:
            try:
                async with session.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("service did not become ready")


async def _load(url: str, acknowledged: set[str], stop: asyncio.Event, worker: int) -> None:
    """Post reports until `stop`; remember the ids of those answered 201."""
    n = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while not stop.is_set() and n < 5000:
            ident = f"w{worker}-{n}"
            n += 1
            body = {"logstatus": "ok", "integrationid": ident, "no_created": 1}
            try:
                async with session.post(f"{url}/api/v1/monitors/crm/batches", json=body) as r:
                    if r.status == 201:
                        acknowledged.add(ident)
            except (TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.01)


async def _kill_under_load(tmp_path: Path, sig: signal.Signals) -> tuple[set[str], int]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = _start(tmp_path, port)
    try:
        await _wait_ready(url)
        acknowledged: set[str] = set()
        stop = asyncio.Event()
        workers = [asyncio.create_task(_load(url, acknowledged, stop, w)) for w in range(16)]
        while len(acknowledged) < 300:
            await asyncio.sleep(0.02)
            assert process.poll() is None
        os.kill(process.pid, sig)
        code = await asyncio.to_thread(process.wait, 20)
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*workers)
        return acknowledged, code
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _stored(tmp_path: Path) -> tuple[set[str], float]:
    conn = sqlite3.connect(tmp_path / "im.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = {row[0] for row in conn.execute("SELECT integrationid FROM integration_monitor_batch")}
    runs = conn.execute(
        "SELECT value FROM monitor_counter WHERE kind = 'runs' AND name = 'ok'"
    ).fetchone()
    conn.close()
    return ids, runs[0] if runs else 0.0


async def _restart_and_count(tmp_path: Path) -> float:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = _start(tmp_path, port)
    try:
        await _wait_ready(url)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/metrics") as response,
        ):
            text = await response.text()
        line = next(
            x for x in text.splitlines()
            if x.startswith('integration_monitor_runs_total{key="crm",status="ok"}')
        )  # fmt: skip
        return float(line.split()[-1])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)


async def test_sigkill_loses_no_acknowledged_report(tmp_path: Path) -> None:
    acknowledged, code = await _kill_under_load(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    stored, runs = _stored(tmp_path)
    assert acknowledged <= stored, f"lost: {sorted(acknowledged - stored)[:10]}"
    assert runs == len(stored)  # counters and rows commit together: nothing half-written
    assert await _restart_and_count(tmp_path) == len(stored)


async def test_sigterm_is_graceful_and_loses_nothing(tmp_path: Path) -> None:
    acknowledged, code = await _kill_under_load(tmp_path, signal.SIGTERM)
    assert code == 0
    stored, runs = _stored(tmp_path)
    assert acknowledged <= stored, f"lost: {sorted(acknowledged - stored)[:10]}"
    assert runs == len(stored)
    log = (tmp_path / "service.log").read_text()
    assert "every acknowledged report committed" in log
