"""Every SQL statement of the service: one group-commit writer, aiosqlite for reads."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

import aiosqlite

from exporter.core.counters import LATEST, CounterDelta, keeps_maximum, merge
from exporter.core.errors import (
    BatchNotFound,
    BatchOfOtherMonitor,
    MonitorNotFound,
    Unavailable,
)
from exporter.core.records import (
    Batch,
    Correction,
    Log,
    Monitor,
    MonitorSettings,
    NewBatch,
    NewLog,
    Transition,
)
from exporter.storage.common import (
    BATCH_COLS,
    BATCH_FROM,
    CORRECTIONS_KEPT,
    LOG_COLS,
    LOG_FROM,
    MONITOR_COLS,
    SETTINGS,
    replayed,
)
from exporter.storage.common import migrations as shared_migrations
from exporter.storage.interface import (
    EvaluationRow,
    Idempotency,
    MonitorRuns,
    Stored,
    StoreStats,
)
from exporter.storage.sqlite.writer import GroupCommitWriter, WriterClosed

log = logging.getLogger(__name__)
T = TypeVar("T")


# A batch that could have happened: it did not start after it was received (clock skew allowed).
_PLAUSIBLE = "x.starttime <= x.created_at + ?"


def _monitor(row: Sequence[Any]) -> Monitor:
    values = dict(zip(SETTINGS, row[2:16], strict=True))  # SQLite has no booleans
    values["active"] = bool(values["active"])
    if values["duration_histogram"] is not None:
        values["duration_histogram"] = bool(values["duration_histogram"])
    settings = MonitorSettings(**values)
    return Monitor(row[0], row[1], settings, *row[16:21])


def _batch(row: Sequence[Any]) -> Batch:
    return Batch(*row)


def _log(row: Sequence[Any]) -> Log:
    return Log(*row)


def migrations() -> list[tuple[int, str]]:
    """The numbered migration scripts of this store, in order."""
    return shared_migrations("exporter.storage.sqlite")


def apply_migrations(conn: sqlite3.Connection) -> list[int]:
    """Apply the migrations newer than the database's user_version; return those applied."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    applied = []
    for number, script in migrations():
        if number <= current:
            continue
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
        applied.append(number)
    return applied


def _connect_writer(path: str, synchronous: str) -> Callable[[], sqlite3.Connection]:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        applied = apply_migrations(conn)
        if applied:
            log.info("database %s: applied migrations %s", path, applied)
        return conn

    return connect


