"""The per-monitor metric families: the one definition of each monitor's series."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client.core import Metric

from exporter.core.counters import DURATION, DurationBuckets
from exporter.core.evaluation import REASON_KINDS
from exporter.core.records import OPERATIONS
from exporter.core.schedules import describe, expected_run
from exporter.core.statuses import ALERT_STATUSES
from exporter.service.state import MonitorState, State

P = "integration_monitor_"


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    type: str  # gauge, counter or histogram
    doc: str
    labels: tuple[str, ...] = ("key",)

    def metric(self) -> Metric:
        return Metric(P + self.name, self.doc, self.type)


# The per-monitor families, in exposition order. Indexes below name them in `monitor_samples`.
FAMILIES = (
    Family("info", "gauge", "Monitor name and type; always 1.", ("key", "name", "type")),
    Family("active", "gauge", "1 when the monitor is active (evaluated)."),
    Family("created_timestamp_seconds", "gauge", "When the monitor was created."),
    Family("alert_status", "gauge", "Current alert status, one series per status.",
           ("key", "status")),
    Family("alert_reason", "gauge", "Why the monitor is in error, one series per reason; 1 when "
           "it holds.", ("key", "reason")),
    Family("alert_timestamp_seconds", "gauge", "When the alert status was last evaluated."),
    Family("alert_interval_seconds", "gauge", "alert_interval in seconds; 0 is off."),
    Family("alert_threshold", "gauge", "Minimum objects per run; 0 is off.", ("key", "operation")),
    Family("schedule_info", "gauge", "The schedule runs are expected on (cron expression, time "
           "zone, in words); always 1. Monitors with a schedule only.",
           ("key", "schedule", "summary", "timezone")),
    Family("max_runtime_seconds", "gauge", "max_runtime in seconds: a batch running longer is "
           "an error. Absent when off."),
    Family("last_run_status", "gauge", "Status of the latest run, one series per status.",
           ("key", "status")),
    Family("last_run_start_timestamp_seconds", "gauge", "Start of the latest run."),
    Family("start_deadline_timestamp_seconds", "gauge", "When the run the schedule expects "
           "next must have started: its scheduled time plus grace. Moves on when a run starts; "
           "in the past, the run was missed. Monitors with a schedule only."),
    Family("last_run_end_timestamp_seconds", "gauge", "End of the latest finished run."),
    Family("last_success_timestamp_seconds", "gauge", "End of the latest successful run."),
    Family("last_run_duration_seconds", "gauge", "Duration of the latest finished run."),
    Family("last_run_objects", "gauge", "Objects of the latest finished run.",
           ("key", "operation")),
    Family("runs", "counter", "Finished runs by status.", ("key", "status")),
    Family("logs", "counter", "Log messages by status.", ("key", "status")),
    Family("objects", "counter", "Objects by operation, summed over runs.", ("key", "operation")),
    Family("run_duration_seconds", "histogram", "Durations of finished batches."),
)  # fmt: skip
(INFO, ACTIVE, CREATED, ALERT, REASON, ALERT_TS, INTERVAL, THRESHOLD, SCHEDULE, MAX_RUNTIME,
 LAST_STATUS, LAST_START, DEADLINE, LAST_END, LAST_OK, LAST_DURATION, LAST_OBJECTS, RUNS, LOGS,
 OBJECTS, DURATIONS) = range(len(FAMILIES))  # fmt: skip

# (family index, sample name, labels (sorted by name, as the exposition writes them), value)
Sample = tuple[int, str, tuple[tuple[str, str], ...], float]


_NAMES = [P + f.name for f in FAMILIES]
EVALUATION_FAMILIES = frozenset({ALERT, REASON, ALERT_TS})
# The deadline is not a setting: it moves when a run starts (and when the schedule changes,
# which bumps the runs' mark too), never with the clock, so it renders with the runs.
SETTINGS_FAMILIES = frozenset({INFO, ACTIVE, CREATED, INTERVAL, THRESHOLD, SCHEDULE, MAX_RUNTIME})


def evaluation_samples(ms: MonitorState) -> list[Sample]:
    """The samples that change with each evaluation (alert status, reasons, time)."""
    m, name = ms.monitor, _NAMES
    key = ("key", m.integration_key)
    out: list[Sample] = [
        (ALERT, name[ALERT], (key, ("status", a)), 1.0 if m.alertstatus == a else 0.0)
        for a in ALERT_STATUSES
    ]
    out += [
        (REASON, name[REASON], (key, ("reason", r)), 1.0 if r in ms.reason_kinds else 0.0)
        for r in REASON_KINDS
    ]
    if m.alert_timestamp is not None:
        out.append((ALERT_TS, name[ALERT_TS], (key,), m.alert_timestamp))
    return out


def settings_samples(ms: MonitorState) -> list[Sample]:
    """The samples that change only with the monitor's settings."""
    m, s, name = ms.monitor, ms.monitor.settings, _NAMES
    key = ("key", m.integration_key)
    out: list[Sample] = [
        (INFO, name[INFO], (key, ("name", s.name), ("type", s.type)), 1.0),
        (ACTIVE, name[ACTIVE], (key,), 1.0 if s.active else 0.0),
        (CREATED, name[CREATED], (key,), m.created_at),
        (INTERVAL, name[INTERVAL], (key,), s.alert_interval * 60.0),
    ]
    limits = (s.alert_no_creates_deceeds, s.alert_no_updates_deceeds, s.alert_no_deletes_deceeds)
    out += [
        (THRESHOLD, name[THRESHOLD], (key, ("operation", op)), float(limit))
        for op, limit in zip(OPERATIONS, limits, strict=True)
    ]
    words = describe(s)
    if words is not None:
        labels = (key, ("schedule", s.schedule), ("summary", words), ("timezone", s.timezone))
        out.append((SCHEDULE, name[SCHEDULE], labels, 1.0))
    if s.max_runtime > 0:
        out.append((MAX_RUNTIME, name[MAX_RUNTIME], (key,), s.max_runtime * 60.0))
    return out


