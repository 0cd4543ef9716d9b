"""The store: migrations, group commit, retention that keeps counters, restart."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from exporter.app import open_store
from exporter.config import DatabaseConfig
from exporter.core.errors import MonitorNotFound, Unavailable
from exporter.core.records import MonitorSettings, NewBatch, Transition, correction_of
from exporter.storage.interface import Store
from exporter.storage.sqlite.store import (
    CORRECTIONS_KEPT,
    SqliteStore,
    apply_migrations,
    migrations,
)
from tests.conftest import Clock, Factory, put_monitor
from tests.support.metrics_oracle import registry_of

T0 = 1_796_000_000.0


@pytest.fixture
async def store(database: dict[str, str]) -> AsyncIterator[Store]:
    """An open store of each backend on a fresh database; closed at the end."""
    opened = open_store(DatabaseConfig.model_validate(database))
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An open SQLite store on a fresh file, for its own behaviour (group commit)."""
    opened = SqliteStore(str(tmp_path / "s.db"))
    await opened.open()
    yield opened
    await opened.close()


def _batch(status: str = "ok", start: float = T0, created: int = 1) -> NewBatch:
    return NewBatch(status, "", start, start + 10, 10.0, created, 0, 0, "", "")


RUN = [("runs", "ok", 1.0)]


def test_migrations_are_numbered_and_versioned(tmp_path: Path) -> None:
    numbers = [n for n, _ in migrations()]
    assert numbers == sorted(set(numbers)) and numbers[0] == 1
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    assert apply_migrations(conn) == numbers
    assert conn.execute("PRAGMA user_version").fetchone()[0] == numbers[-1]
    assert apply_migrations(conn) == []


async def test_existing_database_keeps_its_data_across_start(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path, isolation_level=None)
    apply_migrations(conn)
    conn.execute(
        "INSERT INTO integration_monitor (integration_key, name, type, created_at, updated_at) "
        "VALUES ('legacy', 'Legacy', 'batch', 1, 1)"
    )
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        [monitor] = await store.list_monitors()
        assert monitor.integration_key == "legacy" and monitor.settings.name == "Legacy"
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    finally:
        await store.close()


async def test_concurrent_writes_share_commits(store: Store) -> None:
    monitor, _ = await store.put_monitor("crm", MonitorSettings("CRM"), T0)
    before = store.stats()
    await asyncio.gather(
        *(
            store.create_batch(monitor.id, "crm", _batch(start=T0 + i), T0, (), None, RUN)
            for i in range(200)
        )
    )
    after = store.stats()
    assert after.writes - before.writes == 200
    assert after.commits - before.commits < 200 / 4
    rows = await store.list_batches(monitor.id, 500, None)
    assert len(rows) == 200
    [loaded] = await store.load_runs(["ok"])
    assert loaded.counters == [("runs", "ok", 200.0)]


async def test_a_failing_write_does_not_sink_its_group(store: Store) -> None:
    monitor, _ = await store.put_monitor("crm", MonitorSettings("CRM"), T0)
    good = store.create_batch(monitor.id, "crm", _batch(), T0, (), None, RUN)
    bad = store.create_batch(9999, "gone", _batch(), T0, (), None, RUN)  # no such monitor
    later = store.create_batch(monitor.id, "crm", _batch(), T0, (), None, RUN)
    results = await asyncio.gather(good, bad, later, return_exceptions=True)
    assert not isinstance(results[0], BaseException)
    assert not isinstance(results[2], BaseException)
    assert isinstance(results[1], MonitorNotFound)
    assert len(await store.list_batches(monitor.id, 10, None)) == 2


