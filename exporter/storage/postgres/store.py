"""Every SQL statement of the PostgreSQL store: a connection pool, one round trip per report.

Several replicas of the service share one database. A report is one call of a function of the
schema (one implicit transaction: the row, its counters, its Idempotency-Key and a NOTIFY), and
is acknowledged after that COMMIT; PostgreSQL flushes the commits of concurrent sessions
together. Each write notifies the channel `integration_monitor` with the writing replica's id
and the monitors it touched: `changes` turns those notices into the monitors other replicas
must read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from dataclasses import fields, replace
from typing import Any

import asyncpg
import orjson

from exporter.core.counters import LATEST, CounterDelta
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
    merged,
    replayed,
    without_password,
)
from exporter.storage.common import migrations as shared_migrations
from exporter.storage.interface import (
    EvaluationRow,
    Idempotency,
    MonitorRuns,
    Stored,
    StoreStats,
)
from exporter.storage.postgres.group import GroupWriter

log = logging.getLogger(__name__)

CHANNEL = "integration_monitor"
MIGRATION_LOCK = 0x696D6D67  # pg_advisory_lock key: "immg"
LISTEN_CHECK_SECONDS = 5.0  # how often the listening connection is checked (half-open TCP)
RECONNECT_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
SIZE_SECONDS = 60.0

# A batch that could have happened: it did not start after it was received (clock skew allowed).
_PLAUSIBLE = "x.starttime <= x.created_at + $1"
# Driver errors that mean "the database is not there now": the caller gets 503 and retries.
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.ReadOnlySQLTransactionError,
    # The pool resetting a connection the server cut mid-statement (PostgreSQL stopping or
    # killed): "cannot switch to state ...". The connection is discarded; the caller retries
    # (with its Idempotency-Key, a report that did commit is not stored twice).
    asyncpg.InternalClientError,
    # Two replicas' groups changing the same batches in opposite orders: PostgreSQL cancels
    # one group; its reports were not stored and are sent again.
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


# Refused at connect for now: the database does not exist yet (an init script creates it) or
# does not take connections for the moment.
_NOT_YET = (asyncpg.InvalidCatalogNameError, asyncpg.ObjectNotInPrerequisiteStateError)


class SchemaTooNew(Exception):
    """The database was migrated by a newer version of the service: refuse to start."""


def _fields(record: Any) -> dict[str, Any]:
    """A record's fields by name, for a report's JSON (slotted dataclasses have no __dict__)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _monitor(row: Sequence[Any]) -> Monitor:
    settings = MonitorSettings(**dict(zip(SETTINGS, row[2:16], strict=True)))
    return Monitor(row[0], row[1], settings, *row[16:21])


def _batch(row: Sequence[Any]) -> Batch:
    return Batch(*row)


def _log(row: Sequence[Any]) -> Log:
    return Log(*row)


def migrations() -> list[tuple[int, str]]:
    """The numbered migration scripts of this store, in order."""
    return shared_migrations("exporter.storage.postgres")


