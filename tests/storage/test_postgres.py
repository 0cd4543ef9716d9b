"""PostgreSQL's own behaviour: migrations among replicas, and two apps on one database (the
real app twice, in this process) following each other, sharing Idempotency-Keys, evaluating
once and handing the lease over. The shared behaviour of both stores is in the other tests,
which run on both backends."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from exporter.app import open_store
from exporter.config import DatabaseConfig
from exporter.http import appkeys
from exporter.storage.postgres.store import PostgresStore, SchemaTooNew, migrations
from tests.conftest import Clock, Factory, postgresql_only, put_monitor
from tests.support.metrics_oracle import registry_of
from tests.support.postgres import PASSWORD, Cluster

Client = TestClient[web.Request, web.Application]
T0 = 1_796_000_000.0
FOLLOW_SECONDS = 5.0  # generous on a busy machine; the benchmark measures the real delay


async def _until(check: Callable[[], bool], seconds: float = FOLLOW_SECONDS) -> float:
    """Wait until `check()` holds; return how long it took. Fails after `seconds`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def _runs(client: Client, key: str, status: str = "ok") -> float | None:
    return registry_of(client.app).get_sample_value(
        "integration_monitor_runs_total", {"integration_key": key, "status": status}
    )


async def _replicas(make_client: Factory, **sections: object) -> tuple[Client, Client]:
    clock = Clock(T0)
    return await make_client(clock, **sections), await make_client(clock, **sections)


