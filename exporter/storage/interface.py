"""The store interface: what the service asks of a database, whatever the database is.

An implementation keeps monitors, runs (batches and logs), counters, alert transitions,
idempotency keys and sign-in sessions. It receives data, never callbacks: the rows to write
and the counter increments to add, all decided by the service and the core before the call.
Every write returns only once it is durable (committed). Errors are the core's domain errors
(`MonitorNotFound`, `BatchOfOtherMonitor`, `IdempotencyConflict`, `Unavailable`...), never a
driver's exception. `exporter.storage.sqlite` is the embedded implementation;
`exporter.storage.postgres` the one several replicas share.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from exporter.core.counters import CounterDelta
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

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A report's Idempotency-Key, scoped to the token that sent it (and to its monitor)."""

    key: str
    fingerprint: str
    token: str


@dataclass(frozen=True, slots=True)
class Stored(Generic[R]):
    """The result of a report: the record, whether it was a replay, and the truncated fields."""

    record: R
    replayed: bool
    truncated: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MonitorRuns:
    """What the in-memory state needs of one monitor at start."""

    monitor: Monitor
    latest: Batch | Log | None
    latest_finished: Batch | Log | None
    counters: list[tuple[str, str, float]]


@dataclass(frozen=True, slots=True)
class StoreStats:
    """For the service's own metrics."""

    size_bytes: int
    commits: int  # transactions committed (each may hold a group of writes)
    writes: int  # writes committed


# (monitor_id, alertstatus, alerttext, evaluated at)
EvaluationRow = tuple[int, str, str, float]


class Store(Protocol):
    """A database of monitors and their reports. All methods are coroutines except `stats`."""

    description: str  # for logs: a path, or a URL without its password

    async def open(self) -> None:
        """Connect, and bring the schema up to date."""

    async def close(self) -> None:
        """Commit what is queued, then disconnect."""

    async def check_writable(self) -> None:
        """Return once a write commits now; raise `Unavailable` otherwise."""

    def stats(self) -> StoreStats: ...

    # -- monitors
    async def put_monitor(
        self, key: str, settings: MonitorSettings, now: float
    ) -> tuple[Monitor, bool]:
        """Create or replace a monitor's settings; True when it was created."""

    async def patch_monitor(self, key: str, changes: dict[str, Any], now: float) -> Monitor:
        """Change some settings; `MonitorNotFound` when there is no such monitor."""

    async def delete_monitor(self, key: str) -> Monitor:
        """Delete a monitor with its history; `MonitorNotFound` when there is none."""

    async def list_monitors(self) -> list[Monitor]: ...

    async def save_evaluations(
        self, results: Sequence[EvaluationRow], transitions: Sequence[Transition]
    ) -> None:
        """Store alert statuses and their transitions (those of deleted monitors are dropped)."""

    async def list_transitions(self, monitor_id: int, limit: int) -> list[Transition]:
        """Newest first."""

    # -- reports
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
        """Store a batch and add `deltas` to the monitor's counters, in one transaction; or
        return the batch an earlier request with the same Idempotency-Key stored."""

    async def update_batch(
        self,
        old: Batch,
        new: Batch,
        truncated: tuple[str, ...],
        idempotency: Idempotency | None,
        deltas: Sequence[CounterDelta],
        correction: Correction | None,
    ) -> Stored[Batch] | None:
        """Replace `old` by `new` (same id) if the stored batch is still `old` (compare and
        set), with its counter increments and its correction, in one transaction. None when
        the batch changed or went meanwhile: read it again and decide again."""

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
        """As `create_batch`; `BatchOfOtherMonitor` or `BatchNotFound` for a bad batch_id."""

    async def replayed(
        self, idempotency: Idempotency, monitor_id: int, resource: str
    ) -> tuple[int, tuple[str, ...]] | None:
        """The id and truncated fields of what an earlier request with this key stored."""

    async def get_batch(self, batch_id: int) -> Batch | None: ...

    async def find_running_batch(self, monitor_id: int, integrationid: str) -> Batch | None:
        """The newest batch of a monitor with this integrationid that has no endtime."""

    async def list_batches(
        self, monitor_id: int, limit: int, before: tuple[float, int] | None
    ) -> list[Batch]:
        """Newest start first; `before` = (starttime, id) of the last one already seen."""

    async def list_logs(
        self,
        monitor_id: int | None,
        limit: int,
        before: tuple[float, int] | None,
        batch_id: int | None = None,
        outside_batches: bool = False,
    ) -> list[Log]:
        """Newest first, of a monitor or of a batch (or only those in no batch)."""

    async def list_corrections(self, batch_ids: Sequence[int]) -> list[Correction]:
        """The corrections of these batches, oldest first."""

    # -- start-up, other replicas, retention
    async def load_runs(
        self,
        finished_statuses: Sequence[str],
        max_clock_skew: float = 0.0,
        monitor_ids: Collection[int] | None = None,
    ) -> list[MonitorRuns]:
        """Every monitor (or those of `monitor_ids` that exist) with its latest run, its latest
        finished run and its counters, as of one moment."""

    def changes(self) -> AsyncIterator[frozenset[int] | None]:
        """The ids of monitors that other processes sharing the database changed, as they
        commit; None when everything must be read again (first once it follows them, then
        after each interruption). A store no other process writes yields nothing."""

    async def take_lease(self, name: str, seconds: float) -> bool:
        """Take or renew the lease `name` for `seconds`; True while this process holds it.
        A store no other process writes always grants it."""

    async def repair_success_times(self, limit: float, ok_statuses: Sequence[str]) -> int:
        """Recompute last-success times later than `limit` from the stored runs."""

    async def prune(
        self,
        cutoff: float,
        idempotency_cutoff: float,
        max_clock_skew: float = 0.0,
        transitions_kept: int = 100,
        chunk: int = 5000,
    ) -> int:
        """Delete old runs (never a monitor's latest) and old transitions, keys, sessions."""

    # -- status page sessions
    async def create_session(
        self, id_hash: bytes, token_digest: bytes, now: float, expires: float, per_token: int
    ) -> None: ...

    async def find_session(self, id_hash: bytes, now: float) -> bytes | None: ...

    async def delete_session(self, id_hash: bytes) -> None: ...