async def apply_migrations(conn: asyncpg.Connection) -> list[int]:
    """Bring the schema up to date under an advisory lock (replicas starting together wait for
    each other); refuse a schema newer than this version knows. Returns the numbers applied."""
    known = migrations()
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migration (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migration")
        newest = known[-1][0] if known else 0
        if current > newest:
            raise SchemaTooNew(
                f"the database's schema is version {current}, newer than this version of the "
                f"service knows ({newest}): run the newer version, or restore a backup"
            )
        applied = []
        for number, script in known:
            if number <= current:
                continue
            async with conn.transaction():
                await conn.execute(script)
                await conn.execute("INSERT INTO schema_migration (version) VALUES ($1)", number)
            applied.append(number)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


def _named(role: str) -> dict[str, str]:
    """Connections say what they are in pg_stat_activity (integration-monitor listen, ...)."""
    return {"application_name": f"integration-monitor {role}"}


async def _listen(conn: asyncpg.Connection) -> asyncio.Queue[str | None]:
    """LISTEN on the channel: each notice's payload arrives in the queue, None when the
    connection ends."""
    notices: asyncio.Queue[str | None] = asyncio.Queue()
    conn.add_termination_listener(lambda _: notices.put_nowait(None))
    await conn.add_listener(CHANNEL, lambda *args: notices.put_nowait(args[3]))
    return notices


class PostgresStore:
    """The PostgreSQL store (see `exporter.storage.interface.Store`)."""

    def __init__(
        self,
        url: str,
        description: str,
        pool_size: int = 10,
        max_group: int = 500,
        command_timeout: float = 30.0,
    ) -> None:
        self._url = url
        self.description = description  # the URL without its password
        self._pool_size = pool_size
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        self.replica = uuid.uuid4().hex[:12]  # this process, in notices and the lease
        self._commits = 0
        self._size = 0
        self._size_task: asyncio.Task[None] | None = None
        self._writer = GroupWriter(self._write_group, max_group)

    # -- connections ------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (waiting for a database that is not there yet), migrate, open the pool."""
        conn = await self._first_connection()
        try:
            applied = await apply_migrations(conn)
        finally:
            await conn.close()
        if applied:
            log.info("database %s: applied migrations %s", self.description, applied)
        self._pool = await asyncpg.create_pool(
            self._url,
            min_size=1,
            max_size=self._pool_size,
            command_timeout=self._command_timeout,
            server_settings=_named("pool"),
        )
        self._size_task = asyncio.create_task(self._measure_size(), name="database-size")

    async def _first_connection(self) -> asyncpg.Connection:
        """Connect, retrying for as long as the database is away or starting (replicas may
        start before it); a wrong password or a refused login fails at once."""
        attempt = 0
        while True:
            try:
                return await asyncpg.connect(
                    self._url, timeout=self._command_timeout, server_settings=_named("migrate")
                )
            except (*_UNAVAILABLE, *_NOT_YET) as exc:
                delay = RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)]
                log.warning(
                    "database %s: not reachable (%s: %s); trying again in %.1f s",
                    self.description,
                    type(exc).__name__,
                    without_password(str(exc), self._url),
                    delay,
                )
                attempt += 1
                await asyncio.sleep(delay)

    async def close(self) -> None:
        await self._writer.close()
        if self._size_task is not None:
            self._size_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._size_task
        if self._pool is not None:
            with contextlib.suppress(*_UNAVAILABLE):  # a replica starting now takes over at once
                await self._pool.execute("DELETE FROM lease WHERE holder = $1", self.replica)
            with contextlib.suppress(*_UNAVAILABLE):
                async with asyncio.timeout(self._command_timeout):
                    await self._pool.close()
            self._pool = None

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE as exc:
            raise Unavailable(f"The database did not answer: {type(exc).__name__}") from None

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool
        if pool is None:
            raise Unavailable("The service is shutting down")
        try:
            conn = await pool.acquire()
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:  # refused at connect, any reason
            raise Unavailable(f"The database did not answer: {type(exc).__name__}") from None
        try:
            with self._errors():
                yield conn
        finally:
            with contextlib.suppress(*_UNAVAILABLE):
                await pool.release(conn)

    async def _all(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        async with self._conn() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *params)
            return rows

    async def _write(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        """One statement that writes, committed on return."""
        rows = await self._all(sql, *params)
        self._commits += 1
        return rows

    async def _notify(self, conn: asyncpg.Connection, monitor_ids: Collection[int]) -> None:
        """Tell the other replicas, at this transaction's COMMIT, which monitors changed."""
        if not monitor_ids:
            return
        await conn.execute("SELECT im_notify($1, $2::bigint[])", self.replica, list(monitor_ids))

    def stats(self) -> StoreStats:
        other = self._commits - self._writer.groups  # monitor changes, evaluations...
        return StoreStats(self._size, self._commits, self._writer.writes + other)

    async def _measure_size(self) -> None:
        while True:
            with contextlib.suppress(Unavailable):
                rows = await self._all("SELECT pg_database_size(current_database())")
                self._size = int(rows[0][0])
            await asyncio.sleep(SIZE_SECONDS)

    async def check_writable(self) -> None:
        """Raise unless the database answers and takes writes (not a standby in recovery)."""
        rows = await self._all(
            "SELECT pg_is_in_recovery() OR current_setting('default_transaction_read_only') = 'on'"
        )
        if rows[0][0]:
            raise Unavailable(f"The database {self.description} is read-only")

    # -- following other replicas -------------------------------------------------------------

    async def changes(self) -> AsyncIterator[frozenset[int] | None]:
        """The monitors other replicas changed, as they commit; None when everything must be
        read again: first once listening, then after each reconnection (notices sent while
        not listening are lost). Reconnects by itself, for ever."""
        attempt = 0
        while True:
            try:
                conn = await asyncpg.connect(
                    self._url, timeout=self._command_timeout, server_settings=_named("listen")
                )
            except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
                delay = RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)]
                if attempt == 0:
                    reason = without_password(str(exc), self._url)
                    log.warning("database %s: listening failed (%s)", self.description, reason)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            try:
                notices = await _listen(conn)
                if attempt:
                    log.info("database %s: listening again; reading everything", self.description)
                attempt = 0
                yield None
                async for changed in self._notices(conn, notices):
                    yield changed
            except (*_UNAVAILABLE, asyncpg.PostgresError):  # (the session was ended, say)
                pass
            finally:
                with contextlib.suppress(Exception):
                    conn.terminate()
            log.warning("database %s: lost the listening connection", self.description)
            attempt = 1

    async def _notices(
        self, conn: asyncpg.Connection, notices: asyncio.Queue[str | None]
    ) -> AsyncIterator[frozenset[int]]:
        """Notices of other replicas, all those waiting at once, until the connection fails."""
        while True:
            try:  # (asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel)
                async with asyncio.timeout(LISTEN_CHECK_SECONDS):
                    first = await notices.get()
            except TimeoutError:
                await conn.fetchval("SELECT 1", timeout=LISTEN_CHECK_SECONDS)
                continue
            payloads = [first]
            while not notices.empty():
                payloads.append(notices.get_nowait())
            if None in payloads or conn.is_closed():
                return
            changed: set[int] = set()
            for payload in payloads:
                origin, *ids = (payload or "").split()
                if origin != self.replica:
                    changed.update(int(i) for i in ids)
            if changed:
                yield frozenset(changed)

    async def take_lease(self, name: str, seconds: float) -> bool:
        """Take or renew the lease `name` for `seconds` (the database's clock); True while this
        replica holds it."""
        rows = await self._write(
            "INSERT INTO lease AS l (name, holder, expires_at) "
            "VALUES ($1, $2, now() + make_interval(secs => $3)) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
            "expires_at = excluded.expires_at "
            "WHERE l.holder = excluded.holder OR l.expires_at < now() RETURNING holder",
            name,
            self.replica,
            seconds,
        )
        return bool(rows)

    # -- monitors ---------------------------------------------------------------------------

    async def put_monitor(
        self, key: str, settings: MonitorSettings, now: float
    ) -> tuple[Monitor, bool]:
        cols = ", ".join(SETTINGS)
        marks = ", ".join(f"${i}" for i in range(2, len(SETTINGS) + 2))
        n = len(SETTINGS) + 2
        async with self._conn() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"INSERT INTO integration_monitor AS m (integration_key, {cols}, created_at, "
                f"updated_at) VALUES ($1, {marks}, ${n}, ${n}) ON CONFLICT (integration_key) DO "
                "UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in SETTINGS)
                + f", updated_at = excluded.updated_at RETURNING {MONITOR_COLS}, "
                "(xmax = 0) AS created",
                key,
                *(getattr(settings, c) for c in SETTINGS),
                now,
            )
            monitor = _monitor(row)
            await self._notify(conn, [monitor.id])
        self._commits += 1
        return monitor, bool(row["created"])

    async def patch_monitor(self, key: str, changes: dict[str, Any], now: float) -> Monitor:
        async with self._conn() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {MONITOR_COLS} FROM integration_monitor m "
                "WHERE m.integration_key = $1 FOR UPDATE",
                key,
            )
            if row is None:
                raise MonitorNotFound(key)
            settings = replace(_monitor(row).settings, **changes)
            sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(SETTINGS, start=2))
            new = await conn.fetchrow(
                f"UPDATE integration_monitor m SET {sets}, updated_at = ${len(SETTINGS) + 2} "
                f"WHERE m.integration_key = $1 RETURNING {MONITOR_COLS}",
                key,
                *(getattr(settings, c) for c in SETTINGS),
                now,
            )
            monitor = _monitor(new)
            await self._notify(conn, [monitor.id])
        self._commits += 1
        return monitor

    async def delete_monitor(self, key: str) -> Monitor:
        async with self._conn() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"DELETE FROM integration_monitor m WHERE m.integration_key = $1 "
                f"RETURNING {MONITOR_COLS}",
                key,
            )
            if row is None:
                raise MonitorNotFound(key)
            monitor = _monitor(row)
            await self._notify(conn, [monitor.id])
        self._commits += 1
        return monitor

    async def list_monitors(self) -> list[Monitor]:
        rows = await self._all(
            f"SELECT {MONITOR_COLS} FROM integration_monitor m ORDER BY m.integration_key"
        )
        return [_monitor(r) for r in rows]

    async def save_evaluations(
        self, results: Sequence[EvaluationRow], transitions: Sequence[Transition]
    ) -> None:
        """Store alert statuses; record a transition only where this write changes the stored
        status (a conditional update): however many replicas evaluate one change, it is
        recorded once. A result older than the stored one (a replica's save that arrived
        late) changes nothing. Other replicas are told of the monitors whose status or text
        changed."""
        if not results:
            return
        reasons = {t.monitor_id: t.reason for t in transitions}
        ids = [r[0] for r in results]
        async with self._conn() as conn, conn.transaction():
            # Lock the rows first, in id order: two passes at once (a lease changing hands)
            # then wait for each other instead of deadlocking.
            await conn.execute(
                "SELECT 1 FROM integration_monitor WHERE id = ANY($1::bigint[]) ORDER BY id "
                "FOR NO KEY UPDATE",
                ids,
            )
            changed = await conn.fetch(
                "WITH new AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], "
                "$4::float8[], $5::text[]) AS n (id, status, text, at, reason)), "
                "old AS (SELECT m.id, m.alertstatus, m.alerttext FROM integration_monitor m "
                "JOIN new USING (id) WHERE m.alert_timestamp IS NULL OR m.alert_timestamp <= "
                "new.at ORDER BY m.id FOR NO KEY UPDATE OF m), "
                "upd AS (UPDATE integration_monitor m SET alertstatus = new.status, "
                "alerttext = new.text, alert_timestamp = new.at FROM new, old "
                "WHERE m.id = new.id AND old.id = new.id RETURNING m.id), "
                "moved AS (INSERT INTO alert_transition (monitor_id, old_status, new_status, "
                "reason, at) SELECT old.id, old.alertstatus, new.status, new.reason, new.at "
                "FROM old JOIN new USING (id) WHERE old.alertstatus <> new.status) "
                "SELECT old.id FROM old JOIN new USING (id) WHERE old.alertstatus <> new.status "
                "OR old.alerttext <> new.text",
                ids,
                [r[1] for r in results],
                [r[2] for r in results],
                [r[3] for r in results],
                [reasons.get(i, "") for i in ids],
            )
            await self._notify(conn, [r[0] for r in changed])
        self._commits += 1

    async def list_transitions(self, monitor_id: int, limit: int) -> list[Transition]:
        rows = await self._all(
            "SELECT monitor_id, old_status, new_status, reason, at FROM alert_transition "
            "WHERE monitor_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
            monitor_id,
            limit,
        )
        return [Transition(*r) for r in rows]

    # -- reports ----------------------------------------------------------------------------

    async def _write_group(self, ops: list[dict[str, Any]]) -> list[asyncpg.Record]:
        """Store a group of reports in one transaction (the schema's `im_write`)."""
        rows: list[asyncpg.Record] = await self._all(
            "SELECT * FROM im_write($1::jsonb, $2, $3)",
            orjson.dumps(ops).decode(),
            self.replica,
            CORRECTIONS_KEPT,
        )
        self._commits += 1
        return rows

    async def _report(
        self,
        op: dict[str, Any],
        key: str,
        truncated: tuple[str, ...],
        idempotency: Idempotency | None,
        deltas: Sequence[CounterDelta],
    ) -> tuple[int, bool, tuple[str, ...]] | None:
        """Store one report in the next group: (id, replayed, truncated of the replayed
        report), or None when a change found its batch changed meanwhile."""
        i = idempotency
        op["key"] = None if i is None else i.key
        op["token"] = None if i is None else i.token
        op["fingerprint"] = None if i is None else i.fingerprint
        op["truncated"] = json.dumps(list(truncated))
        op["counters"] = [[k, n, d] for (k, n), d in merged(deltas).items()]
        row = await self._writer.run(op)
        error = row["error"]
        if error == "changed":
            return None
        if error == "monitor":
            raise MonitorNotFound(key)  # deleted meanwhile: as if a moment later
        if error == "batch_not_found":
            raise BatchNotFound(op["batch_id"], "batch_id")
        if error == "batch_of_other":
            raise BatchOfOtherMonitor(op["batch_id"])
        if not row["replayed"]:
            return int(row["id"]), False, ()
        assert idempotency is not None
        earlier = (row["fingerprint"], row["resource"], row["id"], row["truncated"])
        resource = "log" if op["op"] == "log" else "batch"
        found = replayed(earlier, idempotency, resource)
        assert found is not None
        return found[0], True, found[1]

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
        n = new
        op = {"op": "batch", "monitor": monitor_id, "now": now, **_fields(n)}
        done = await self._report(op, key, truncated, idempotency, deltas)
        assert done is not None
        batch_id, replay, cut = done
        if replay:
            return Stored(await self._batch_of_replay(batch_id), True, cut)
        batch = Batch(
            batch_id, monitor_id, key, n.logstatus, n.integrationid, n.starttime, n.endtime,
            n.duration, n.no_created, n.no_updated, n.no_deleted, n.logtext, n.errormsg, now, now,
        )  # fmt: skip
        return Stored(batch, False, truncated)

    async def _batch_of_replay(self, batch_id: int) -> Batch:
        record = await self.get_batch(batch_id)
        if record is None:
            raise BatchNotFound(batch_id)
        return record

    async def update_batch(
        self,
        old: Batch,
        new: Batch,
        truncated: tuple[str, ...],
        idempotency: Idempotency | None,
        deltas: Sequence[CounterDelta],
        correction: Correction | None,
    ) -> Stored[Batch] | None:
        c = correction
        op = {
            "op": "update",
            "monitor": old.monitor_id,
            "id": old.id,
            "now": new.updated_at,
            "old": _fields(old),
            "new": _fields(new),
            "correction": None if c is None else _fields(c),
        }
        done = await self._report(op, old.integration_key, truncated, idempotency, deltas)
        if done is None:
            return None
        batch_id, replay, cut = done
        if replay:
            return Stored(await self._batch_of_replay(batch_id), True, cut)
        return Stored(new, False, truncated)

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
        n = new
        op = {"op": "log", "monitor": monitor_id, "now": now, **_fields(n)}
        done = await self._report(op, key, truncated, idempotency, deltas)
        assert done is not None
        log_id, replay, cut = done
        if replay:
            rows = await self._all(f"SELECT {LOG_COLS} FROM {LOG_FROM} WHERE l.id = $1", log_id)
            return Stored(_log(rows[0]), True, cut)
        entry = Log(
            log_id, monitor_id, key, n.batch_id, n.logstatus, n.integrationid, n.logtext,
            n.errormsg, n.message, now,
        )  # fmt: skip
        return Stored(entry, False, truncated)

    async def replayed(
        self, idempotency: Idempotency, monitor_id: int, resource: str
    ) -> tuple[int, tuple[str, ...]] | None:
        rows = await self._all(
            "SELECT fingerprint, resource, resource_id, truncated FROM idempotency_key "
            "WHERE monitor_id = $1 AND key = $2 AND token IN ($3, '') LIMIT 1",
            monitor_id,
            idempotency.key,
            idempotency.token,
        )
        return replayed(rows[0] if rows else None, idempotency, resource)

    async def get_batch(self, batch_id: int) -> Batch | None:
        rows = await self._all(f"SELECT {BATCH_COLS} FROM {BATCH_FROM} WHERE b.id = $1", batch_id)
        return _batch(rows[0]) if rows else None

    async def find_running_batch(self, monitor_id: int, integrationid: str) -> Batch | None:
        rows = await self._all(
            f"SELECT {BATCH_COLS} FROM {BATCH_FROM} WHERE b.monitor_id = $1 "
            "AND b.integrationid = $2 AND b.endtime IS NULL "
            "ORDER BY b.starttime DESC, b.id DESC LIMIT 1",
            monitor_id,
            integrationid,
        )
        return _batch(rows[0]) if rows else None

    async def list_batches(
        self, monitor_id: int, limit: int, before: tuple[float, int] | None
    ) -> list[Batch]:
        where, params = "b.monitor_id = $1", [monitor_id]
        if before is not None:
            where += " AND (b.starttime, b.id) < ($3, $4)"
        rows = await self._all(
            f"SELECT {BATCH_COLS} FROM {BATCH_FROM} WHERE {where} "
            "ORDER BY b.starttime DESC, b.id DESC LIMIT $2",
            *params,
            limit,
            *(() if before is None else (float(before[0]), int(before[1]))),
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
        clauses: list[str] = ["l.batch_id IS NULL"] if outside_batches else []
        params: list[Any] = [limit]
        if monitor_id is not None:
            params.append(monitor_id)
            clauses.append(f"l.monitor_id = ${len(params)}")
        if batch_id is not None:
            params.append(batch_id)
            clauses.append(f"l.batch_id = ${len(params)}")
        if before is not None:
            params += [float(before[0]), int(before[1])]
            clauses.append(f"(l.created_at, l.id) < (${len(params) - 1}, ${len(params)})")
        rows = await self._all(
            f"SELECT {LOG_COLS} FROM {LOG_FROM} WHERE {' AND '.join(clauses) or 'true'} "
            "ORDER BY l.created_at DESC, l.id DESC LIMIT $1",
            *params,
        )
        return [_log(r) for r in rows]

    async def list_corrections(self, batch_ids: Sequence[int]) -> list[Correction]:
        if not batch_ids:
            return []
        rows = await self._all(
            "SELECT batch_id, at, token, old_status, new_status, changes FROM batch_correction "
            "WHERE batch_id = ANY($1::bigint[]) ORDER BY id",
            list(batch_ids),
        )
        return [Correction(*r) for r in rows]

    # -- start-up, following, retention -------------------------------------------------------

    async def load_runs(
        self,
        finished_statuses: Sequence[str],
        max_clock_skew: float = 0.0,
        monitor_ids: Collection[int] | None = None,
    ) -> list[MonitorRuns]:
        """Every monitor (or those of `monitor_ids`) with its latest run, its latest finished
        run and its counters: one statement each, whatever the number of monitors."""
        chosen = None if monitor_ids is None else list(monitor_ids)
        which = "($1::bigint[] IS NULL OR m.id = ANY($1::bigint[]))"
        statuses = list(finished_statuses)
        newest: dict[tuple[str, int], Batch | Log] = {}
        counters: dict[int, list[tuple[str, str, float]]] = {}
        async with self._conn() as conn, conn.transaction(isolation="repeatable_read"):
            # One snapshot for all of it: a run and its counters, never one without the other.
            monitors = [
                _monitor(r)
                for r in await conn.fetch(
                    f"SELECT {MONITOR_COLS} FROM integration_monitor m WHERE {which} "
                    "ORDER BY m.integration_key",
                    chosen,
                )
            ]
            for mid, kind, name, value in await conn.fetch(
                "SELECT c.monitor_id, c.kind, c.name, c.value FROM monitor_counter c "
                f"JOIN integration_monitor m ON m.id = c.monitor_id WHERE {which}",
                chosen,
            ):
                counters.setdefault(mid, []).append((kind, name, value))
            for label, finished, extra in (
                ("latest", "", ()),
                ("finished", "AND x.logstatus = ANY($3::text[])", (statuses,)),
            ):
                for row in await conn.fetch(
                    f"SELECT {BATCH_COLS} FROM integration_monitor m CROSS JOIN LATERAL "
                    "(SELECT * FROM integration_monitor_batch x WHERE x.monitor_id = m.id "
                    f"{finished} AND x.starttime <= x.created_at + $2 "
                    f"ORDER BY x.starttime DESC, x.id DESC LIMIT 1) b "
                    f"WHERE m.type = 'batch' AND {which}",
                    chosen,
                    max_clock_skew,
                    *extra,
                ):
                    batch = _batch(row)
                    newest[(label, batch.monitor_id)] = batch
                for row in await conn.fetch(
                    f"SELECT {LOG_COLS} FROM integration_monitor m CROSS JOIN LATERAL "
                    "(SELECT * FROM integration_monitor_log x WHERE x.monitor_id = m.id "
                    f"{finished.replace('$3', '$2')} ORDER BY x.created_at DESC, x.id DESC "
                    f"LIMIT 1) l WHERE m.type = 'message' AND {which}",
                    chosen,
                    *extra,
                ):
                    entry = _log(row)
                    newest[(label, entry.monitor_id)] = entry
        return [
            MonitorRuns(
                m,
                newest.get(("latest", m.id)),
                newest.get(("finished", m.id)),
                counters.get(m.id, []),
            )
            for m in monitors
        ]

    async def repair_success_times(self, limit: float, ok_statuses: Sequence[str]) -> int:
        """As the SQLite store's: last-success times beyond `limit`, found again from the runs
        (never later than each was received), or dropped when none is left."""
        async with self._conn() as conn, conn.transaction():
            ids = [
                r[0]
                for r in await conn.fetch(
                    "SELECT monitor_id FROM monitor_counter WHERE kind = $1 AND name = 'success' "
                    "AND value > $2",
                    LATEST,
                    limit,
                )
            ]
            for monitor_id in ids:
                found = await conn.fetchval(
                    "SELECT max(t) FROM (SELECT least(coalesce(b.endtime, b.starttime), "
                    "b.updated_at) AS t FROM integration_monitor_batch b JOIN "
                    "integration_monitor m ON m.id = b.monitor_id WHERE b.monitor_id = $1 "
                    "AND m.type = 'batch' AND b.logstatus = ANY($2) UNION ALL "
                    "SELECT l.created_at FROM integration_monitor_log l JOIN "
                    "integration_monitor m ON m.id = l.monitor_id WHERE l.monitor_id = $1 "
                    "AND m.type = 'message' AND l.logstatus = ANY($2)) s WHERE t <= $3",
                    monitor_id,
                    list(ok_statuses),
                    limit,
                )
                if found is None:
                    await conn.execute(
                        "DELETE FROM monitor_counter WHERE monitor_id = $1 AND kind = $2 "
                        "AND name = 'success'",
                        monitor_id,
                        LATEST,
                    )
                else:
                    await conn.execute(
                        "UPDATE monitor_counter SET value = $1 WHERE monitor_id = $2 "
                        "AND kind = $3 AND name = 'success'",
                        found,
                        monitor_id,
                        LATEST,
                    )
            if ids:
                await self._notify(conn, ids)
        self._commits += 1
        return len(ids)

    async def prune(
        self,
        cutoff: float,
        idempotency_cutoff: float,
        max_clock_skew: float = 0.0,
        transitions_kept: int = 100,
        chunk: int = 5000,
    ) -> int:
        """As the SQLite store's: old batches and logs in chunks (never a monitor's latest),
        then keys, sessions and all but each monitor's newest transitions."""
        keep_runs = [
            r[0]
            for finished in ("true", "x.endtime IS NOT NULL")
            for r in await self._all(
                "SELECT b.id FROM integration_monitor m CROSS JOIN LATERAL (SELECT x.id FROM "
                f"integration_monitor_batch x WHERE x.monitor_id = m.id AND {finished} "
                f"AND {_PLAUSIBLE} ORDER BY x.starttime DESC, x.id DESC LIMIT 1) b",
                max_clock_skew,
            )
        ]
        keep_logs = [
            r[0]
            for r in await self._all(
                "SELECT l.id FROM integration_monitor m CROSS JOIN LATERAL (SELECT x.id FROM "
                "integration_monitor_log x WHERE x.monitor_id = m.id "
                "ORDER BY x.created_at DESC, x.id DESC LIMIT 1) l"
            )
        ]
        deleted = 0
        for table, keep in (
            ("integration_monitor_log", keep_logs),
            ("integration_monitor_batch", keep_runs),
        ):
            # Ids grow with created_at: every row below the first id created at or after the
            # cutoff is old (found in id order, without an index on created_at).
            rows = await self._all(
                f"SELECT coalesce((SELECT id FROM {table} WHERE created_at >= $1 ORDER BY id "
                f"LIMIT 1), (SELECT coalesce(max(id), 0) + 1 FROM {table}))",
                cutoff,
            )
            while True:
                status = await self._conn_execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE id < $1 "
                    "AND NOT (id = ANY($2::bigint[])) ORDER BY id LIMIT $3)",
                    rows[0][0],
                    keep,
                    chunk,
                )
                count = int(status.rpartition(" ")[2])
                deleted += count
                if count < chunk:
                    break
        await self._conn_execute(
            "DELETE FROM idempotency_key WHERE created_at < $1", idempotency_cutoff
        )
        await self._conn_execute(
            "DELETE FROM web_session WHERE expires_at < $1", idempotency_cutoff
        )
        status = await self._conn_execute(
            "DELETE FROM alert_transition t USING (SELECT id, row_number() OVER (PARTITION BY "
            "monitor_id ORDER BY at DESC, id DESC) AS n FROM alert_transition) r "
            "WHERE t.id = r.id AND r.n > $1",
            transitions_kept,
        )
        return deleted + int(status.rpartition(" ")[2])

    async def _conn_execute(self, sql: str, *params: Any) -> str:
        async with self._conn() as conn:
            status: str = await conn.execute(sql, *params)
        self._commits += 1
        return status

    # -- status page sessions -----------------------------------------------------------------

    async def create_session(
        self, id_hash: bytes, token_digest: bytes, now: float, expires: float, per_token: int
    ) -> None:
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO web_session (id_hash, token_digest, created_at, expires_at) "
                "VALUES ($1, $2, $3, $4)",
                id_hash,
                token_digest,
                now,
                expires,
            )
            await conn.execute(
                "DELETE FROM web_session WHERE id_hash IN (SELECT id_hash FROM web_session "
                "WHERE token_digest = $1 ORDER BY created_at DESC OFFSET $2)",
                token_digest,
                per_token,
            )
        self._commits += 1

    async def find_session(self, id_hash: bytes, now: float) -> bytes | None:
        rows = await self._all(
            "SELECT token_digest FROM web_session WHERE id_hash = $1 AND expires_at > $2",
            id_hash,
            now,
        )
        return bytes(rows[0][0]) if rows else None

    async def delete_session(self, id_hash: bytes) -> None:
        await self._conn_execute("DELETE FROM web_session WHERE id_hash = $1", id_hash)