async def test_close_commits_what_is_queued(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    store = SqliteStore(path)
    await store.open()
    monitor, _ = await store.put_monitor("crm", MonitorSettings("CRM"), T0)
    pending = [
        asyncio.ensure_future(store.create_batch(monitor.id, "crm", _batch(), T0, (), None, RUN))
        for _ in range(50)
    ]
    await asyncio.sleep(0)
    await store.close()
    assert all(task.done() and not task.exception() for task in pending)
    count = sqlite3.connect(path).execute("SELECT count(*) FROM integration_monitor_batch")
    assert count.fetchone()[0] == 50


async def test_retention_prunes_old_runs_but_keeps_counters_and_latest(
    make_client: Factory,
) -> None:
    clock = Clock(T0)
    client = await make_client(clock)
    await put_monitor(client, "crm")
    for _ in range(5):
        response = await client.post(
            "/api/v1/monitors/crm/batches", json={"logstatus": "ok", "no_created": 2}
        )
        assert response.status == 201
        clock.advance(3600)
    await client.post("/api/v1/monitors/crm/logs", json={"message": "old"})
    from exporter.http import appkeys

    app = client.app
    registry = registry_of(app)
    runs = {"integration_key": "crm", "status": "ok"}
    before = registry.get_sample_value("integration_monitor_runs_total", runs)
    objects = {"integration_key": "crm", "operation": "created"}
    assert before == 5
    deleted = await app[appkeys.STORE].prune(cutoff=clock.now + 1, idempotency_cutoff=clock.now)
    assert deleted == 4  # the latest batch and the latest log stay
    listing = await (await client.get("/api/v1/monitors/crm/batches")).json()
    assert len(listing["items"]) == 1
    assert registry.get_sample_value("integration_monitor_runs_total", runs) == 5
    assert registry.get_sample_value("integration_monitor_objects_total", objects) == 10
    rows = await app[appkeys.STORE].load_runs(["ok"])
    counters = {(k, n): v for k, n, v in rows[0].counters}
    assert counters[("runs", "ok")] == 5 and counters[("objects", "created")] == 10


async def test_counters_merge_per_group_and_skip_a_monitor_deleted_in_it(
    sqlite_store: Store,
) -> None:
    keep, _ = await sqlite_store.put_monitor("keep", MonitorSettings("Keep"), T0)
    gone, _ = await sqlite_store.put_monitor("gone", MonitorSettings("Gone"), T0)
    writes = [
        sqlite_store.create_batch(keep.id, "keep", _batch(), T0, (), None, RUN),
        sqlite_store.create_batch(keep.id, "keep", _batch(), T0, (), None, RUN),
        sqlite_store.create_batch(gone.id, "gone", _batch(), T0, (), None, RUN),
        sqlite_store.delete_monitor("gone"),
    ]
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)]
    rows = {r.monitor.integration_key: r.counters for r in await sqlite_store.load_runs(["ok"])}
    assert rows == {"keep": [("runs", "ok", 2.0)]}


