"""The per-monitor metric families: the one definition of each monitor's series.

Every series a monitor has costs its operator memory and disk in Prometheus, so a monitor
exposes only what it has: settings that are set, the last run once there is one, one counter per
status it has used, the duration histogram only where it is turned on. docs/metrics.md has the
budget and the reason each series stays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.core import Metric

from exporter.core.counters import DURATION, DurationBuckets
from exporter.core.records import OPERATIONS
from exporter.core.schedules import describe, expected_run
from exporter.core.statuses import ALERT_STATUSES, Severity
from exporter.service.state import MonitorState, State

P = "integration_monitor_"
KEY = "integration_key"  # the label every per-monitor series carries


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    type: str  # gauge, counter or histogram
    doc: str
    labels: tuple[str, ...] = (KEY,)

    def metric(self) -> Metric:
        return Metric(P + self.name, self.doc, self.type)


# The per-monitor families, in exposition order. Indexes below name them in the samples.
FAMILIES = (
    Family("info", "gauge", "The monitor's name, type, whether it is active, and its team and "
           "alert severity where set; always 1.",
           ("active", KEY, "name", "severity", "team", "type")),
    Family("alert_status", "gauge", "Current alert status, one series per status.",
           (KEY, "status")),
    Family("alert_reason", "gauge", "Why the monitor is in error: one series per reason that "
           "holds, always 1; none while it is not in error.", (KEY, "reason")),
    Family("alert_interval_seconds", "gauge", "alert_interval in seconds. Absent when off."),
    Family("alert_threshold", "gauge", "Minimum objects per run. Only the thresholds set.",
           (KEY, "operation")),
    Family("schedule_info", "gauge", "The schedule runs are expected on (cron expression, time "
           "zone, in words); always 1. Monitors with a schedule only.",
           (KEY, "schedule", "summary", "timezone")),
    Family("max_runtime_seconds", "gauge", "max_runtime in seconds: a batch running longer is "
           "an error. Absent when off."),
    Family("created_timestamp_seconds", "gauge", "When the monitor was created; only until its "
           "first successful run (last_success_timestamp_seconds then takes over from it)."),
    Family("last_run_info", "gauge", "The latest run's status and the result it counts as "
           "(running, ok or error); always 1.", (KEY, "result", "status")),
    Family("last_run_start_timestamp_seconds", "gauge", "Start of the latest run."),
    Family("start_deadline_timestamp_seconds", "gauge", "When the run the schedule expects "
           "next must have started: its scheduled time plus grace. Moves on when a run starts; "
           "in the past, the run was missed. Monitors with a schedule only."),
    Family("last_success_timestamp_seconds", "gauge", "End of the latest successful run."),
    Family("last_run_duration_seconds", "gauge", "Duration of the latest finished batch."),
    Family("last_run_objects", "gauge", "Objects of the latest finished batch.",
           (KEY, "operation")),
    Family("runs", "counter", "Finished runs, by each status the monitor has used.",
           (KEY, "status")),
    Family("logs", "counter", "Log messages of a batch monitor, by each status used.",
           (KEY, "status")),
    Family("objects", "counter", "Objects by operation, summed over batches.",
           (KEY, "operation")),
    Family("run_duration_seconds", "histogram", "Durations of finished batches. Only where "
           "turned on (metrics.duration_histogram, or the monitor's duration_histogram).",
           (KEY, "le")),
)  # fmt: skip
(INFO, ALERT, REASON, INTERVAL, THRESHOLD, SCHEDULE, MAX_RUNTIME, CREATED, LAST_INFO, LAST_START,
 DEADLINE, LAST_OK, LAST_DURATION, LAST_OBJECTS, RUNS, LOGS, OBJECTS,
 DURATIONS) = range(len(FAMILIES))  # fmt: skip

# (family index, sample name, labels (sorted by name, as the exposition writes them), value)
Sample = tuple[int, str, tuple[tuple[str, str], ...], float]

_NAMES = [P + f.name for f in FAMILIES]
EVALUATION_FAMILIES = frozenset({ALERT, REASON})
# The deadline is not a setting: it moves when a run starts (and when the schedule changes,
# which bumps the runs' mark too), never with the clock, so it renders with the runs.
SETTINGS_FAMILIES = frozenset({INFO, INTERVAL, THRESHOLD, SCHEDULE, MAX_RUNTIME})


@dataclass(frozen=True, slots=True)
class Shape:
    """What the series of a monitor depend on besides the monitor itself."""

    severity: Callable[[str], Severity]  # the result a status counts as
    buckets: DurationBuckets
    histograms: bool  # metrics.duration_histogram: the default of every monitor

    @classmethod
    def of(cls, state: State, buckets: DurationBuckets, histograms: bool) -> Shape:
        return cls(state.severity, buckets, histograms)


def evaluation_samples(ms: MonitorState) -> list[Sample]:
    """The samples that change with each evaluation: the alert status and its reasons."""
    m, name = ms.monitor, _NAMES
    key = (KEY, m.integration_key)
    out: list[Sample] = [
        (ALERT, name[ALERT], (key, ("status", a)), 1.0 if m.alertstatus == a else 0.0)
        for a in ALERT_STATUSES
    ]
    out += [(REASON, name[REASON], (key, ("reason", r)), 1.0) for r in sorted(ms.reason_kinds)]
    return out


def settings_samples(ms: MonitorState) -> list[Sample]:
    """The samples that change only with the monitor's settings."""
    m, s, name = ms.monitor, ms.monitor.settings, _NAMES
    key = (KEY, m.integration_key)
    info = [("active", "true" if s.active else "false"), key, ("name", s.name)]
    if s.severity:
        info.append(("severity", s.severity))
    if s.team:
        info.append(("team", s.team))
    info.append(("type", s.type))
    out: list[Sample] = [(INFO, name[INFO], tuple(info), 1.0)]
    if s.alert_interval > 0:
        out.append((INTERVAL, name[INTERVAL], (key,), s.alert_interval * 60.0))
    limits = (s.alert_no_creates_deceeds, s.alert_no_updates_deceeds, s.alert_no_deletes_deceeds)
    out += [
        (THRESHOLD, name[THRESHOLD], (key, ("operation", op)), float(limit))
        for op, limit in zip(OPERATIONS, limits, strict=True)
        if limit > 0
    ]
    words = describe(s)
    if words is not None:
        labels = (key, ("schedule", s.schedule), ("summary", words), ("timezone", s.timezone))
        out.append((SCHEDULE, name[SCHEDULE], labels, 1.0))
    if s.max_runtime > 0:
        out.append((MAX_RUNTIME, name[MAX_RUNTIME], (key,), s.max_runtime * 60.0))
    return out


