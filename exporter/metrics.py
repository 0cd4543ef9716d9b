"""The Prometheus exposition: a collector over the in-memory state, and the registry around it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.records import OPERATIONS
from exporter.state import DURATION, DurationBuckets, MonitorState, State
from exporter.stats import ServiceStats
from exporter.statuses import ALERT_STATUSES

P = "integration_monitor_"
REPORT_KINDS = ("batch", "batch_update", "log", "ping")
REPORT_OUTCOMES = ("stored", "duplicate", "rejected")


def _gauge(name: str, doc: str, labels: Sequence[str] = ("key",)) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, doc, labels=list(labels))


class MonitorCollector(Collector):
    """Renders every monitor's series from the state; never touches the database."""

    def __init__(self, state: State, buckets: DurationBuckets) -> None:
        self._state = state
        self._buckets = buckets

    def collect(self) -> Iterator[Metric]:
        statuses = sorted(self._state.severities)
        info = _gauge("info", "Monitor name and type; always 1.", ("key", "name", "type"))
        active = _gauge("active", "1 when the monitor is active (evaluated).")
        created = _gauge("created_timestamp_seconds", "When the monitor was created.")
        alert = _gauge(
            "alert_status", "Current alert status, one series per status.", ("key", "status")
        )
        alert_ts = _gauge("alert_timestamp_seconds", "When the alert status was last evaluated.")
        interval = _gauge("alert_interval_seconds", "alert_interval in seconds; 0 is off.")
        threshold = _gauge(
            "alert_threshold", "Minimum objects per run; 0 is off.", ("key", "operation")
        )
        last_status = _gauge(
            "last_run_status", "Status of the latest run, one series per status.", ("key", "status")
        )
        last_start = _gauge("last_run_start_timestamp_seconds", "Start of the latest run.")
        last_end = _gauge("last_run_end_timestamp_seconds", "End of the latest finished run.")
        last_ok = _gauge("last_success_timestamp_seconds", "End of the latest successful run.")
        last_duration = _gauge("last_run_duration_seconds", "Duration of the latest finished run.")
        last_objects = _gauge(
            "last_run_objects", "Objects of the latest finished run.", ("key", "operation")
        )
        runs = CounterMetricFamily(P + "runs", "Finished runs by status.", labels=["key", "status"])
        logs = CounterMetricFamily(P + "logs", "Log messages by status.", labels=["key", "status"])
        objects = CounterMetricFamily(
            P + "objects", "Objects by operation, summed over runs.", labels=["key", "operation"]
        )
        durations = HistogramMetricFamily(
            P + "run_duration_seconds", "Durations of finished batches.", labels=["key"]
        )
        for key, ms in sorted(self._state.monitors.items()):
            m = ms.monitor
            s = m.settings
            info.add_metric([key, s.name, s.type], 1)
            active.add_metric([key], 1 if s.active else 0)
            created.add_metric([key], m.created_at)
            for alert_status in ALERT_STATUSES:
                alert.add_metric([key, alert_status], 1 if m.alertstatus == alert_status else 0)
            if m.alert_timestamp is not None:
                alert_ts.add_metric([key], m.alert_timestamp)
            interval.add_metric([key], s.alert_interval * 60)
            for op, limit in zip(
                OPERATIONS,
                (
                    s.alert_no_creates_deceeds,
                    s.alert_no_updates_deceeds,
                    s.alert_no_deletes_deceeds,
                ),
                strict=True,
            ):
                threshold.add_metric([key, op], limit)
            if ms.latest is not None:
                for status in statuses:
                    last_status.add_metric([key, status], 1 if ms.latest.logstatus == status else 0)
                last_start.add_metric([key], ms.latest.starttime)
            done = ms.latest_finished
            if done is not None:
                if done.endtime is not None:
                    last_end.add_metric([key], done.endtime)
                if done.duration is not None:
                    last_duration.add_metric([key], done.duration)
                for op, n in zip(
                    OPERATIONS, (done.no_created, done.no_updated, done.no_deleted), strict=True
                ):
                    last_objects.add_metric([key, op], n)
            if ms.last_success is not None:
                last_ok.add_metric([key], ms.last_success)
            self._counters(key, ms, statuses, runs, logs, objects, durations)
        yield from (info, active, created, alert, alert_ts, interval, threshold, last_status)
        yield from (last_start, last_end, last_ok, last_duration, last_objects)
        yield from (runs, logs, objects, durations)

    def _counters(
        self,
        key: str,
        ms: MonitorState,
        statuses: Sequence[str],
        runs: CounterMetricFamily,
        logs: CounterMetricFamily,
        objects: CounterMetricFamily,
        durations: HistogramMetricFamily,
    ) -> None:
        for status in statuses:
            if self._state.is_final(status):
                runs.add_metric([key, status], ms.counter("runs", status))
            logs.add_metric([key, status], ms.counter("logs", status))
        for op in OPERATIONS:
            objects.add_metric([key, op], ms.counter("objects", op))
        durations.add_metric(
            [key], self._buckets.cumulative(ms), sum_value=ms.counter(DURATION, "sum")
        )


class ServiceCollector(Collector):
    """The service's own metrics."""

    def __init__(
        self,
        state: State,
        stats: ServiceStats,
        evaluation_interval: float,
        database_size: Callable[[], int],
    ) -> None:
        self._state = state
        self._stats = stats
        self._interval = evaluation_interval
        self._database_size = database_size

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily(
            P + "build_info", "The running version; always 1.", labels=["version"]
        )
        build.add_metric([__version__], 1)
        yield build
        by_status = GaugeMetricFamily(
            P + "monitors", "Monitors by alert status.", labels=["status"]
        )
        counts: dict[str, int] = dict.fromkeys(ALERT_STATUSES, 0)
        for ms in self._state.monitors.values():
            counts[ms.monitor.alertstatus] += 1
        for status, n in counts.items():
            by_status.add_metric([status], n)
        yield by_status
        yield GaugeMetricFamily(
            P + "evaluation_interval_seconds",
            "Configured evaluation interval.",
            value=self._interval,
        )
        stats = self._stats
        if stats.evaluation_last is not None:
            yield GaugeMetricFamily(
                P + "evaluation_last_timestamp_seconds",
                "When the last full evaluation pass finished.",
                value=stats.evaluation_last,
            )
        if stats.evaluation_duration is not None:
            yield GaugeMetricFamily(
                P + "evaluation_duration_seconds",
                "How long the last full evaluation pass took.",
                value=stats.evaluation_duration,
            )
        yield CounterMetricFamily(
            P + "evaluations", "Full evaluation passes since start.", value=stats.evaluations
        )
        yield CounterMetricFamily(
            P + "evaluation_errors",
            "Monitor evaluations that raised (logged and skipped).",
            value=stats.evaluation_errors,
        )
        reports = CounterMetricFamily(
            P + "reports_received",
            "Reports received by kind and outcome.",
            labels=["kind", "outcome"],
        )
        for kind in REPORT_KINDS:
            for outcome in REPORT_OUTCOMES:
                reports.add_metric([kind, outcome], stats.reports[(kind, outcome)])
        yield reports
        yield GaugeMetricFamily(
            P + "database_size_bytes",
            "Size of the SQLite database file with its WAL.",
            value=self._database_size(),
        )


def build_registry(
    state: State,
    buckets: DurationBuckets,
    stats: ServiceStats,
    evaluation_interval: float,
    database_size: Callable[[], int],
) -> CollectorRegistry:
    """A fresh registry with the monitor, service, process and platform collectors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(state, buckets))
    registry.register(ServiceCollector(state, stats, evaluation_interval, database_size))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