def run_samples(
    ms: MonitorState, statuses: Sequence[str], final: Sequence[str], buckets: DurationBuckets
) -> list[Sample]:
    """The samples that change with reports."""
    key, name = ("key", ms.monitor.integration_key), _NAMES
    out: list[Sample] = []
    latest, done = ms.latest, ms.latest_finished
    if latest is not None:
        out += [
            (LAST_STATUS, name[LAST_STATUS], (key, ("status", st)),
             1.0 if latest.logstatus == st else 0.0)
            for st in statuses
        ]  # fmt: skip
        out.append((LAST_START, name[LAST_START], (key,), latest.starttime))
    expected = expected_run(ms.monitor.settings, ms.monitor.created_at, latest)
    if expected is not None:
        out.append((DEADLINE, name[DEADLINE], (key,), expected.deadline))
    if done is not None and done.endtime is not None:
        out.append((LAST_END, name[LAST_END], (key,), done.endtime))
    if ms.last_success is not None:
        out.append((LAST_OK, name[LAST_OK], (key,), ms.last_success))
    if done is not None:
        if done.duration is not None:
            out.append((LAST_DURATION, name[LAST_DURATION], (key,), done.duration))
        counts = (done.no_created, done.no_updated, done.no_deleted)
        out += [
            (LAST_OBJECTS, name[LAST_OBJECTS], (key, ("operation", op)), float(n))
            for op, n in zip(OPERATIONS, counts, strict=True)
        ]
    runs, logs = name[RUNS] + "_total", name[LOGS] + "_total"
    out += [(RUNS, runs, (key, ("status", st)), ms.counter("runs", st)) for st in final]
    out += [(LOGS, logs, (key, ("status", st)), ms.counter("logs", st)) for st in statuses]
    out += [
        (OBJECTS, name[OBJECTS] + "_total", (key, ("operation", op)), ms.counter("objects", op))
        for op in OPERATIONS
    ]
    hist = name[DURATIONS]
    cumulative = buckets.cumulative(ms.counters)
    out += [(DURATIONS, hist + "_bucket", (key, ("le", le)), n) for le, n in cumulative]
    out.append((DURATIONS, hist + "_count", (key,), cumulative[-1][1]))
    out.append((DURATIONS, hist + "_sum", (key,), ms.counter(DURATION, "sum")))
    return out


def monitor_samples(
    ms: MonitorState, statuses: Sequence[str], final: Sequence[str], buckets: DurationBuckets
) -> list[Sample]:
    """Every sample of one monitor: the one definition of the per-monitor series."""
    runs = run_samples(ms, statuses, final, buckets)
    return evaluation_samples(ms) + settings_samples(ms) + runs


def statuses_of(state: State) -> tuple[list[str], list[str]]:
    """All known statuses, and those that finish a run, sorted."""
    statuses = sorted(state.severities)
    return statuses, [st for st in statuses if state.is_final(st)]