def _used(ms: MonitorState, kind: str) -> list[tuple[str, float]]:
    """(name, value) of the monitor's counters of one kind, by name: those it has used."""
    return sorted((n, v) for (k, n), v in ms.counters.items() if k == kind)


def run_samples(ms: MonitorState, shape: Shape) -> list[Sample]:
    """The samples that change with reports."""
    m, name = ms.monitor, _NAMES
    key = (KEY, m.integration_key)
    batch = m.settings.type == "batch"
    out: list[Sample] = []
    latest, done = ms.latest, ms.latest_finished
    if ms.last_success is None:  # where staleness and "no success since" count from
        out.append((CREATED, name[CREATED], (key,), m.created_at))
    if latest is not None:
        labels = (key, ("result", shape.severity(latest.logstatus)), ("status", latest.logstatus))
        out.append((LAST_INFO, name[LAST_INFO], labels, 1.0))
        out.append((LAST_START, name[LAST_START], (key,), latest.starttime))
    expected = expected_run(m.settings, m.created_at, latest)
    if expected is not None:
        out.append((DEADLINE, name[DEADLINE], (key,), expected.deadline))
    if ms.last_success is not None:
        out.append((LAST_OK, name[LAST_OK], (key,), ms.last_success))
    if batch and done is not None:
        if done.duration is not None:
            out.append((LAST_DURATION, name[LAST_DURATION], (key,), done.duration))
        counts = (done.no_created, done.no_updated, done.no_deleted)
        out += [
            (LAST_OBJECTS, name[LAST_OBJECTS], (key, ("operation", op)), float(n))
            for op, n in zip(OPERATIONS, counts, strict=True)
        ]
    runs = name[RUNS] + "_total"
    out += [(RUNS, runs, (key, ("status", st)), n) for st, n in _used(ms, "runs")]
    if not batch:  # each log of a message monitor is a run: counted above
        return out
    logs = name[LOGS] + "_total"
    out += [(LOGS, logs, (key, ("status", st)), n) for st, n in _used(ms, "logs")]
    out += [
        (OBJECTS, name[OBJECTS] + "_total", (key, ("operation", op)), ms.counter("objects", op))
        for op in OPERATIONS
    ]
    histogram = m.settings.duration_histogram
    if histogram or (histogram is None and shape.histograms):
        hist = name[DURATIONS]
        cumulative = shape.buckets.cumulative(ms.counters)
        out += [(DURATIONS, hist + "_bucket", (key, ("le", le)), n) for le, n in cumulative]
        out.append((DURATIONS, hist + "_count", (key,), cumulative[-1][1]))
        out.append((DURATIONS, hist + "_sum", (key,), ms.counter(DURATION, "sum")))
    return out


def monitor_samples(ms: MonitorState, shape: Shape) -> list[Sample]:
    """Every sample of one monitor: the one definition of the per-monitor series."""
    return settings_samples(ms) + evaluation_samples(ms) + run_samples(ms, shape)
