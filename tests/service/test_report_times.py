"""Report times: one odd starttime or endtime never hides a later failure, pins a metric or
breaks a page, whether it arrives now or already sits in an old database."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from exporter.core.times import iso
from exporter.storage.sqlite.store import apply_migrations
from tests.conftest import Clock, Factory, put_monitor, sqlite_only
from tests.support.metrics_oracle import registry_of

Client = TestClient[web.Request, web.Application]
NOW = 1_796_000_000.0  # the test clock: 2026-11-30
Y2100 = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
YEAR_10000 = datetime.fromisoformat("9999-12-31T23:59:59-01:00").timestamp()
YEAR_0 = datetime.fromisoformat("0001-01-01T00:00:00+01:00").timestamp()


async def _post(client: Client, key: str, body: dict[str, Any]) -> Any:
    return await client.post(f"/api/v1/monitors/{key}/batches", json=body)


async def _error_field(response: Any) -> tuple[int, str, str]:
    body = await response.json()
    return response.status, body["error"]["field"], body["error"]["message"]


async def test_a_future_starttime_is_refused_naming_the_field_and_range(
    make_client: Factory,
) -> None:
    client = await make_client(Clock(NOW))
    await put_monitor(client, "crm")
    response = await _post(client, "crm", {"logstatus": "ok", "starttime": "2100-01-01T00:00:00Z"})
    status, field, message = await _error_field(response)
    assert (status, field) == (422, "starttime")
    assert "2000-01-01T00:00:00.000Z" in message and iso(NOW + 300) in message
    too_late = {"logstatus": "ok", "endtime": iso(NOW + 301)}
    status, field, _ = await _error_field(await _post(client, "crm", too_late))
    assert (status, field) == (422, "endtime")
    for odd in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "1999-12-31T23:59Z"):
        status, field, _ = await _error_field(await _post(client, "crm", {"starttime": odd}))
        assert (status, field) == (422, "starttime"), odd
    started = await _post(client, "crm", {})
    batch_id = (await started.json())["batch"]["id"]
    late_end = await client.patch(f"/api/v1/batches/{batch_id}", json={"endtime": iso(Y2100)})
    status, field, _ = await _error_field(late_end)
    assert (status, field) == (422, "endtime")


async def test_clock_skew_allowance_and_backfill(make_client: Factory) -> None:
    client = await make_client(Clock(NOW), reports={"max_clock_skew_seconds": 60})
    await put_monitor(client, "crm")
    ahead = await _post(client, "crm", {"logstatus": "ok", "starttime": iso(NOW + 59)})
    assert ahead.status == 201
    status, _, message = await _error_field(
        await _post(client, "crm", {"logstatus": "ok", "starttime": iso(NOW + 61)})
    )
    assert status == 422 and "60 s of clock skew" in message
    old = {
        "logstatus": "error",
        "starttime": "2020-05-01T10:00:00Z",
        "endtime": "2020-05-01T11:00:00Z",
    }
    assert (await _post(client, "crm", old)).status == 201
    monitor = await (await client.get("/api/v1/monitors/crm")).json()
    assert monitor["alertstatus"] == "ok"  # a backfilled run is history, not the latest run
    assert monitor["last_run"]["starttime"] == iso(NOW + 59)


async def test_a_success_reported_by_a_fast_clock_never_lies_ahead(make_client: Factory) -> None:
    client = await make_client(Clock(NOW))
    await put_monitor(client, "crm")
    body = {"logstatus": "ok", "starttime": iso(NOW + 100), "endtime": iso(NOW + 200)}
    assert (await _post(client, "crm", body)).status == 201
    value = registry_of(client.app).get_sample_value(
        "integration_monitor_last_success_timestamp_seconds", {"integration_key": "crm"}
    )
    assert value == NOW


def _legacy_database(path: Path) -> None:
    """A database as the service wrote it before report times were bounded."""
    conn = sqlite3.connect(path, isolation_level=None)
    apply_migrations(conn)
    conn.execute(
        "INSERT INTO integration_monitor (id, integration_key, name, type, created_at, "
        "updated_at) VALUES (1, 'crm', 'CRM', 'batch', ?, ?)",
        (NOW - 7200, NOW - 7200),
    )
    received = NOW - 3600
    for start, end, status in (
        (NOW - 5000, NOW - 4000, "ok"),
        (Y2100, Y2100 + 60, "ok"),
        (YEAR_10000, None, "running"),
        (YEAR_0, YEAR_0 + 1, "ok"),
    ):
        conn.execute(
            "INSERT INTO integration_monitor_batch (monitor_id, logstatus, starttime, endtime, "
            "duration, created_at, updated_at) VALUES (1, ?, ?, ?, ?, ?, ?)",
            (status, start, end, None if end is None else end - start, received, received),
        )
    conn.execute(
        "INSERT INTO monitor_counter (monitor_id, kind, name, value) "
        "VALUES (1, 'latest', 'success', ?)",
        (Y2100 + 60,),
    )
    conn.close()


@sqlite_only
async def test_an_old_database_with_impossible_times_keeps_working(
    make_client: Factory, tmp_path: Path
) -> None:
    _legacy_database(tmp_path / "im.db")
    client = await make_client(Clock(NOW))
    for path in ("/", "/ui/rows", "/monitors/crm", "/badge/crm.svg", "/metrics"):
        response = await client.get(path)
        assert response.status == 200, (path, await response.text())
    listing = await (await client.get("/api/v1/monitors/crm/batches")).json()
    assert {b["starttime"][:4] for b in listing["items"]} == {"9999", "2100", "2026", "0001"}
    monitor = await (await client.get("/api/v1/monitors/crm")).json()
    assert monitor["last_run"]["starttime"] == iso(NOW - 5000)  # the impossible ones are ignored
    registry = registry_of(client.app)
    success = registry.get_sample_value(
        "integration_monitor_last_success_timestamp_seconds", {"integration_key": "crm"}
    )
    assert success is not None and success <= NOW
    failed = await _post(client, "crm", {"logstatus": "error", "errormsg": "CRM down"})
    assert failed.status == 201
    monitor = await (await client.get("/api/v1/monitors/crm")).json()
    assert monitor["alertstatus"] == "error" and "CRM down" in monitor["alerttext"]
    # Touching an impossible batch again does not make it the latest either.
    [future] = [b for b in listing["items"] if b["starttime"].startswith("2100")]
    assert (await client.patch(f"/api/v1/batches/{future['id']}", json={})).status == 200
    monitor = await (await client.get("/api/v1/monitors/crm")).json()
    assert monitor["alertstatus"] == "error"
