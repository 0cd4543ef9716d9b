"""Storing reports: batches and logs, with their counters, then the monitor's re-evaluation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

from exporter.core.records import OPERATIONS, Batch, Log
from exporter.core.times import EARLIEST, iso
from exporter.http.errors import ApiError
from exporter.http.models import BatchCreate, BatchUpdate, LogCreate, truncate
from exporter.service.state import SUCCESS, DurationBuckets, MonitorState, State
from exporter.service.stats import ServiceStats
from exporter.storage.sqlite.store import CounterDelta, Idempotency, NewBatch, NewLog, Store, Stored


def _counts(record: Batch) -> tuple[int, int, int]:
    return (record.no_created, record.no_updated, record.no_deleted)


class Reports:
    """Validates reports against the monitors and statuses, stores them, updates the state.

    `after_report` is called with the monitor's state once a report is committed and applied
    (the evaluator re-evaluates it there, so a failed run shows on /metrics at once).
    """

    def __init__(
        self,
        store: Store,
        state: State,
        buckets: DurationBuckets,
        clock: Callable[[], float],
        stats: ServiceStats,
        after_report: Callable[[MonitorState], None],
    ) -> None:
        self._store = store
        self._max_skew = state.max_clock_skew  # the one allowance, also the state's plausibility
        self._running = frozenset(s for s, sev in state.severities.items() if sev == "running")
        self._state = state
        self._buckets = buckets
        self._clock = clock
        self._stats = stats
        self._after_report = after_report

    def monitor(self, key: str) -> MonitorState:
        """The monitor's state, or the original's errors for an empty or unknown key."""
        if not key:
            raise ApiError(400, "missing_integration_key", "integration_key is empty", "key")
        ms = self._state.get(key)
        if ms is None:
            raise ApiError(404, "monitor_not_found", f"No monitor with integration_key {key!r}")
        return ms

    def _check_status(self, status: str) -> None:
        if status not in self._state.severities:
            known = ", ".join(sorted(self._state.severities))
            raise ApiError(
                422, "invalid_status", f"Unknown logstatus {status!r}; known: {known}", "logstatus"
            )

    def _time(self, value: datetime | None, field: str, now: float) -> float | None:
        """A report's time as Unix seconds, if it could be true: not before 2000, not later
        than now plus the clock-skew allowance (a time in 2100 would stay the latest run)."""
        if value is None:
            return None
        ts = value.timestamp()
        latest = now + self._max_skew
        if EARLIEST <= ts <= latest:
            return ts
        raise ApiError(
            422,
            "validation_error",
            f"{field} {iso(ts)} is outside the accepted range {iso(EARLIEST)} to {iso(latest)} "
            f"(now plus {self._max_skew:g} s of clock skew)",
            field,
        )

    def batch_deltas(self, old: Batch | None, new: Batch) -> list[CounterDelta]:
        """Counter increments when a batch is stored: a run counts once, when it finishes."""
        final = self._state.is_final
        if not final(new.logstatus):
            return []
        deltas: list[CounterDelta] = []
        if self._state.severity(new.logstatus) == "ok":
            end = new.endtime if new.endtime is not None else new.starttime
            # Never later than the report itself: a fast clock must not pin the time ahead.
            deltas.append((*SUCCESS, min(end, new.updated_at)))
        if old is None or not final(old.logstatus):
            deltas.append(("runs", new.logstatus, 1.0))
            deltas += [
                ("objects", op, float(n)) for op, n in zip(OPERATIONS, _counts(new), strict=True)
            ]
            if new.duration is not None:
                deltas += self._buckets.deltas(new.duration)
            return deltas
        # A correction of a finished batch: counters never go back, so only growth is added.
        return deltas + [
            ("objects", op, float(n - o))
            for op, n, o in zip(OPERATIONS, _counts(new), _counts(old), strict=True)
            if n > o
        ]

    def _log_deltas(self, ms: MonitorState, status: str, now: float) -> list[CounterDelta]:
        deltas: list[CounterDelta] = [("logs", status, 1.0)]
        if ms.monitor.settings.type == "message" and self._state.is_final(status):
            deltas.append(("runs", status, 1.0))
            if self._state.severity(status) == "ok":
                deltas.append((*SUCCESS, now))
        return deltas

    def _done(self, kind: str, stored: Stored[Batch] | Stored[Log]) -> None:
        self._stats.report(kind, "duplicate" if stored.replayed else "stored")

    async def create_batch(
        self, key: str, body: BatchCreate, idempotency: Idempotency | None, kind: str = "batch"
    ) -> Stored[Batch]:
        ms = self.monitor(key)
        if ms.monitor.settings.type != "batch":
            raise ApiError(
                409,
                "monitor_type_mismatch",
                f"Monitor {key!r} is a message monitor: report logs, not batches",
            )
        self._check_status(body.logstatus)
        now = self._clock()
        texts, cut = truncate(
            {
                "integrationid": body.integrationid,
                "logtext": body.logtext,
                "errormsg": body.errormsg,
            }
        )
        start = self._time(body.starttime, "starttime", now) or now
        end = self._time(body.endtime, "endtime", now)
        if end is None and self._state.is_final(body.logstatus):
            end = max(now, start)
        if end is not None and end < start:
            raise ApiError(422, "validation_error", "endtime is before starttime", "endtime")
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
        stored = await self._store.create_batch(
            ms.monitor.id, key, new, now, cut, idempotency, self.batch_deltas
        )
        if not stored.replayed:
            self._state.apply_batch(stored.record, self.batch_deltas(None, stored.record))
            self._after_report(ms)
        self._done(kind, stored)
        return stored

    async def update_batch(
        self,
        batch_id: int,
        body: BatchUpdate,
        idempotency: Idempotency | None,
        kind: str = "batch_update",
        token: str = "",
    ) -> Stored[Batch]:
        """Finish or change a batch; a change of a finished one is recorded with `token`."""
        self._check_status(body.logstatus)
        now = self._clock()
        given = {
            name: value
            for name in ("integrationid", "logtext", "errormsg")
            if (value := getattr(body, name)) is not None
        }
        texts, cut = truncate(given)
        final = self._state.is_final
        given_end = self._time(body.endtime, "endtime", now)

        def change(old: Batch) -> Batch:
            if final(old.logstatus) and not final(body.logstatus):
                raise ApiError(
                    409,
                    "batch_already_finished",
                    f"Batch {old.id} finished as {old.logstatus!r}; it cannot run again",
                    "logstatus",
                )
            end = given_end
            if end is None and final(body.logstatus):
                end = old.endtime if old.endtime is not None else max(now, old.starttime)
            if end is not None and end < old.starttime:
                raise ApiError(422, "validation_error", "endtime is before starttime", "endtime")
            counts = {
                name: value
                for name in ("no_created", "no_updated", "no_deleted")
                if (value := getattr(body, name)) is not None
            }
            return dataclasses.replace(
                old,
                logstatus=body.logstatus,
                endtime=end,
                duration=None if end is None else end - old.starttime,
                updated_at=now,
                integrationid=texts.get("integrationid", old.integrationid),
                logtext=texts.get("logtext", old.logtext),
                errormsg=texts.get("errormsg", old.errormsg),
                no_created=counts.get("no_created", old.no_created),
                no_updated=counts.get("no_updated", old.no_updated),
                no_deleted=counts.get("no_deleted", old.no_deleted),
            )

        old, stored = await self._store.update_batch(
            batch_id, change, cut, idempotency, self.batch_deltas, self._running, token
        )
        if not stored.replayed:
            self._state.apply_batch(stored.record, self.batch_deltas(old, stored.record))
            ms = self._state.by_id(stored.record.monitor_id)
            if ms is not None:
                self._after_report(ms)
        self._done(kind, stored)
        return stored

    async def create_log(
        self, key: str, body: LogCreate, idempotency: Idempotency | None, kind: str = "log"
    ) -> Stored[Log]:
        ms = self.monitor(key)
        self._check_status(body.logstatus)
        now = self._clock()
        texts, cut = truncate(
            {
                "integrationid": body.integrationid,
                "logtext": body.logtext,
                "errormsg": body.errormsg,
                "message": body.message,
            }
        )
        new = NewLog(batch_id=body.batch_id, logstatus=body.logstatus, **texts)
        deltas = self._log_deltas(ms, body.logstatus, now)
        stored = await self._store.create_log(
            ms.monitor.id, key, new, now, cut, idempotency, deltas
        )
        if not stored.replayed:
            self._state.apply_log(stored.record, deltas)
            self._after_report(ms)
        self._done(kind, stored)
        return stored
