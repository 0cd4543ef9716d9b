"""migrate-db: an SQLite database copied into an empty PostgreSQL database answers the same."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from exporter.core.counters import LATEST
from exporter.core.records import MonitorSettings, NewBatch, NewLog, Transition, correction_of
from exporter.storage.interface import Idempotency, Store
from exporter.storage.postgres import from_sqlite
from exporter.storage.postgres.from_sqlite import (
    MigrationFailed,
    MigrationRefused,
    Table,
    migrate,
)
from exporter.storage.postgres.store import PostgresStore
from exporter.storage.sqlite.store import SqliteStore, migrations
from tests.support.postgres import PASSWORD, Cluster
from tests.support.processes import free_port

T0 = 1_796_000_000.0
FINISHED = ["ok", "error", "warning"]
KEY_BATCH = Idempotency("retry-1", "fp-batch", "jobs")
KEY_LOG = Idempotency("retry-2", "fp-log", "jobs")
SESSION = (b"\x00session-hash\xff", b"\x01token-digest\xfe")


async def _fill(path: Path) -> dict[str, int]:
    """An SQLite database with one of everything the service stores; the ids worth checking."""
    store = SqliteStore(str(path))
    await store.open()
    try:
        crm, _ = await store.put_monitor(
            "crm",
            MonitorSettings("CRM", alert_interval=60, team="sales", severity="critical",
                            duration_histogram=True, alert_no_creates_deceeds=3),
            T0,
        )  # fmt: skip
        nightly, _ = await store.put_monitor(
            "nightly",
            MonitorSettings("Nightly", schedule="0 3 * * *", timezone="Europe/Berlin", grace=30,
                            max_runtime=120, active=False, duration_histogram=False),
            T0,
        )  # fmt: skip
        await store.put_monitor("gone", MonitorSettings("Gone"), T0)
        await store.delete_monitor("gone")  # a gap in the ids: they must be kept, not renumbered
        ping, _ = await store.put_monitor("ping", MonitorSettings("Ping", type="message"), T0)

        done = NewBatch("ok", "run-1", T0, T0 + 10, 10.0, 5, 2, 1, "imported", "")
        first = await store.create_batch(
            crm.id, "crm", done, T0 + 10, ("logtext",), KEY_BATCH,
            [("runs", "ok", 1.0), ("rows", "created", 5.0), (LATEST, "success", T0 + 10)],
        )  # fmt: skip
        old = first.record
        new = replace(old, logstatus="error", errormsg="late failure", updated_at=T0 + 20)
        correction = correction_of(old, new, "jobs")
        changed = await store.update_batch(
            old, new, (), None, [("runs", "ok", -1.0), ("runs", "error", 1.0)], correction
        )
        assert changed is not None
        running = NewBatch("running", "run-2", T0 + 30, None, None, 0, 0, 0, "", "")
        second = await store.create_batch(nightly.id, "nightly", running, T0 + 30, (), None, [])
        await store.create_log(
            crm.id, "crm", NewLog(old.id, "ok", "run-1", "step 1", "", "in a batch"), T0 + 5,
            (), KEY_LOG, [("logs", "ok", 1.0)],
        )  # fmt: skip
        outside = await store.create_log(
            ping.id, "ping", NewLog(None, "error", "", "", "boom", "outside"), T0 + 40, (),
            None, [("logs", "error", 1.0), (LATEST, "log", T0 + 40)],
        )  # fmt: skip
        await store.save_evaluations(
            [(crm.id, "error", "the last batch failed", T0 + 50)],
            [Transition(crm.id, "notcalculated", "error", "the last batch failed", T0 + 50)],
        )
        await store.create_session(*SESSION, T0, T0 + 3600, 5)
    finally:
        await store.close()
    return {
        "crm": crm.id,
        "ping": ping.id,
        "batch": old.id,
        "running": second.record.id,
        "log": outside.record.id,
    }


async def _answers(store: Store, ids: dict[str, int]) -> dict[str, Any]:
    """What the service reads of a store, for everything `_fill` wrote."""
    monitors = await store.list_monitors()
    answers: dict[str, Any] = {"monitors": monitors}
    runs = await store.load_runs(FINISHED)
    answers["runs"] = [replace(r, counters=sorted(r.counters)) for r in runs]
    for m in monitors:
        answers[f"batches {m.id}"] = await store.list_batches(m.id, 100, None)
        answers[f"logs {m.id}"] = await store.list_logs(m.id, 100, None)
        answers[f"outside {m.id}"] = await store.list_logs(m.id, 100, None, outside_batches=True)
        answers[f"transitions {m.id}"] = await store.list_transitions(m.id, 100)
    answers["all logs"] = await store.list_logs(None, 100, None)
    answers["batch logs"] = await store.list_logs(ids["crm"], 100, None, batch_id=ids["batch"])
    answers["corrections"] = await store.list_corrections([ids["batch"], ids["running"]])
    answers["session"] = await store.find_session(SESSION[0], T0 + 1)
    answers["replay batch"] = await store.replayed(KEY_BATCH, ids["crm"], "batch")
    answers["replay log"] = await store.replayed(KEY_LOG, ids["crm"], "log")
    return answers


@pytest.fixture
async def source(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    path = tmp_path / "im.db"
    return path, await _fill(path)


async def _sqlite_answers(path: Path, ids: dict[str, int]) -> dict[str, Any]:
    store = SqliteStore(str(path))
    await store.open()
    try:
        return await _answers(store, ids)
    finally:
        await store.close()


def _count(cluster: Cluster, url: str, table: str) -> int:
    return int(cluster.sql(f"SELECT count(*) FROM {table}", url.rpartition("/")[2]))


async def test_a_migrated_database_answers_as_the_sqlite_one_did(
    postgres_cluster: Cluster, source: tuple[Path, dict[str, int]]
) -> None:
    path, ids = source
    url = postgres_cluster.database()
    copied = await migrate(str(path), url)
    assert copied.rows == {
        "integration_monitor": 3,
        "integration_monitor_batch": 2,
        "integration_monitor_log": 2,
        "alert_transition": 1,
        "monitor_counter": 7,
        "idempotency_key": 2,
        "batch_correction": 1,
        "web_session": 1,
    }
    assert copied.counters == {"latest": T0 + 40 + T0 + 10, "logs": 2.0, "rows": 5.0, "runs": 1.0}

    expected = await _sqlite_answers(path, ids)
    store = PostgresStore(url, "test")
    await store.open()
    try:
        answers = await _answers(store, ids)
        assert answers == expected
        # Spot checks, so that two equally wrong answers cannot pass.
        crm = next(m for m in answers["monitors"] if m.integration_key == "crm")
        nightly = next(m for m in answers["monitors"] if m.integration_key == "nightly")
        assert crm.settings.duration_histogram is True and crm.settings.team == "sales"
        assert nightly.settings.active is False and nightly.settings.duration_histogram is False
        assert nightly.settings.schedule == "0 3 * * *" and crm.alertstatus == "error"
        assert answers["replay batch"] == (ids["batch"], ("logtext",))
        assert answers["session"] == SESSION[1]
        assert [c.new_status for c in answers["corrections"]] == ["error"]
        assert [log.batch_id for log in answers["batch logs"]] == [ids["batch"]]

        # The sequences moved past the copied ids: new reports do not collide.
        later = NewBatch("ok", "", T0 + 60, T0 + 61, 1.0, 0, 0, 0, "", "")
        batch = await store.create_batch(ids["crm"], "crm", later, T0 + 61, (), None, [])
        log = await store.create_log(
            ids["ping"], "ping", NewLog(None, "ok", "", "", "", ""), T0 + 62, (), None, []
        )
        monitor, created = await store.put_monitor("new", MonitorSettings("New"), T0 + 63)
        assert batch.record.id > ids["running"] and log.record.id > ids["log"]
        assert created and monitor.id > ids["ping"]
    finally:
        await store.close()


async def test_a_target_that_is_not_empty_is_refused_and_left_untouched(
    postgres_cluster: Cluster, source: tuple[Path, dict[str, int]]
) -> None:
    path, _ = source
    url = postgres_cluster.database()
    store = PostgresStore(url, "test")
    await store.open()  # the schema, and one row in the last table copied
    await store.create_session(b"other", b"digest", T0, T0 + 60, 5)
    await store.close()

    with pytest.raises(MigrationRefused, match=r"not empty.*web_session"):
        await migrate(str(path), url)
    assert _count(postgres_cluster, url, "integration_monitor") == 0
    assert _count(postgres_cluster, url, "web_session") == 1


async def test_migrating_twice_is_refused(
    postgres_cluster: Cluster, source: tuple[Path, dict[str, int]]
) -> None:
    path, _ = source
    url = postgres_cluster.database()
    await migrate(str(path), url)
    with pytest.raises(MigrationRefused, match="integration_monitor has rows"):
        await migrate(str(path), url)
    assert _count(postgres_cluster, url, "integration_monitor_batch") == 2


async def test_a_missing_file_is_refused_and_not_created(
    postgres_cluster: Cluster, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(MigrationRefused, match="no such SQLite file"):
        await migrate(str(missing), postgres_cluster.database())
    assert not missing.exists()


async def test_an_old_schema_is_refused_with_what_to_do(
    postgres_cluster: Cluster, tmp_path: Path
) -> None:
    path = tmp_path / "v3.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in migrations()[:3]:
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    conn.close()
    with pytest.raises(MigrationRefused, match=r"version 3, older than .*start this version"):
        await migrate(str(path), postgres_cluster.database())
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3


async def test_a_copy_that_loses_a_row_fails_and_writes_nothing(
    postgres_cluster: Cluster,
    source: tuple[Path, dict[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _ = source
    url = postgres_cluster.database()
    read = from_sqlite._source_rows

    def lossy(conn: sqlite3.Connection, table: Table, chunk: int) -> Iterator[list[Any]]:
        for rows in read(conn, table, chunk):
            yield rows[:-1] if table.name == "integration_monitor_log" else rows

    monkeypatch.setattr(from_sqlite, "_source_rows", lossy)
    with pytest.raises(MigrationFailed, match=r"integration_monitor_log has 2 rows .* but 1"):
        await migrate(str(path), url)
    assert _count(postgres_cluster, url, "integration_monitor") == 0


async def test_small_chunks_copy_everything(
    postgres_cluster: Cluster, source: tuple[Path, dict[str, int]]
) -> None:
    """Tables larger than a chunk arrive whole (chunk=1: every row is its own COPY)."""
    path, _ = source
    copied = await migrate(str(path), postgres_cluster.database(), chunk=1)
    assert copied.rows["monitor_counter"] == 7 and copied.rows["integration_monitor"] == 3


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "exporter", "migrate-db", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.system
def test_the_command_prints_counts_and_never_the_password(
    postgres_cluster: Cluster, source: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    path, _ = source
    url = postgres_cluster.database()
    assert PASSWORD in url

    done = _cli("--from", str(path), "--to", url)
    assert done.returncode == 0, done.stderr
    assert "integration_monitor_batch           2 rows" in done.stdout
    assert "verified" in done.stdout and "<redacted>" in done.stdout

    again = _cli("--from", str(path), "--to", url)
    missing = _cli("--from", str(tmp_path / "nope.db"), "--to", url)
    not_postgres = _cli("--from", str(path), "--to", f"mysql://root:{PASSWORD}@localhost/db")
    unreachable = _cli(
        "--from", str(path), "--to", f"postgresql://u:{PASSWORD}@127.0.0.1:{free_port()}/db"
    )
    for failed, words in [
        (again, "not empty"),
        (missing, "no such SQLite file"),
        (not_postgres, "must be a postgresql:// URL"),
        (unreachable, "cannot connect"),
    ]:
        assert failed.returncode == 2, failed.stderr
        assert words in failed.stderr and failed.stdout == ""
        assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    for output in (done, again, missing, not_postgres, unreachable):
        assert PASSWORD not in output.stdout + output.stderr


async def test_every_table_and_column_of_the_sqlite_schema_is_copied(
    source: tuple[Path, dict[str, int]],
) -> None:
    """A later SQLite migration that adds a table or a column must add it to the copy too."""
    path, _ = source
    conn = sqlite3.connect(path)
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    schema = {n: {r[1] for r in conn.execute(f"PRAGMA table_info({n})")} for n in names}
    conn.close()
    assert {t.name: set(t.columns) for t in from_sqlite.TABLES} == schema


async def test_a_value_postgresql_cannot_take_fails_the_copy_and_writes_nothing(
    postgres_cluster: Cluster, source: tuple[Path, dict[str, int]]
) -> None:
    """SQLite lets an INTEGER column hold text; PostgreSQL does not: say which table."""
    path, ids = source
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE integration_monitor_batch SET no_created = 'many' WHERE id = ?",
                 (ids["batch"],))  # fmt: skip
    conn.close()
    url = postgres_cluster.database()
    with pytest.raises(MigrationFailed, match="copying integration_monitor_batch failed"):
        await migrate(str(path), url)
    assert _count(postgres_cluster, url, "integration_monitor") == 0


async def test_a_nul_written_before_it_was_replaced_arrives_as_u_fffd(
    postgres_cluster: Cluster, source: tuple[Path, dict[str, int]]
) -> None:
    """SQLite held NUL in texts before the service replaced it; PostgreSQL cannot: the copy
    replaces it as the service now does, rather than failing."""
    path, ids = source
    conn = sqlite3.connect(path)
    conn.execute("UPDATE integration_monitor_batch SET errormsg = ?", ("bad\x00byte",))
    conn.commit()
    conn.close()
    url = postgres_cluster.database()
    await migrate(str(path), url)
    store = PostgresStore(url, "test")
    await store.open()
    try:
        [batch, *_] = await store.list_batches(ids["crm"], 10, None)
        assert batch.errormsg == "bad\ufffdbyte"
    finally:
        await store.close()
