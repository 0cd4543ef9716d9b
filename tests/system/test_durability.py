"""Crash and shutdown: every report that got a 2xx survives SIGKILL and SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import aiohttp

from tests.support.processes import http
from tests.support.service import Service

CONFIG = """
monitors:
  - {integration_key: crm, name: CRM}
"""


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
    service = Service(tmp_path, CONFIG)
    try:
        acknowledged: set[str] = set()
        stop = asyncio.Event()
        workers = [
            asyncio.create_task(_load(service.url, acknowledged, stop, w)) for w in range(16)
        ]
        while len(acknowledged) < 300:
            await asyncio.sleep(0.02)
            assert service.process.poll() is None
        service.process.send_signal(sig)
        code = await asyncio.to_thread(service.wait, 20)
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*workers)
        return acknowledged, code
    finally:
        service.stop()


def _stored(tmp_path: Path) -> tuple[set[str], float]:
    conn = sqlite3.connect(tmp_path / "im.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = {row[0] for row in conn.execute("SELECT integrationid FROM integration_monitor_batch")}
    runs = conn.execute(
        "SELECT value FROM monitor_counter WHERE kind = 'runs' AND name = 'ok'"
    ).fetchone()
    conn.close()
    return ids, runs[0] if runs else 0.0


def _restart_and_count(tmp_path: Path) -> float:
    service = Service(tmp_path, CONFIG)
    try:
        text = http("GET", f"{service.url}/metrics", allow_text=True)
    finally:
        service.stop()
    line = next(
        x for x in text.splitlines()
        if x.startswith('integration_monitor_runs_total{integration_key="crm",status="ok"}')
    )  # fmt: skip
    return float(line.split()[-1])


async def test_sigkill_loses_no_acknowledged_report(tmp_path: Path) -> None:
    acknowledged, code = await _kill_under_load(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    stored, runs = _stored(tmp_path)
    assert acknowledged <= stored, f"lost: {sorted(acknowledged - stored)[:10]}"
    assert runs == len(stored)  # counters and rows commit together: nothing half-written
    assert _restart_and_count(tmp_path) == len(stored)


async def test_sigterm_is_graceful_and_loses_nothing(tmp_path: Path) -> None:
    acknowledged, code = await _kill_under_load(tmp_path, signal.SIGTERM)
    assert code == 0
    stored, runs = _stored(tmp_path)
    assert acknowledged <= stored, f"lost: {sorted(acknowledged - stored)[:10]}"
    assert runs == len(stored)
    log = (tmp_path / "service.log").read_text()
    assert "every acknowledged report committed" in log
