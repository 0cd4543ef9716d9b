"""Copy an SQLite database of the service into an empty PostgreSQL database (`migrate-db`).

1. Open the SQLite file read-only (never create one) and refuse a schema older or newer than
   this version's newest SQLite migration: the service brings an old file up to date when it
   starts on it, so this module never writes to the source.
2. Connect to PostgreSQL and apply its migrations (the schema of SQLite's newest version).
3. In one transaction: lock the data tables, refuse if any of them holds a row, copy each
   table in chunks (ids kept, so batch_id, resource_id and corrections still point right;
   0/1 become booleans), move each identity sequence past the largest id copied, and compare
   row counts and counter sums with the source's. Any difference rolls everything back.

The SQLite side is read in one read transaction, so the copy is one moment of the source even
if a service still writes to it (what it writes afterwards is not copied: stop it first).
Messages never contain the URL: the caller knows it and prints it without its password.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import asyncpg

from exporter.core.reports import without_nul
from exporter.storage.common import SETTINGS
from exporter.storage.postgres import store as postgres
from exporter.storage.sqlite import store as sqlite

CHUNK = 10_000  # rows read from SQLite and sent to PostgreSQL at a time


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    booleans: tuple[str, ...] = ()  # INTEGER 0/1 in SQLite, boolean in PostgreSQL
    identity: bool = True  # an `id` column with a sequence to move past the copied ids


def _table(name: str, columns: str, booleans: str = "", identity: bool = True) -> Table:
    return Table(name, tuple(columns.split()), tuple(booleans.split()), identity)


# In the order foreign keys need: monitors, then what points at them.
TABLES = (
    _table(
        "integration_monitor",
        f"id integration_key {' '.join(SETTINGS)} alertstatus alerttext alert_timestamp "
        "created_at updated_at",
        booleans="active duration_histogram",
    ),
    _table(
        "integration_monitor_batch",
        "id monitor_id logstatus integrationid starttime endtime duration no_created no_updated "
        "no_deleted logtext errormsg created_at updated_at",
    ),
    _table(
        "integration_monitor_log",
        "id monitor_id batch_id logstatus integrationid logtext errormsg message created_at",
    ),
    _table("alert_transition", "id monitor_id old_status new_status reason at"),
    _table("monitor_counter", "monitor_id kind name value", identity=False),
    _table(
        "idempotency_key",
        "monitor_id token key fingerprint resource resource_id truncated created_at",
        identity=False,
    ),
    _table("batch_correction", "id batch_id at token old_status new_status changes"),
    _table("web_session", "id_hash token_digest created_at expires_at", identity=False),
)

# The database is not there, will not let us in, or refused a statement.
_DRIVER_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class MigrationRefused(Exception):
    """Nothing was copied: the source or the target is not fit (the message says why)."""


class MigrationFailed(Exception):
    """The copy started and was rolled back: the target is as it was."""


@dataclass(frozen=True, slots=True)
class Copied:
    """What was copied: rows per table (in copy order), counter sums per kind, and how long
    the copy took."""

    rows: dict[str, int]
    counters: dict[str, float]
    seconds: float


def _open_source(path: str) -> sqlite3.Connection:
    """The SQLite file, read-only, at this version's newest schema; `MigrationRefused` else."""
    if not os.path.isfile(path):
        raise MigrationRefused(f"{path}: no such SQLite file")
    uri = f"file:{quote(os.path.abspath(path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise MigrationRefused(f"{path}: cannot read it as an SQLite database: {exc}") from None
    newest = sqlite.migrations()[-1][0]
    if version != newest:
        conn.close()
        if version == 0:
            raise MigrationRefused(f"{path}: not a database of integration-monitor")
        if version > newest:
            raise MigrationRefused(
                f"{path}: its schema is version {version}, newer than this version of the "
                f"service knows ({newest}): run migrate-db of the version that wrote it"
            )
        raise MigrationRefused(
            f"{path}: its schema is version {version}, older than {newest}: start this "
            "version of the service on it once (it migrates the file at start), stop it, "
            "then run migrate-db again"
        )
    return conn


def _source_rows(conn: sqlite3.Connection, table: Table, chunk: int) -> Iterator[list[Any]]:
    """The table's rows in chunks, booleans as booleans, NUL in a text as U+FFFD (what the
    service stores since: PostgreSQL's text cannot hold NUL)."""
    cursor = conn.execute(f"SELECT {', '.join(table.columns)} FROM {table.name}")
    flags = [table.columns.index(name) for name in table.booleans]
    while rows := cursor.fetchmany(chunk):
        out = []
        for row in rows:
            values = [without_nul(v) if type(v) is str and "\x00" in v else v for v in row]
            for i in flags:
                if values[i] is not None:
                    values[i] = bool(values[i])
            out.append(values)
        yield out


