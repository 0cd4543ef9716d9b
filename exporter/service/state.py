"""The in-memory state of every monitor that ingest and evaluation keep current.

`/metrics`, evaluation and the status page's overview read it; none of them query the database.
Everything here runs on the event loop thread, so no locks are needed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from exporter.core.counters import SUCCESS, CounterDelta, merge
from exporter.core.evaluation import Evaluation, severity_of
from exporter.core.records import Batch, Log, Monitor, Run, Transition
from exporter.core.statuses import Severity
from exporter.storage.interface import MonitorRuns


@dataclass(slots=True)
class MonitorState:
    monitor: Monitor
    latest: Run | None = None
    latest_finished: Run | None = None
    counters: dict[tuple[str, str], float] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    reason_kinds: frozenset[str] = frozenset()
    # Bumped on every change, for caches of rendered output: `configured` for settings,
    # `version` for runs, `evaluated` for evaluation results (a pass touches every monitor's).
    configured: int = 0
    version: int = 0
    evaluated: int = 0

    def counter(self, kind: str, name: str) -> float:
        return self.counters.get((kind, name), 0.0)

    @property
    def last_success(self) -> float | None:
        return self.counters.get(SUCCESS)


class State:
    """Every monitor's state, by key."""

    def __init__(self, severities: Mapping[str, Severity], max_clock_skew: float = 0.0) -> None:
        self.severities = dict(severities)
        self.max_clock_skew = max_clock_skew
        self.monitors: dict[str, MonitorState] = {}
        self._keys_by_id: dict[int, str] = {}
        self.membership = 0  # bumped when a monitor is added or removed

    def load(self, rows: Iterable[MonitorRuns]) -> None:
        for row in rows:
            self.replace(row)

    def replace(self, row: MonitorRuns) -> MonitorState:
        """Take a monitor as stored (another process wrote it): settings, alert status, runs
        and counters, replacing what this state held of it."""
        ms = self.monitors.get(row.monitor.integration_key)
        if ms is not None and ms.monitor.id != row.monitor.id:  # deleted and made again
            self.remove_monitor(row.monitor.integration_key)
        ms = self.put_monitor(row.monitor)
        ms.latest = _run(row.latest)
        ms.latest_finished = _run(row.latest_finished)
        ms.counters = {
            _counter_key(kind, name): _shared(value) for kind, name, value in row.counters
        }
        ms.version += 1
        return ms

    def merge(self, row: MonitorRuns) -> MonitorState:
        """Take a monitor as stored by a read that this process's own writes overtook: keep
        what is newer on either side. Counters only grow, so the larger value of each is
        never more than the truth and never less than what was shown (a counter that went
        back would read as a reset in Prometheus); the newer run wins."""
        ms = self.put_monitor(row.monitor)
        for kind, name, value in row.counters:
            key = _counter_key(kind, name)
            held = ms.counters.get(key)
            if held is None or value > held:
                ms.counters[key] = _shared(value)
        latest, finished = _run(row.latest), _run(row.latest_finished)
        if latest is not None and (ms.latest is None or latest.order > ms.latest.order):
            ms.latest = latest
        if finished is not None and (
            ms.latest_finished is None or finished.order > ms.latest_finished.order
        ):
            ms.latest_finished = finished
        ms.version += 1
        return ms

    def get(self, key: str) -> MonitorState | None:
        return self.monitors.get(key)

    def by_id(self, monitor_id: int) -> MonitorState | None:
        key = self._keys_by_id.get(monitor_id)
        return None if key is None else self.monitors.get(key)

    def put_monitor(self, monitor: Monitor) -> MonitorState:
        ms = self.monitors.get(monitor.integration_key)
        if ms is None:
            ms = self.monitors[monitor.integration_key] = MonitorState(monitor)
            self._keys_by_id[monitor.id] = monitor.integration_key
            self.membership += 1
        else:
            held = ms.monitor
            if (held.alert_timestamp or 0.0) > (monitor.alert_timestamp or 0.0):
                # This evaluation is newer than the stored one (its save may still be on its
                # way, or another replica's write read before it): keep it.
                monitor = replace(
                    monitor,
                    alertstatus=held.alertstatus,
                    alerttext=held.alerttext,
                    alert_timestamp=held.alert_timestamp,
                )
            ms.monitor = monitor
            ms.configured += 1
            ms.version += 1
            ms.evaluated += 1
        return ms

    def remove_monitor(self, key: str) -> None:
        ms = self.monitors.pop(key, None)
        if ms is not None:
            self._keys_by_id.pop(ms.monitor.id, None)
            self.membership += 1

    def severity(self, status: str) -> Severity:
        return severity_of(status, self.severities)

    def is_final(self, status: str) -> bool:
        return self.severity(status) != "running"

    def apply_run(
        self, monitor_id: int, run: Run, deltas: Iterable[CounterDelta], plausible: bool = True
    ) -> None:
        """Take a stored batch or log (already committed) and its counter increments.

        A run that is not `plausible` (it claims to start after it was received) is counted
        but never becomes the latest: it would hide every run after it.
        """
        ms = self.by_id(monitor_id)
        if ms is None:
            return
        for kind, name, delta in deltas:
            key = _counter_key(kind, name)
            ms.counters[key] = _shared(merge(kind, ms.counters.get(key), delta))
        counts_as_run = (run.kind == "batch") == (ms.monitor.settings.type == "batch")
        if counts_as_run and plausible:
            if ms.latest is None or ms.latest.id == run.id or run.order > ms.latest.order:
                ms.latest = run
            if self.is_final(run.logstatus):
                lf = ms.latest_finished
                if lf is None or lf.id == run.id or run.order > lf.order:
                    ms.latest_finished = run
        ms.version += 1

    def apply_batch(self, batch: Batch, deltas: Iterable[CounterDelta]) -> None:
        plausible = batch.starttime <= batch.created_at + self.max_clock_skew
        self.apply_run(batch.monitor_id, Run.of_batch(batch), deltas, plausible)

    def apply_log(self, entry: Log, deltas: Iterable[CounterDelta]) -> None:
        self.apply_run(entry.monitor_id, Run.of_log(entry), deltas)

    def apply_evaluation(self, key: str, result: Evaluation, now: float) -> Transition | None:
        """Record an evaluation; return the transition when the alert status changed."""
        ms = self.monitors.get(key)
        if ms is None:
            return None
        old = ms.monitor
        ms.reasons = result.reasons
        ms.reason_kinds = result.kinds
        ms.evaluated += 1
        ms.monitor = Monitor(
            old.id,
            old.integration_key,
            old.settings,
            result.alertstatus,
            result.alerttext,
            now,
            old.created_at,
            old.updated_at,
        )
        if old.alertstatus == result.alertstatus:
            return None
        return Transition(old.id, old.alertstatus, result.alertstatus, result.summary, now)


_COUNTER_KEYS: dict[tuple[str, str], tuple[str, str]] = {}


def _counter_key(kind: str, name: str) -> tuple[str, str]:
    """One shared key object per counter name: each monitor has ~20 counters, 10,000 monitors
    would otherwise hold 200,000 copies of the same few tuples and strings (about 20 MB)."""
    key = (kind, name)
    shared = _COUNTER_KEYS.get(key)
    if shared is None:
        shared = _COUNTER_KEYS[key] = (sys.intern(kind), sys.intern(name))
    return shared


_SMALL_COUNTS = {float(n): float(n) for n in range(4096)}


def _shared(value: float) -> float:
    """One shared object per small whole count: most counters hold one (runs of a status,
    objects, histogram buckets), and 10,000 monitors' 300,000 floats are 7 MB otherwise."""
    return _SMALL_COUNTS.get(value, value)


def _run(record: Batch | Log | None) -> Run | None:
    if record is None:
        return None
    return Run.of_batch(record) if isinstance(record, Batch) else Run.of_log(record)
