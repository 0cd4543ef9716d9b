"""Counter rules: what each stored report adds to a monitor's counters, and how they merge.

The one definition of both. The store writes the increments it is handed (adding, or keeping
the maximum where `keeps_maximum`); the in-memory state merges them with `merge`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping

from exporter.core.evaluation import severity_of
from exporter.core.records import OPERATIONS, Batch, MonitorType, NewBatch
from exporter.core.statuses import Severity

CounterDelta = tuple[str, str, float]  # (kind, name, delta)
LATEST = "latest"  # counters of this kind keep the maximum (a time), not the sum
DURATION = "duration"
SUCCESS = (LATEST, "success")  # the end of the latest run with severity ok


def keeps_maximum(kind: str) -> bool:
    """True for counters that hold a time and keep the latest, not a sum."""
    return kind == LATEST


def merge(kind: str, old: float | None, delta: float) -> float:
    """A counter's value after an increment."""
    if old is None:
        return delta
    return max(old, delta) if keeps_maximum(kind) else old + delta


def merge_into(
    counters: dict[tuple[str, str], float], deltas: Iterable[CounterDelta]
) -> dict[tuple[str, str], float]:
    """Add increments to a mapping of counters, in place; returns it."""
    for kind, name, delta in deltas:
        key = (kind, name)
        counters[key] = merge(kind, counters.get(key), delta)
    return counters


def bucket_name(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class DurationBuckets:
    """Maps a run duration to its histogram bucket (stored per bucket, not cumulative)."""

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = (*(float(b) for b in bounds), float("inf"))
        self.names = tuple(bucket_name(b) for b in self.bounds)

    def deltas(self, duration: float) -> list[CounterDelta]:
        index = bisect.bisect_left(self.bounds, duration)
        return [
            (DURATION, self.names[index], 1.0),
            (DURATION, "sum", duration),
        ]

    def cumulative(self, counters: Mapping[tuple[str, str], float]) -> list[tuple[str, float]]:
        """(le, cumulative count) for every bucket, as the exposition wants it."""
        total, out = 0.0, []
        for name in self.names:
            total += counters.get((DURATION, name), 0.0)
            out.append((name, total))
        return out


def _counts(batch: Batch | NewBatch) -> tuple[int, int, int]:
    return (batch.no_created, batch.no_updated, batch.no_deleted)


class CounterRules:
    """The increments each report makes, given the statuses' severities."""

    def __init__(self, severities: Mapping[str, Severity], buckets: DurationBuckets) -> None:
        self.severities = dict(severities)
        self.buckets = buckets

    def severity(self, status: str) -> Severity:
        return severity_of(status, self.severities)

    def is_final(self, status: str) -> bool:
        return self.severity(status) != "running"

    def batch(self, old: Batch | None, new: Batch | NewBatch, at: float) -> list[CounterDelta]:
        """A batch stored at `at` (new, or `old` changed): a run counts once, when it
        finishes; a correction of a finished batch adds only growth (counters never go back).
        """
        final = self.is_final
        if not final(new.logstatus):
            return []
        deltas: list[CounterDelta] = []
        if self.severity(new.logstatus) == "ok":
            end = new.endtime if new.endtime is not None else new.starttime
            # Never later than the report itself: a fast clock must not pin the time ahead.
            deltas.append((*SUCCESS, min(end, at)))
        if old is None or not final(old.logstatus):
            deltas.append(("runs", new.logstatus, 1.0))
            deltas += [
                ("objects", op, float(n)) for op, n in zip(OPERATIONS, _counts(new), strict=True)
            ]
            if new.duration is not None:
                deltas += self.buckets.deltas(new.duration)
            return deltas
        return deltas + [
            ("objects", op, float(n - o))
            for op, n, o in zip(OPERATIONS, _counts(new), _counts(old), strict=True)
            if n > o
        ]

    def log(self, monitor_type: MonitorType, status: str, at: float) -> list[CounterDelta]:
        """A log stored at `at`: every log counts; on a message monitor it is also a run."""
        deltas: list[CounterDelta] = [("logs", status, 1.0)]
        if monitor_type == "message" and self.is_final(status):
            deltas.append(("runs", status, 1.0))
            if self.severity(status) == "ok":
                deltas.append((*SUCCESS, at))
        return deltas