def _counter_sums(rows: Sequence[Any]) -> dict[str, float]:
    return {str(kind): float(total or 0.0) for kind, total in rows}


async def migrate(path: str, url: str, chunk: int = CHUNK) -> Copied:
    """Copy the SQLite database at `path` into the empty PostgreSQL database at `url`."""
    source = _open_source(path)
    try:
        source.execute("BEGIN")  # one snapshot of every table
        expected = {
            t.name: source.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] for t in TABLES
        }
        expected_sums = _counter_sums(
            source.execute(
                "SELECT kind, sum(value) FROM monitor_counter GROUP BY kind ORDER BY kind"
            ).fetchall()
        )
        try:
            target = await asyncpg.connect(url, timeout=10.0)
        except (*_DRIVER_ERRORS, ValueError) as exc:  # ValueError: a malformed URL
            raise MigrationRefused(f"cannot connect to the database: {exc}") from None
        try:
            return await _copy(source, target, expected, expected_sums, chunk)
        finally:
            await target.close()
    finally:
        source.close()


async def _copy(
    source: sqlite3.Connection,
    target: asyncpg.Connection,
    expected: dict[str, int],
    expected_sums: dict[str, float],
    chunk: int,
) -> Copied:
    try:
        await postgres.apply_migrations(target)
    except postgres.SchemaTooNew as exc:
        raise MigrationRefused(str(exc)) from None
    except _DRIVER_ERRORS as exc:
        raise MigrationRefused(f"cannot create the schema: {exc}") from None
    started = time.monotonic()
    try:
        copied = await _copy_in_transaction(source, target, expected, expected_sums, chunk)
    except _DRIVER_ERRORS as exc:  # the connection went, or COMMIT failed
        raise MigrationFailed(
            f"the database failed during the copy: {exc}; the transaction was not committed "
            "(run migrate-db again: an empty target takes the copy, a full one is refused)"
        ) from None
    return Copied(copied, expected_sums, time.monotonic() - started)


async def _copy_in_transaction(
    source: sqlite3.Connection,
    target: asyncpg.Connection,
    expected: dict[str, int],
    expected_sums: dict[str, float],
    chunk: int,
) -> dict[str, int]:
    names = ", ".join(t.name for t in TABLES)
    transaction = target.transaction()
    await transaction.start()
    try:
        # No replica writes while we look and copy (one started too early waits).
        await target.execute(f"LOCK TABLE {names} IN EXCLUSIVE MODE")
        for table in TABLES:
            if await target.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table.name})"):
                raise MigrationRefused(
                    f"the target database is not empty (table {table.name} has rows): "
                    "migrate-db copies only into an empty database"
                )
        for table in TABLES:
            try:
                await _copy_table(source, target, table, chunk)
            # TypeError, ValueError: a value that does not fit its column's type (SQLite
            # lets any column hold any type).
            except (*_DRIVER_ERRORS, TypeError, ValueError) as exc:
                raise MigrationFailed(
                    f"copying {table.name} failed: {exc}; nothing was copied"
                ) from None
        copied = await _verify(target, expected, expected_sums)
    except BaseException:
        with contextlib.suppress(*_DRIVER_ERRORS):  # a lost connection rolls back by itself
            await transaction.rollback()
        raise
    await transaction.commit()
    return copied


async def _copy_table(
    source: sqlite3.Connection, target: asyncpg.Connection, table: Table, chunk: int
) -> None:
    for rows in _source_rows(source, table, chunk):
        await target.copy_records_to_table(table.name, records=rows, columns=list(table.columns))
    if table.identity:
        # Reports after the move must not reuse a copied id.
        await target.execute(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
            f"coalesce(max(id), 0) + 1, false) FROM {table.name}"
        )


async def _verify(
    target: asyncpg.Connection, expected: dict[str, int], expected_sums: dict[str, float]
) -> dict[str, int]:
    """The target's row counts; `MigrationFailed` unless they and the counter sums per kind
    equal the source's."""
    found = {t.name: int(await target.fetchval(f"SELECT count(*) FROM {t.name}")) for t in TABLES}
    for name, count in expected.items():
        if found[name] != count:
            raise MigrationFailed(
                f"verification failed: table {name} has {count} rows in SQLite but "
                f"{found[name]} in PostgreSQL; nothing was copied"
            )
    sums = _counter_sums(
        await target.fetch(
            "SELECT kind, sum(value) FROM monitor_counter GROUP BY kind ORDER BY kind"
        )
    )
    for kind in expected_sums.keys() | sums.keys():
        want, got = expected_sums.get(kind), sums.get(kind)
        if want is None or got is None or not math.isclose(want, got, rel_tol=1e-9):
            raise MigrationFailed(
                f"verification failed: the counters of kind {kind!r} sum to {want} in SQLite "
                f"but {got} in PostgreSQL; nothing was copied"
            )
    return found
