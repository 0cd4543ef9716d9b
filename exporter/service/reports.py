"""Ingest: a report is checked, stored with its counter increments, applied to the state,
and its monitor re-evaluated. The one way a report goes, and it goes one way."""

from __future__ import annotations

from collections.abc import Callable

from exporter.core.counters import CounterDelta, CounterRules
from exporter.core.errors import (
    BatchNotFound,
    DomainError,
    MonitorTypeMismatch,
    Unavailable,
    UnknownStatus,
)
from exporter.core.records import Batch, Log, NewBatch, NewLog, correction_of
from exporter.core.reports import (
    TEXTS,
    BatchChange,
    BatchReport,
    LogReport,
    changed_batch,
    check_order,
    report_time,
    truncate,
)
from exporter.service.monitors import Monitors
from exporter.service.state import MonitorState, State
from exporter.service.stats import ServiceStats
from exporter.storage.interface import Idempotency, Store, Stored

# A change of a batch is decided on the batch as read, then written only if the batch is still
# that one; another change in between (a ping's finish racing a PATCH) means deciding again.
CHANGE_ATTEMPTS = 5


class Reports:
    """Checks reports against the monitors and statuses, stores them, updates the state.

    `after_report` is called with the monitor's state once a report is committed and applied
    (the evaluator re-evaluates it there, so a failed run shows on /metrics at once).
    """

    def __init__(
        self,
        store: Store,
        state: State,
        monitors: Monitors,
        rules: CounterRules,
        clock: Callable[[], float],
        stats: ServiceStats,
        after_report: Callable[[MonitorState], None],
    ) -> None:
        self._store = store
        self._max_skew = state.max_clock_skew  # the one allowance, also the state's plausibility
        self._state = state
        self._monitors = monitors
        self._rules = rules
        self._clock = clock
        self._stats = stats
        self._after_report = after_report

    def _check_status(self, status: str) -> None:
        if status not in self._rules.severities:
            raise UnknownStatus(status, sorted(self._rules.severities))

    def _done(self, kind: str, stored: Stored[Batch] | Stored[Log]) -> None:
        self._stats.report(kind, "duplicate" if stored.replayed else "stored")

    async def create_batch(
        self, key: str, body: BatchReport, idempotency: Idempotency | None, kind: str = "batch"
    ) -> Stored[Batch]:
        ms = self._monitors.get(key)
        if ms.monitor.settings.type != "batch":
            raise MonitorTypeMismatch(
                f"Monitor {key!r} is a message monitor: report logs, not batches"
            )
        self._check_status(body.logstatus)
        now = self._clock()
        texts, cut = truncate({name: getattr(body, name) for name in TEXTS})
        start = report_time(body.starttime, "starttime", now, self._max_skew) or now
        end = report_time(body.endtime, "endtime", now, self._max_skew)
        if end is None and self._rules.is_final(body.logstatus):
            end = max(now, start)
        check_order(start, end)
        new = NewBatch(
            logstatus=body.logstatus,
            starttime=start,
            endtime=end,
            duration=None if end is None else end - start,
            no_created=body.no_created,
            no_updated=body.no_updated,
            no_deleted=body.no_deleted,
            **texts,
        )
        deltas = self._rules.batch(None, new, now)
        stored = await self._store.create_batch(
            ms.monitor.id, key, new, now, cut, idempotency, deltas
        )
        if not stored.replayed:
            self._state.apply_batch(stored.record, deltas)
            self._after_report(ms)
        self._done(kind, stored)
        return stored

    async def update_batch(
        self,
        batch_id: int,
        body: BatchChange,
        idempotency: Idempotency | None,
        kind: str = "batch_update",
        token: str = "",
    ) -> Stored[Batch]:
        """Finish or change a batch; a change of a finished one is recorded with `token`.

        1. Read the batch; decide what the change makes of it (or refuse the change).
        2. Store the new batch if the stored one is still the one read; else start again.
        """
        self._check_status(body.logstatus)
        given = {name: value for name in TEXTS if (value := getattr(body, name)) is not None}
        texts, cut = truncate(given)
        for _ in range(CHANGE_ATTEMPTS):
            done = await self._change(batch_id, body, texts, cut, idempotency, token)
            if done is not None:
                break
        else:
            raise Unavailable(f"Batch {batch_id} kept changing meanwhile; send the change again")
        stored, deltas = done
        if not stored.replayed:
            self._state.apply_batch(stored.record, deltas)
            ms = self._state.by_id(stored.record.monitor_id)
            if ms is not None:
                self._after_report(ms)
        self._done(kind, stored)
        return stored

    async def _change(
        self,
        batch_id: int,
        body: BatchChange,
        texts: dict[str, str],
        cut: tuple[str, ...],
        idempotency: Idempotency | None,
        token: str,
    ) -> tuple[Stored[Batch], list[CounterDelta]] | None:
        """One attempt at a change; None when the batch changed between the read and the write."""
        now = self._clock()
        end = report_time(body.endtime, "endtime", now, self._max_skew)
        old = await self._store.get_batch(batch_id)
        if old is None:
            raise BatchNotFound(batch_id)
        try:
            new = changed_batch(old, body, texts, end, now, self._rules.is_final)
        except DomainError:
            # A retry of a change that was stored gets that change's answer, not a refusal.
            replay = None if idempotency is None else await self._replay(idempotency, old)
            if replay is None:
                raise
            return replay, []
        final = self._rules.is_final(old.logstatus)
        correction = correction_of(old, new, token) if final else None
        deltas = self._rules.batch(old, new, now)
        stored = await self._store.update_batch(old, new, cut, idempotency, deltas, correction)
        return None if stored is None else (stored, deltas)

    async def _replay(self, idempotency: Idempotency, old: Batch) -> Stored[Batch] | None:
        replay = await self._store.replayed(idempotency, old.monitor_id, "batch")
        record = None if replay is None else await self._store.get_batch(replay[0])
        return None if replay is None or record is None else Stored(record, True, replay[1])

    async def create_log(
        self, key: str, body: LogReport, idempotency: Idempotency | None, kind: str = "log"
    ) -> Stored[Log]:
        ms = self._monitors.get(key)
        self._check_status(body.logstatus)
        now = self._clock()
        texts, cut = truncate({name: getattr(body, name) for name in (*TEXTS, "message")})
        new = NewLog(batch_id=body.batch_id, logstatus=body.logstatus, **texts)
        deltas = self._rules.log(ms.monitor.settings.type, body.logstatus, now)
        stored = await self._store.create_log(
            ms.monitor.id, key, new, now, cut, idempotency, deltas
        )
        if not stored.replayed:
            self._state.apply_log(stored.record, deltas)
            self._after_report(ms)
        self._done(kind, stored)
        return stored
