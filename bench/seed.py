"""Seeding a benchmark database directly with sqlite3, in the service's own schema.

Monitors, batches and counters are written consistently, as the service would have written them
had it received every run: each monitor's counters add up to its batches, and a monitor's last run
decides its alert status at the first evaluation (every tenth one ends in error).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bench.plan import key
from exporter.config import MetricsConfig
from exporter.core.counters import SUCCESS, DurationBuckets
from exporter.storage.sqlite.store import apply_migrations

NOW = time.time()
SPACING = 600.0  # seconds between two runs of a monitor
RUN_SECONDS = 30.0  # every seeded run lasts this long
ALERT_INTERVAL = 60  # minutes; more than SPACING, so a seeded monitor is not stale
CHUNK = 50_000


# Statuses of a monitor's earlier runs, in turn (built-in ones: the service runs without the
# shipped config's custom statuses), so that every monitor has used a few statuses and has
# succeeded once, as a real one has: series that appear on a status's first use, or on the
# first success, all exist. The latest run is ok, or error for every tenth monitor
# (`failing`), whose history starts with an ok run instead.
HISTORY = ("error", "donewitherror", "ok")
FAILING_HISTORY = ("ok", "donewitherror", "error")


def failing(index: int) -> bool:
    """Whether the index-th monitor's latest seeded run failed."""
    return index % 10 == 9


def status(index: int, k: int, per_monitor: int) -> str:
    """The status of the index-th monitor's k-th run (of `per_monitor`)."""
    if k == per_monitor - 1:
        return "error" if failing(index) else "ok"
    history = FAILING_HISTORY if failing(index) else HISTORY
    return history[k % len(history)]


def _start(k: int, per_monitor: int, now: float) -> float:
    return now - (per_monitor - k) * SPACING


# (schedule, timezone, grace): a fleet's mix of schedules, shared by many monitors each. The
# seeded runs come every 10 minutes, so most are on time; `* * * * *` with a one-minute grace
# has missed its runs (the alert text names the missed one: the slower path).
SHARED_SCHEDULES: tuple[tuple[str, str, int], ...] = (
    ("*/10 * * * *", "UTC", 10),
    ("*/5 * * * *", "UTC", 10),
    ("* * * * *", "UTC", 1),
    ("0 * * * *", "UTC", 10),
    ("@hourly", "Europe/London", 10),
    ("30 * * * *", "Europe/Stockholm", 10),
    ("0 2 * * *", "Europe/Stockholm", 10),
    ("30 2 * * *", "America/New_York", 10),
    ("*/15 8-17 * * MON-FRI", "America/New_York", 5),
    ("0 6 * * 1", "Asia/Tokyo", 60),
    ("@daily", "UTC", 60),
    ("@weekly", "Australia/Sydney", 60),
    ("@monthly", "Europe/Berlin", 60),
    ("0 0 1 jan,jul *", "UTC", 60),
    ("*/20 * * * *", "America/Los_Angeles", 10),
    ("0 */2 * * *", "Asia/Kolkata", 10),
)
_ZONES = ("UTC", "Europe/Stockholm", "America/New_York", "Asia/Tokyo", "Europe/London",
          "America/Sao_Paulo", "Australia/Sydney")  # fmt: skip


def distinct_schedules(count: int) -> list[tuple[str, str, int]]:
    """One schedule per monitor: a daily time of its own (1,440 per zone), in seven zones."""
    return [(f"{i % 60} {i // 60 % 24} * * *", _ZONES[i // 1440 % 7], 10) for i in range(count)]


def _monitors(
    count: int, now: float, schedules: Sequence[tuple[str, str, int]]
) -> Iterator[tuple[object, ...]]:
    created = now - 60 * 86400
    for i in range(count):
        if schedules:
            schedule, zone, grace = schedules[i % len(schedules)]
            yield (i + 1, key(i), key(i), "batch", 1, 0, schedule, zone, grace, created, created)
        else:
            yield (
                i + 1,
                key(i),
                key(i),
                "batch",
                1,
                ALERT_INTERVAL,
                "",
                "UTC",
                10,
                created,
                created,
            )


def _batches(monitors: int, per_monitor: int, now: float) -> Iterator[tuple[object, ...]]:
    """Runs in time order across monitors, as they would have arrived."""
    for k in range(per_monitor):
        start = _start(k, per_monitor, now)
        end = start + RUN_SECONDS
        for i in range(monitors):
            run_status = status(i, k, per_monitor)
            yield (
                i + 1,
                run_status,
                start,
                end,
                RUN_SECONDS,
                k % 7,
                "" if run_status == "ok" else "seeded failure",
                end,
                end,
            )


def _counters(monitors: int, per_monitor: int, now: float) -> Iterator[tuple[object, ...]]:
    bucket = DurationBuckets(MetricsConfig().duration_buckets).deltas(RUN_SECONDS)[0][1]
    created = sum(k % 7 for k in range(per_monitor))
    for i in range(monitors):
        runs: dict[str, int] = {}
        success = 0.0  # the end of the latest ok run, as the service keeps it
        for k in range(per_monitor):
            run_status = status(i, k, per_monitor)
            runs[run_status] = runs.get(run_status, 0) + 1
            if run_status == "ok":
                success = _start(k, per_monitor, now) + RUN_SECONDS
        values = {
            SUCCESS: success,
            **{("runs", name): count for name, count in sorted(runs.items())},
            ("objects", "created"): created,
            ("objects", "updated"): 0,
            ("objects", "deleted"): 0,
            ("duration", bucket): per_monitor,
            ("duration", "sum"): per_monitor * RUN_SECONDS,
            ("duration", "count"): per_monitor,
        }
        for (kind, name), value in values.items():
            if value:
                yield (i + 1, kind, name, float(value))


def _chunks(rows: Iterator[tuple[object, ...]]) -> Iterator[list[tuple[object, ...]]]:
    chunk: list[tuple[object, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def seed(
    path: Path,
    monitors: int,
    runs: int,
    now: float = NOW,
    schedules: Sequence[tuple[str, str, int]] = (),
    schema: Callable[[Path], None] | None = None,
) -> float:
    """Create `path` with `monitors` batch monitors and `runs` batches spread evenly over them;
    with `schedules`, monitor i has the i-th (round robin) instead of an alert interval.

    `schema(path)` creates the tables when the service runs another source tree (its own
    migrations, which may be older or newer than this one's); by default this tree's.

    Returns the seconds it took.
    """
    started = time.perf_counter()
    per_monitor = runs // monitors if monitors else 0
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if schema is not None:
        schema(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        if schema is None:
            apply_migrations(conn)
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO integration_monitor (id, integration_key, name, type, active, "
            "alert_interval, schedule, timezone, grace, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            _monitors(monitors, now, schedules),
        )
        for chunk in _chunks(_batches(monitors, per_monitor, now)):
            conn.executemany(
                "INSERT INTO integration_monitor_batch (monitor_id, logstatus, starttime, "
                "endtime, duration, no_created, errormsg, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                chunk,
            )
        conn.executemany(
            "INSERT INTO monitor_counter (monitor_id, kind, name, value) VALUES (?,?,?,?)",
            _counters(monitors, per_monitor, now),
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - started