async def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    path = str(tmp_path / "v1.db")
    conn = sqlite3.connect(path, isolation_level=None)
    number, script = migrations()[0]
    conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    conn.execute(
        "INSERT INTO integration_monitor (integration_key, name, type, created_at, updated_at) "
        "VALUES ('crm', 'CRM', 'batch', 1, 1)"
    )
    conn.execute(
        "INSERT INTO integration_monitor_batch (monitor_id, logstatus, starttime, created_at, "
        "updated_at) VALUES (1, 'ok', 1, 1, 1)"
    )
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        assert len(await store.list_batches(1, 10, None)) == 1
    finally:
        await store.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == migrations()[-1][0]
    names = {r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "batch_by_created" not in names and "batch_by_monitor_start" in names
    check.close()


async def test_a_version_3_database_gains_schedules_in_place(tmp_path: Path) -> None:
    """Migration 0004: monitors from before schedules keep their interval and have none."""
    path = str(tmp_path / "v3.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in migrations():
        if number <= 3:
            conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    conn.execute(
        "INSERT INTO integration_monitor (integration_key, name, type, alert_interval, "
        "created_at, updated_at) VALUES ('crm', 'CRM', 'batch', 60, 1, 1)"
    )
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        [old] = await store.list_monitors()
        assert old.settings == MonitorSettings("CRM", alert_interval=60)
        assert (old.settings.schedule, old.settings.timezone) == ("", "UTC")
        assert (old.settings.grace, old.settings.max_runtime) == (10, 0)
        nightly = MonitorSettings(
            "Backup", schedule="0 2 * * *", timezone="Europe/Stockholm", grace=5, max_runtime=90
        )
        stored, _ = await store.put_monitor("backup", nightly, T0)
        assert stored.settings == nightly
        changed = await store.patch_monitor("backup", {"max_runtime": 0, "grace": 30}, T0)
        assert changed.settings == replace(nightly, max_runtime=0, grace=30)
    finally:
        await store.close()


async def test_a_group_rolled_back_leaves_no_counter_increment_behind(sqlite_store: Store) -> None:
    """A report whose group failed was never stored: the next commit must not count it."""
    monitor, _ = await sqlite_store.put_monitor("crm", MonitorSettings("CRM"), T0)

    def sabotage(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")  # as SQLite does on its own after some errors

    lost, broken = await asyncio.gather(
        sqlite_store.create_batch(monitor.id, "crm", _batch(), T0, (), None, RUN),
        sqlite_store.writer.run(sabotage),
        return_exceptions=True,
    )
    assert isinstance(lost, Unavailable) and isinstance(broken, sqlite3.Error)
    await sqlite_store.create_batch(monitor.id, "crm", _batch(), T0, (), None, RUN)
    [row] = await sqlite_store.load_runs(["ok"])
    assert len(await sqlite_store.list_batches(monitor.id, 10, None)) == 1
    assert row.counters == [("runs", "ok", 1.0)]


async def test_retention_keeps_the_newest_transitions_of_each_monitor(store: Store) -> None:
    busy, _ = await store.put_monitor("busy", MonitorSettings("Busy"), T0)
    calm, _ = await store.put_monitor("calm", MonitorSettings("Calm"), T0)
    for i in range(130):  # each a real change of the stored status, on any backend
        old, new = ("ok", "error") if i % 2 else ("error", "ok")
        if i == 0:
            old = "notcalculated"
        await store.save_evaluations(
            [(busy.id, new, "", T0 + i)], [Transition(busy.id, old, new, "", T0 + i)]
        )
    await store.save_evaluations(
        [(calm.id, "ok", "", T0)], [Transition(calm.id, "notcalculated", "ok", "", T0)]
    )
    await store.prune(T0 - 1, T0 - 1, transitions_kept=50, chunk=7)
    kept = await store.list_transitions(busy.id, 1000)
    assert len(kept) == 50 and [t.at for t in kept] == [T0 + i for i in range(129, 79, -1)]
    assert len(await store.list_transitions(calm.id, 1000)) == 1


async def test_corrections_of_one_batch_are_bounded(store: Store) -> None:
    """A job that re-reports a finished batch for ever does not grow the table for ever."""
    monitor, _ = await store.put_monitor("crm", MonitorSettings("CRM"), T0)
    stored = await store.create_batch(monitor.id, "crm", _batch(), T0, (), None, RUN)
    batch_id, old = stored.record.id, stored.record
    for i in range(CORRECTIONS_KEPT + 5):
        new = replace(old, logstatus="error" if i % 2 == 0 else "ok", updated_at=T0 + i)
        changed = await store.update_batch(old, new, (), None, [], correction_of(old, new, "jobs"))
        assert changed is not None
        old = changed.record
    kept = await store.list_corrections([batch_id])
    assert len(kept) == CORRECTIONS_KEPT
    assert kept[-1].at == T0 + CORRECTIONS_KEPT + 4 and kept[0].at == T0 + 5
    assert {c.token for c in kept} == {"jobs"}


async def test_a_change_is_written_only_over_the_batch_it_was_decided_on(
    store: Store,
) -> None:
    """Compare and set: a change decided on a batch that changed meanwhile is not written."""
    monitor, _ = await store.put_monitor("crm", MonitorSettings("CRM"), T0)
    running = NewBatch("running", "", T0, None, None, 0, 0, 0, "", "")
    old = (await store.create_batch(monitor.id, "crm", running, T0, (), None, [])).record
    first = replace(old, logstatus="ok", endtime=T0 + 5, duration=5.0, updated_at=T0 + 5)
    assert await store.update_batch(old, first, (), None, RUN, None) is not None
    late = replace(old, logstatus="error", endtime=T0 + 6, duration=6.0, updated_at=T0 + 6)
    assert await store.update_batch(old, late, (), None, RUN, None) is None
    stored = await store.get_batch(old.id)
    assert stored == first
    [row] = await store.load_runs(["ok", "error"])
    assert row.counters == [("runs", "ok", 1.0)]  # the refused change counted nothing


async def test_driver_errors_leave_the_store_as_unavailable(sqlite_store: Store) -> None:
    """Disk full, read-only file, I/O error: the caller sees a domain error, never sqlite3's."""

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    with pytest.raises(Unavailable, match="no such table"):
        await sqlite_store._write(broken)
    await sqlite_store.writer.close()
    with pytest.raises(Unavailable, match="shutting down"):
        await sqlite_store.put_monitor("crm", MonitorSettings("CRM"), T0)