class SqliteStore:
    """The SQLite store (see `exporter.storage.interface.Store`). Writes go through one
    group-commit writer; reads use aiosqlite. Driver errors leave as `Unavailable`."""

    def __init__(self, path: str, max_group: int = 512, synchronous: str = "FULL") -> None:
        self.path = path
        self.description = path
        self._writer = GroupCommitWriter(
            _connect_writer(path, synchronous),
            max_group,
            self._flush_counters,
            self._discard_counters,
        )
        self._reader: aiosqlite.Connection | None = None
        # Counter increments of the group being committed, merged per counter and written
        # once just before its COMMIT: in the same transaction, in far fewer statements.
        # Touched only by the writer thread.
        self._pending: dict[tuple[int, str, str], float] = {}

    async def open(self) -> None:
        await self._writer.start()  # creates the file and applies migrations first
        self._reader = await aiosqlite.connect(self.path)
        await self._reader.execute("PRAGMA foreign_keys=ON")
        await self._reader.execute("PRAGMA query_only=ON")

    async def close(self) -> None:
        await self._writer.close()
        if self._reader is not None:
            await self._reader.close()
            self._reader = None

    @property
    def writer(self) -> GroupCommitWriter:
        """The group-commit writer (for this implementation's own tests)."""
        return self._writer

    def stats(self) -> StoreStats:
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += os.path.getsize(self.path + suffix)
        writer = self._writer
        return StoreStats(size, writer.groups_committed, writer.writes_committed)

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run a write in the next group commit; driver errors become domain errors."""
        try:
            return await self._writer.run(op)
        except WriterClosed:
            raise Unavailable("The service is shutting down") from None
        except sqlite3.OperationalError as exc:  # disk full, read-only file, I/O error
            raise Unavailable(f"The database did not take the write: {exc}") from None

    def _count(self, monitor_id: int, deltas: Iterable[CounterDelta]) -> None:
        pending = self._pending
        for kind, name, delta in deltas:
            if delta:
                key = (monitor_id, kind, name)
                pending[key] = merge(kind, pending.get(key), delta)

    def _flush_counters(self, conn: sqlite3.Connection) -> None:
        pending, self._pending = self._pending, {}
        if pending:
            _add_counters(conn, [(*key, value) for key, value in pending.items()])

    def _discard_counters(self) -> None:
        """The group was rolled back: none of its increments may reach the next commit."""
        self._pending = {}

    async def _all(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        assert self._reader is not None, "store not open"
        try:
            async with self._reader.execute(sql, tuple(params)) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.OperationalError as exc:
            raise Unavailable(f"The database did not answer: {exc}") from None

    # -- monitors ---------------------------------------------------------------------------

    async def put_monitor(
        self, key: str, settings: MonitorSettings, now: float
    ) -> tuple[Monitor, bool]:
        """Create or replace a monitor's settings; True when it was created."""

        def op(conn: sqlite3.Connection) -> tuple[Monitor, bool]:
            values = [getattr(settings, name) for name in SETTINGS]
            cur = conn.execute(
                f"INSERT INTO integration_monitor (integration_key, {', '.join(SETTINGS)}, "
                f"created_at, updated_at) VALUES (?, {', '.join('?' * len(SETTINGS))}, ?, ?) "
                f"ON CONFLICT (integration_key) DO UPDATE SET "
                + ", ".join(f"{n} = excluded.{n}" for n in SETTINGS)
                + ", updated_at = excluded.updated_at RETURNING created_at = updated_at",
                (key, *values, now, now),
            )
            created = bool(cur.fetchone()[0])
            return _get_monitor(conn, key), created

        return await self._write(op)

    async def patch_monitor(self, key: str, changes: dict[str, Any], now: float) -> Monitor:
        def op(conn: sqlite3.Connection) -> Monitor:
            old = _get_monitor(conn, key)
            settings = replace(old.settings, **changes)
            conn.execute(
                f"UPDATE integration_monitor SET {', '.join(f'{n} = ?' for n in SETTINGS)}, "
                "updated_at = ? WHERE id = ?",
                (*(getattr(settings, n) for n in SETTINGS), now, old.id),
            )
            return _get_monitor(conn, key)

        return await self._write(op)

    async def delete_monitor(self, key: str) -> Monitor:
        def op(conn: sqlite3.Connection) -> Monitor:
            old = _get_monitor(conn, key)
            conn.execute("DELETE FROM integration_monitor WHERE id = ?", (old.id,))
            self._pending = {k: v for k, v in self._pending.items() if k[0] != old.id}
            return old

        return await self._write(op)

    async def list_monitors(self) -> list[Monitor]:
        rows = await self._all(
            f"SELECT {MONITOR_COLS} FROM integration_monitor m ORDER BY m.integration_key"
        )
        return [_monitor(r) for r in rows]

    async def save_evaluations(
        self, results: Sequence[EvaluationRow], transitions: Sequence[Transition]
    ) -> None:
        """Store alert statuses (monitor_id, status, text, time) and their transitions."""

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE integration_monitor SET alertstatus = ?, alerttext = ?, "
                "alert_timestamp = ? WHERE id = ?",
                [(s, text, at, mid) for mid, s, text, at in results],
            )
            conn.executemany(
                "INSERT INTO alert_transition (monitor_id, old_status, new_status, reason, at) "
                "SELECT ?, ?, ?, ?, ? WHERE EXISTS "
                "(SELECT 1 FROM integration_monitor WHERE id = ?)",
                [
                    (t.monitor_id, t.old_status, t.new_status, t.reason, t.at, t.monitor_id)
                    for t in transitions
                ],
            )

        await self._write(op)

    async def list_corrections(self, batch_ids: Sequence[int]) -> list[Correction]:
        """The corrections of these batches, oldest first."""
        if not batch_ids:
            return []
        rows = await self._all(
            "SELECT batch_id, at, token, old_status, new_status, changes FROM batch_correction "
            f"WHERE batch_id IN ({','.join('?' * len(batch_ids))}) ORDER BY id",
            batch_ids,
        )
        return [Correction(*r) for r in rows]

    # -- status page sessions -----------------------------------------------------------------

    async def create_session(
        self, id_hash: bytes, token_digest: bytes, now: float, expires: float, per_token: int
    ) -> None:
        """Store a session, and keep only the token's `per_token` newest ones."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO web_session (id_hash, token_digest, created_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (id_hash, token_digest, now, expires),
            )
            conn.execute(
                "DELETE FROM web_session WHERE id_hash IN (SELECT id_hash FROM web_session "
                "WHERE token_digest = ? ORDER BY created_at DESC LIMIT -1 OFFSET ?)",
                (token_digest, per_token),
            )

        await self._write(op)

    async def find_session(self, id_hash: bytes, now: float) -> bytes | None:
        """The token digest of a session that has not expired."""
        rows = await self._all(
            "SELECT token_digest FROM web_session WHERE id_hash = ? AND expires_at > ?",
            (id_hash, now),
        )
        return bytes(rows[0][0]) if rows else None

    async def delete_session(self, id_hash: bytes) -> None:
        await self._write(
            lambda conn: conn.execute("DELETE FROM web_session WHERE id_hash = ?", (id_hash,))
        )

    async def list_transitions(self, monitor_id: int, limit: int) -> list[Transition]:
        rows = await self._all(
            "SELECT monitor_id, old_status, new_status, reason, at FROM alert_transition "
            "WHERE monitor_id = ? ORDER BY at DESC, id DESC LIMIT ?",
            (monitor_id, limit),
        )
        return [Transition(*r) for r in rows]

    # -- reports ----------------------------------------------------------------------------

    async def create_batch(
        self,
        monitor_id: int,
        key: str,
        new: NewBatch,
        now: float,
        truncated: tuple[str, ...],
        idempotency: Idempotency | None,
        deltas: Sequence[CounterDelta],
    ) -> Stored[Batch]:
        def op(conn: sqlite3.Connection) -> Stored[Batch]:
            replay = _replay(conn, idempotency, monitor_id, "batch")
            if replay is not None:
                return Stored(_get_batch(conn, replay[0]), True, replay[1])
            cur = conn.execute(
                "INSERT INTO integration_monitor_batch (monitor_id, logstatus, integrationid, "
                "starttime, endtime, duration, no_created, no_updated, no_deleted, logtext, "
                "errormsg, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "RETURNING id",
                (
                    monitor_id,
                    new.logstatus,
                    new.integrationid,
                    new.starttime,
                    new.endtime,
                    new.duration,
                    new.no_created,
                    new.no_updated,
                    new.no_deleted,
                    new.logtext,
                    new.errormsg,
                    now,
                    now,
                ),
            )
            n = new
            batch = Batch(
                cur.fetchone()[0], monitor_id, key, n.logstatus, n.integrationid, n.starttime,
                n.endtime, n.duration, n.no_created, n.no_updated, n.no_deleted, n.logtext,
                n.errormsg, now, now,
            )  # fmt: skip
            _remember(conn, idempotency, monitor_id, "batch", batch.id, truncated, now)
            self._count(monitor_id, deltas)
            return Stored(batch, False, truncated)

        try:
            return await self._write(op)
        except sqlite3.IntegrityError as exc:
            raise _monitor_gone(key, exc) from None

    async def update_batch(
        self,
        old: Batch,
        new: Batch,
        truncated: tuple[str, ...],
        idempotency: Idempotency | None,
        deltas: Sequence[CounterDelta],
        correction: Correction | None,
    ) -> Stored[Batch] | None:
        def op(conn: sqlite3.Connection) -> Stored[Batch] | None:
            replay = _replay(conn, idempotency, old.monitor_id, "batch")
            if replay is not None:
                return Stored(_get_batch(conn, replay[0]), True, replay[1])
            # Compare and set: every value a change could have made must still be `old`'s.
            changed = conn.execute(
                "UPDATE integration_monitor_batch SET logstatus = ?, integrationid = ?, "
                "endtime = ?, duration = ?, no_created = ?, no_updated = ?, no_deleted = ?, "
                "logtext = ?, errormsg = ?, updated_at = ? WHERE id = ? AND logstatus = ? "
                "AND endtime IS ? AND no_created = ? AND no_updated = ? AND no_deleted = ? "
                "AND updated_at = ? AND integrationid = ? AND logtext = ? AND errormsg = ?",
                (
                    new.logstatus,
                    new.integrationid,
                    new.endtime,
                    new.duration,
                    new.no_created,
                    new.no_updated,
                    new.no_deleted,
                    new.logtext,
                    new.errormsg,
                    new.updated_at,
                    old.id,
                    old.logstatus,
                    old.endtime,
                    old.no_created,
                    old.no_updated,
                    old.no_deleted,
                    old.updated_at,
                    old.integrationid,
                    old.logtext,
                    old.errormsg,
                ),
            ).rowcount
            if not changed:
                return None
            if correction is not None:
                _record_correction(conn, correction)
            _remember(conn, idempotency, old.monitor_id, "batch", old.id, truncated, new.updated_at)
            self._count(old.monitor_id, deltas)
            return Stored(new, False, truncated)

        return await self._write(op)

    async def replayed(
        self, idempotency: Idempotency, monitor_id: int, resource: str
    ) -> tuple[int, tuple[str, ...]] | None:
        rows = await self._all(
            "SELECT fingerprint, resource, resource_id, truncated FROM idempotency_key "
            "WHERE monitor_id = ? AND key = ? AND token IN (?, '') LIMIT 1",
            (monitor_id, idempotency.key, idempotency.token),
        )
        return replayed(rows[0] if rows else None, idempotency, resource)

    async def create_log(
        self,
        monitor_id: int,
        key: str,
        new: NewLog,
        now: float,
        truncated: tuple[str, ...],
        idempotency: Idempotency | None,
        deltas: Sequence[CounterDelta],
    ) -> Stored[Log]:
        def op(conn: sqlite3.Connection) -> Stored[Log]:
            replay = _replay(conn, idempotency, monitor_id, "log")
            if replay is not None:
                return Stored(_get_log(conn, replay[0]), True, replay[1])
            if new.batch_id is not None:
                try:
                    owner = _get_batch(conn, new.batch_id).monitor_id
                except BatchNotFound:
                    raise BatchNotFound(new.batch_id, "batch_id") from None
                if owner != monitor_id:
                    raise BatchOfOtherMonitor(new.batch_id)
            cur = conn.execute(
                "INSERT INTO integration_monitor_log (monitor_id, batch_id, logstatus, "
                "integrationid, logtext, errormsg, message, created_at) "
                "VALUES (?,?,?,?,?,?,?,?) RETURNING id",
                (
                    monitor_id,
                    new.batch_id,
                    new.logstatus,
                    new.integrationid,
                    new.logtext,
                    new.errormsg,
                    new.message,
                    now,
                ),
            )
            n = new
            entry = Log(
                cur.fetchone()[0], monitor_id, key, n.batch_id, n.logstatus, n.integrationid,
                n.logtext, n.errormsg, n.message, now,
            )  # fmt: skip
            _remember(conn, idempotency, monitor_id, "log", entry.id, truncated, now)
            self._count(monitor_id, deltas)
            return Stored(entry, False, truncated)

        try:
            return await self._write(op)
        except sqlite3.IntegrityError as exc:
            raise _monitor_gone(key, exc) from None

    async def get_batch(self, batch_id: int) -> Batch | None:
        rows = await self._all(f"SELECT {BATCH_COLS} FROM {BATCH_FROM} WHERE b.id = ?", (batch_id,))
        return _batch(rows[0]) if rows else None

    async def find_running_batch(self, monitor_id: int, integrationid: str) -> Batch | None:
        """The newest batch of a monitor with this integrationid that has no endtime."""
        rows = await self._all(
            f"SELECT {BATCH_COLS} FROM {BATCH_FROM} WHERE b.monitor_id = ? "
            "AND b.integrationid = ? AND b.endtime IS NULL "
            "ORDER BY b.starttime DESC, b.id DESC LIMIT 1",
            (monitor_id, integrationid),
        )
        return _batch(rows[0]) if rows else None

    async def list_batches(
        self, monitor_id: int, limit: int, before: tuple[float, int] | None
    ) -> list[Batch]:
        """Newest start first; `before` = (starttime, id) of the last one already seen."""
        where, params = "b.monitor_id = ?", [float(monitor_id)]
        if before is not None:
            where += " AND (b.starttime, b.id) < (?, ?)"
            params += [before[0], before[1]]
        rows = await self._all(
            f"SELECT {BATCH_COLS} FROM {BATCH_FROM} WHERE {where} "
            "ORDER BY b.starttime DESC, b.id DESC LIMIT ?",
            [*params, limit],
        )
        return [_batch(r) for r in rows]

    async def list_logs(
        self,
        monitor_id: int | None,
        limit: int,
        before: tuple[float, int] | None,
        batch_id: int | None = None,
        outside_batches: bool = False,
    ) -> list[Log]:
        """Newest first, of a monitor or of a batch (or only those in no batch)."""
        clauses: list[str] = ["l.batch_id IS NULL"] if outside_batches else []
        params: list[float] = []
        if monitor_id is not None:
            clauses.append("l.monitor_id = ?")
            params.append(monitor_id)
        if batch_id is not None:
            clauses.append("l.batch_id = ?")
            params.append(batch_id)
        if before is not None:
            clauses.append("(l.created_at, l.id) < (?, ?)")
            params += [before[0], before[1]]
        rows = await self._all(
            f"SELECT {LOG_COLS} FROM {LOG_FROM} WHERE {' AND '.join(clauses) or '1'} "
            "ORDER BY l.created_at DESC, l.id DESC LIMIT ?",
            [*params, limit],
        )
        return [_log(r) for r in rows]

    # -- start-up, health, retention ---------------------------------------------------------

    async def changes(self) -> AsyncIterator[frozenset[int] | None]:
        """Nothing: only this process writes the file."""
        return
        yield  # an async generator that ends at once

    async def take_lease(self, name: str, seconds: float) -> bool:
        return True  # only this process runs on the file

    async def load_runs(
        self,
        finished_statuses: Sequence[str],
        max_clock_skew: float = 0.0,
        monitor_ids: Collection[int] | None = None,
    ) -> list[MonitorRuns]:
        """Every monitor with its latest run, its latest finished run and its counters.

        A handful of statements whatever the number of monitors: each finds every monitor's
        newest row through the (monitor, time, id) index. A batch that claims to start later
        than it was received (by more than `max_clock_skew`) is never the latest: a database
        written before report times were bounded may hold such rows.
        """
        chosen = None if monitor_ids is None else set(monitor_ids)
        monitors = [m for m in await self.list_monitors() if chosen is None or m.id in chosen]
        counters: dict[int, list[tuple[str, str, float]]] = {}
        for mid, kind, name, value in await self._all(
            "SELECT monitor_id, kind, name, value FROM monitor_counter"
        ):
            counters.setdefault(mid, []).append((kind, name, value))
        done = f"AND x.logstatus IN ({','.join('?' * len(finished_statuses))})"
        newest: dict[tuple[str, int], Batch | Log] = {}
        for which, finished in (("latest", ""), ("finished", done)):
            params = finished_statuses if finished else ()
            for row in await self._all(
                f"SELECT {BATCH_COLS} FROM {BATCH_FROM} WHERE b.id IN (SELECT (SELECT x.id "
                f"FROM integration_monitor_batch x WHERE x.monitor_id = m.id {finished} "
                f"AND {_PLAUSIBLE} ORDER BY x.starttime DESC, x.id DESC LIMIT 1) "
                "FROM integration_monitor m WHERE m.type = 'batch')",
                [*params, max_clock_skew],
            ):
                batch = _batch(row)
                newest[(which, batch.monitor_id)] = batch
            for row in await self._all(
                f"SELECT {LOG_COLS} FROM {LOG_FROM} WHERE l.id IN (SELECT (SELECT x.id "
                f"FROM integration_monitor_log x WHERE x.monitor_id = m.id {finished} "
                "ORDER BY x.created_at DESC, x.id DESC LIMIT 1) FROM integration_monitor m "
                "WHERE m.type = 'message')",
                params,
            ):
                entry = _log(row)
                newest[(which, entry.monitor_id)] = entry
        # (A store only this process writes is asked for every monitor, at start; a subset is
        # filtered here rather than in SQL.)
        return [
            MonitorRuns(
                m,
                newest.get(("latest", m.id)),
                newest.get(("finished", m.id)),
                counters.get(m.id, []),
            )
            for m in monitors
        ]

    async def check_writable(self) -> None:
        """Raise unless a write commits now."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS readiness (x)")
            conn.execute("DELETE FROM readiness")

        await self._write(op)

    async def repair_success_times(self, limit: float, ok_statuses: Sequence[str]) -> int:
        """Bring back to earth last-success times beyond `limit` (now plus the clock skew).

        Only a database written before report times were bounded holds them: the time is
        found again from the stored runs (never later than each was received), or dropped
        when none is left. Returns the number of monitors repaired.
        """
        ok = ",".join("?" * len(ok_statuses))

        def op(conn: sqlite3.Connection) -> int:
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT monitor_id FROM monitor_counter WHERE kind = ? AND name = 'success' "
                    "AND value > ?",
                    (LATEST, limit),
                )
            ]
            for monitor_id in ids:
                found = conn.execute(
                    "SELECT max(t) FROM (SELECT min(coalesce(b.endtime, b.starttime), "
                    "b.updated_at) AS t FROM integration_monitor_batch b JOIN "
                    "integration_monitor m ON m.id = b.monitor_id WHERE b.monitor_id = ? "
                    f"AND m.type = 'batch' AND b.logstatus IN ({ok}) UNION ALL "
                    "SELECT l.created_at FROM integration_monitor_log l JOIN "
                    "integration_monitor m ON m.id = l.monitor_id WHERE l.monitor_id = ? "
                    f"AND m.type = 'message' AND l.logstatus IN ({ok})) WHERE t <= ?",
                    (monitor_id, *ok_statuses, monitor_id, *ok_statuses, limit),
                ).fetchone()[0]
                key = (monitor_id, LATEST)
                if found is None:
                    conn.execute(
                        "DELETE FROM monitor_counter WHERE monitor_id = ? AND kind = ? "
                        "AND name = 'success'",
                        key,
                    )
                else:
                    conn.execute(
                        "UPDATE monitor_counter SET value = ? WHERE monitor_id = ? AND kind = ? "
                        "AND name = 'success'",
                        (found, *key),
                    )
            return len(ids)

        return await self._write(op)

    async def prune(
        self,
        cutoff: float,
        idempotency_cutoff: float,
        max_clock_skew: float = 0.0,
        transitions_kept: int = 100,
        chunk: int = 5000,
    ) -> int:
        """Delete batches and logs created before `cutoff`, keeping each monitor's latest ones,
        and all but each monitor's `transitions_kept` newest alert transitions.

        Counters live in their own table and are not touched. Works in chunks so that reports
        are never held up for long. Returns the number of rows deleted.
        """

        def remember_latest(conn: sqlite3.Connection) -> None:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS keep_run (id INTEGER PRIMARY KEY)")
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS keep_log (id INTEGER PRIMARY KEY)")
            conn.execute("DELETE FROM keep_run")
            conn.execute("DELETE FROM keep_log")
            for finished in ("", "AND x.endtime IS NOT NULL"):
                conn.execute(
                    "INSERT OR IGNORE INTO keep_run SELECT id FROM (SELECT (SELECT x.id FROM "
                    f"integration_monitor_batch x WHERE x.monitor_id = m.id {finished} "
                    f"AND {_PLAUSIBLE} ORDER BY x.starttime DESC, x.id DESC LIMIT 1) AS id "
                    "FROM integration_monitor m) WHERE id IS NOT NULL",
                    (max_clock_skew,),
                )
            conn.execute(
                "INSERT OR IGNORE INTO keep_log SELECT id FROM (SELECT (SELECT x.id FROM "
                "integration_monitor_log x WHERE x.monitor_id = m.id "
                "ORDER BY x.created_at DESC, x.id DESC LIMIT 1) AS id "
                "FROM integration_monitor m) WHERE id IS NOT NULL"
            )

        await self._write(remember_latest)
        deleted = 0
        for table, keep in (
            ("integration_monitor_log", "keep_log"),
            ("integration_monitor_batch", "keep_run"),
        ):
            # Ids grow with created_at: every row below the first id created at or after the
            # cutoff is old. Walking the table in id order finds it without an index on
            # created_at, which every report would otherwise pay for.
            rows = await self._all(
                f"SELECT id FROM {table} WHERE created_at >= ? ORDER BY id LIMIT 1", (cutoff,)
            )
            if not rows:
                rows = await self._all(f"SELECT coalesce(max(id), 0) + 1 FROM {table}")
            sql = (
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "
                f"WHERE id < ? AND id NOT IN {keep} LIMIT ?)"
            )
            while True:
                count: int = await self._write(partial(_rowcount, sql, (rows[0][0], chunk)))
                deleted += count
                if count < chunk:
                    break

        def forget(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM idempotency_key WHERE created_at < ?", (idempotency_cutoff,))
            conn.execute("DELETE FROM web_session WHERE expires_at < ?", (idempotency_cutoff,))

        await self._write(forget)
        return deleted + await self._prune_transitions(transitions_kept, chunk)

    async def _prune_transitions(self, kept: int, chunk: int) -> int:
        """Keep each monitor's `kept` newest transitions; a few hundred monitors per write."""
        crowded = [
            row[0]
            for row in await self._all(
                "SELECT monitor_id FROM alert_transition GROUP BY monitor_id HAVING count(*) > ?",
                (kept,),
            )
        ]
        sql = (
            "DELETE FROM alert_transition WHERE monitor_id = ? AND (at, id) < "
            "(SELECT at, id FROM alert_transition WHERE monitor_id = ? "
            "ORDER BY at DESC, id DESC LIMIT 1 OFFSET ?)"
        )
        step = max(1, chunk // max(kept, 1))

        def op(ids: list[int], conn: sqlite3.Connection) -> int:
            return sum(conn.execute(sql, (mid, mid, kept - 1)).rowcount for mid in ids)

        deleted = 0
        for start in range(0, len(crowded), step):
            deleted += await self._write(partial(op, crowded[start : start + step]))
        return deleted


def _monitor_gone(key: str, exc: sqlite3.IntegrityError) -> Exception:
    """A report for a monitor deleted since it was looked up: not found, as if a moment later."""
    if "FOREIGN KEY" in str(exc):
        return MonitorNotFound(key)
    return exc


def _rowcount(sql: str, params: tuple[int, int], conn: sqlite3.Connection) -> int:
    return int(conn.execute(sql, params).rowcount)


def _get_monitor(conn: sqlite3.Connection, key: str) -> Monitor:
    row = conn.execute(
        f"SELECT {MONITOR_COLS} FROM integration_monitor m WHERE m.integration_key = ?", (key,)
    ).fetchone()
    if row is None:
        raise MonitorNotFound(key)
    return _monitor(row)


def _get_batch(conn: sqlite3.Connection, batch_id: int) -> Batch:
    row = conn.execute(
        f"SELECT {BATCH_COLS} FROM {BATCH_FROM} WHERE b.id = ?", (batch_id,)
    ).fetchone()
    if row is None:
        raise BatchNotFound(batch_id)
    return _batch(row)


def _get_log(conn: sqlite3.Connection, log_id: int) -> Log:
    row = conn.execute(f"SELECT {LOG_COLS} FROM {LOG_FROM} WHERE l.id = ?", (log_id,)).fetchone()
    assert row is not None
    return _log(row)


_UPSERT = (
    "INSERT INTO monitor_counter (monitor_id, kind, name, value) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (monitor_id, kind, name) DO UPDATE SET value = "
)


def _add_counters(conn: sqlite3.Connection, rows: list[tuple[int, str, str, float]]) -> None:
    """Apply increments (monitor_id, kind, name, delta): added, or kept as the maximum for
    the kinds the core says keep one (`keeps_maximum`)."""
    added = [row for row in rows if not keeps_maximum(row[1])]
    if added:
        conn.executemany(_UPSERT + "value + excluded.value", added)
    if len(added) < len(rows):
        kept = [row for row in rows if keeps_maximum(row[1])]
        conn.executemany(_UPSERT + "max(value, excluded.value)", kept)


def _replay(
    conn: sqlite3.Connection, idempotency: Idempotency | None, monitor_id: int, resource: str
) -> tuple[int, tuple[str, ...]] | None:
    if idempotency is None:
        return None
    row = conn.execute(
        "SELECT fingerprint, resource, resource_id, truncated FROM idempotency_key "
        "WHERE monitor_id = ? AND key = ? AND token IN (?, '') LIMIT 1",
        (monitor_id, idempotency.key, idempotency.token),
    ).fetchone()
    return replayed(row, idempotency, resource)


def _remember(
    conn: sqlite3.Connection,
    idempotency: Idempotency | None,
    monitor_id: int,
    resource: str,
    resource_id: int,
    truncated: tuple[str, ...],
    now: float,
) -> None:
    if idempotency is not None:
        conn.execute(
            "INSERT INTO idempotency_key (monitor_id, token, key, fingerprint, resource, "
            "resource_id, truncated, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                monitor_id,
                idempotency.token,
                idempotency.key,
                idempotency.fingerprint,
                resource,
                resource_id,
                json.dumps(list(truncated)),
                now,
            ),
        )


def _record_correction(conn: sqlite3.Connection, correction: Correction) -> None:
    """Keep a correction of a finished batch, and only its newest few: a job re-reporting
    the same batch for ever must not grow the table for ever."""
    c = correction
    conn.execute(
        "INSERT INTO batch_correction (batch_id, at, token, old_status, new_status, changes) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (c.batch_id, c.at, c.token, c.old_status, c.new_status, c.changes),
    )
    conn.execute(
        "DELETE FROM batch_correction WHERE batch_id = ? AND id <= (SELECT id FROM "
        "batch_correction WHERE batch_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (c.batch_id, c.batch_id, CORRECTIONS_KEPT),
    )