async def test_replicas_starting_together_migrate_once(postgres_cluster: Cluster) -> None:
    url = postgres_cluster.database()
    stores = [PostgresStore(url, "test") for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        conn = await asyncpg.connect(url)
        versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migration")]
        await conn.close()
        assert sorted(versions) == [n for n, _ in migrations()]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_schema_newer_than_this_version_is_refused(postgres_cluster: Cluster) -> None:
    url = postgres_cluster.database()
    store = PostgresStore(url, "test")
    await store.open()
    await store.close()
    conn = await asyncpg.connect(url)
    await conn.execute("INSERT INTO schema_migration (version) VALUES (999)")
    await conn.close()
    with pytest.raises(SchemaTooNew, match="version 999, newer than this version"):
        await PostgresStore(url, "test").open()


async def test_a_replica_waits_for_its_database_at_start(postgres_cluster: Cluster) -> None:
    url = postgres_cluster.database()
    name = url.rpartition("/")[2]
    postgres_cluster.sql(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
    store = PostgresStore(url, "test")
    opening = asyncio.create_task(store.open())
    await asyncio.sleep(1.0)
    assert not opening.done()
    postgres_cluster.sql(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
    async with asyncio.timeout(FOLLOW_SECONDS):
        await opening
    await store.close()


@postgresql_only
async def test_the_password_never_reaches_the_logs(
    make_client: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_client()
    assert PASSWORD in client.app[appkeys.CONFIG].database.url
    await put_monitor(client, "crm")
    await client.close()
    assert "127.0.0.1" in caplog.text and "<redacted>" in caplog.text
    assert PASSWORD not in caplog.text


@postgresql_only
async def test_a_report_on_one_replica_shows_on_the_other(make_client: Factory) -> None:
    a, b = await _replicas(make_client)
    await put_monitor(a, "crm", alert_interval=3600)
    await _until(lambda: b.app[appkeys.STATE].get("crm") is not None)
    response = await a.post("/api/v1/monitors/crm/batches", json={"logstatus": "error"})
    assert response.status == 201
    took = await _until(lambda: _runs(b, "crm", "error") == 1)
    print(f"followed in {took * 1000:.0f} ms")
    seen = await (await b.get("/api/v1/monitors/crm")).json()
    assert seen["alertstatus"] == "error" and seen["last_run"]["logstatus"] == "error"
    # Settings, and deletion, follow too; each replica's /metrics is the same.
    await a.patch("/api/v1/monitors/crm", json={"name": "CRM sync"})
    await _until(lambda: b.app[appkeys.STATE].monitors["crm"].monitor.settings.name == "CRM sync")
    metrics_a = await (await a.get("/metrics")).text()
    metrics_b = await (await b.get("/metrics")).text()
    assert _monitor_lines(metrics_a) == _monitor_lines(metrics_b)
    await a.delete("/api/v1/monitors/crm")
    await _until(lambda: b.app[appkeys.STATE].get("crm") is None)


def _monitor_lines(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if 'integration_key="crm"' in line)


@postgresql_only
async def test_a_retry_sent_to_another_replica_is_stored_once(make_client: Factory) -> None:
    a, b = await _replicas(make_client)
    await put_monitor(a, "crm")
    await _until(lambda: b.app[appkeys.STATE].get("crm") is not None)
    headers = {"Idempotency-Key": "run-42"}
    body = {"logstatus": "ok", "no_created": 3}
    answers = await asyncio.gather(
        *(
            replica.post("/api/v1/monitors/crm/batches", json=body, headers=headers)
            for replica in (a, b, a, b)
        )
    )
    ids = {(await r.json())["batch"]["id"] for r in answers}
    assert [r.status for r in answers].count(201) >= 1 and len(ids) == 1
    listing = await (await b.get("/api/v1/monitors/crm/batches")).json()
    assert len(listing["items"]) == 1
    await _until(lambda: _runs(a, "crm") == 1 and _runs(b, "crm") == 1)
    objects = {"integration_key": "crm", "operation": "created"}
    for replica in (a, b):
        value = registry_of(replica.app).get_sample_value(
            "integration_monitor_objects_total", objects
        )
        assert value == 3


@postgresql_only
async def test_a_change_of_status_is_recorded_once_however_many_replicas_evaluate(
    make_client: Factory,
) -> None:
    clock = Clock(T0)
    a, b = await make_client(clock), await make_client(clock)
    await put_monitor(a, "crm", alert_interval=60)
    await a.post("/api/v1/monitors/crm/batches", json={"logstatus": "ok"})
    await _until(lambda: _runs(b, "crm") == 1)
    clock.advance(3 * 3600)  # stale (the interval is in minutes), on both
    await asyncio.gather(a.app[appkeys.EVALUATOR].run_pass(), b.app[appkeys.EVALUATOR].run_pass())
    transitions = await (await a.get("/api/v1/monitors/crm/transitions")).json()
    assert [(t["old_status"], t["new_status"]) for t in transitions["items"]] == [
        ("ok", "error"),
        ("notcalculated", "ok"),
    ]


@postgresql_only
async def test_one_replica_leads_and_another_takes_over_when_it_goes(
    make_client: Factory,
) -> None:
    """(A replica killed without a word: tests/system/test_replicas.py.)"""
    a, b = await _replicas(make_client, database={"lease_seconds": 3})
    lease_a, lease_b = a.app[appkeys.LEASE], b.app[appkeys.LEASE]
    assert lease_a.held and not lease_b.held
    evaluations = b.app[appkeys.STATS].evaluations
    await a.close()  # a shutdown hands the lease over: the next renewal takes it
    took = await _until(lambda: lease_b.held, seconds=3 / 3 + FOLLOW_SECONDS)
    print(f"took over after {took:.1f} s")
    await _until(lambda: b.app[appkeys.STATS].evaluations > evaluations)  # woke for a pass


@postgresql_only
async def test_after_a_lost_connection_a_replica_reads_everything_again(
    make_client: Factory, database: dict[str, str]
) -> None:
    a, b = await _replicas(make_client)
    await put_monitor(a, "crm")
    await _until(lambda: b.app[appkeys.STATE].get("crm") is not None)
    conn = await asyncpg.connect(database["url"])
    try:
        # Cut b's listening connection (a's too: the test cannot tell them apart), and write
        # while nobody listens: that notice is lost; the resynchronisation finds the write.
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'integration-monitor listen'"
        )
        await a.post("/api/v1/monitors/crm/batches", json={"logstatus": "ok"})
        await _until(lambda: _runs(b, "crm") == 1)
        listening = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = 'integration-monitor listen'"
        )
        assert listening == 2
    finally:
        await conn.close()


@postgresql_only
async def test_a_database_that_is_gone_is_503_with_retry_after(
    make_client: Factory, database: dict[str, str]
) -> None:
    client = await make_client()
    await put_monitor(client, "crm")
    store = client.app[appkeys.STORE]
    assert isinstance(store, PostgresStore)
    conn = await asyncpg.connect(database["url"].rpartition("/")[0] + "/postgres")
    await conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name LIKE 'integration-monitor%'"
    )
    await conn.execute("ALTER DATABASE " + database["url"].rpartition("/")[2]
                       + " WITH ALLOW_CONNECTIONS false")  # fmt: skip
    try:
        response = await client.post("/api/v1/monitors/crm/batches", json={"logstatus": "ok"})
        assert response.status == 503 and response.headers["Retry-After"]
        assert (await response.json())["error"]["code"] == "unavailable"
        assert (await client.get("/readyz")).status == 503
    finally:
        await conn.execute("ALTER DATABASE " + database["url"].rpartition("/")[2]
                           + " WITH ALLOW_CONNECTIONS true")  # fmt: skip
        await conn.close()
    response = await client.post("/api/v1/monitors/crm/batches", json={"logstatus": "ok"})
    assert response.status == 201
    assert (await client.get("/readyz")).status == 200


def test_the_store_is_chosen_by_the_url() -> None:
    assert isinstance(open_store(DatabaseConfig(url="postgresql://u@h/db")), PostgresStore)


@postgresql_only
async def test_both_replicas_busy_on_one_monitor_agree_and_never_count_back(
    make_client: Factory,
) -> None:
    """Reports to one monitor through both replicas at once: each replica's follower reads
    the monitor while its own writes go on. Its counters never go back (Prometheus would take
    that for a reset), and once the reports stop both show every run."""
    a, b = await _replicas(make_client)
    await put_monitor(a, "crm")
    await _until(lambda: b.app[appkeys.STATE].get("crm") is not None)
    seen: dict[str, list[float]] = {"a": [], "b": []}
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            for name, replica in (("a", a), ("b", b)):
                seen[name].append(_logs(replica))
            await asyncio.sleep(0.001)

    async def send(replica: Client, count: int) -> None:
        for _ in range(count):
            response = await replica.post("/api/v1/monitors/crm/logs", json={"message": "x"})
            assert response.status == 201

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(send(replica, 50) for replica in (a, b, a, b)))
    done.set()
    await watcher
    for name, values in seen.items():
        assert values == sorted(values), f"replica {name} counted back"
    assert max(seen["b"]) > 0
    for replica in (a, b):
        await _until(lambda replica=replica: _logs(replica) == 200)


def _logs(client: Client) -> float:
    labels = {"integration_key": "crm", "status": "ok"}
    value = registry_of(client.app).get_sample_value("integration_monitor_logs_total", labels)
    return value or 0.0
