"""The service's own metrics: build, evaluation, reports received, database."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.core.statuses import ALERT_STATUSES
from exporter.metrics.families import P
from exporter.service.state import State
from exporter.service.stats import ServiceStats
from exporter.storage.interface import StoreStats

REPORT_KINDS = ("batch", "batch_update", "log", "ping")
REPORT_OUTCOMES = ("stored", "duplicate", "rejected")


class ServiceCollector(Collector):
    """The service's own metrics."""

    def __init__(
        self,
        state: State,
        stats: ServiceStats,
        evaluation_interval: float,
        store_stats: Callable[[], StoreStats],
        leads: Callable[[], bool] = lambda: True,
    ) -> None:
        self._leads = leads
        self._state = state
        self._stats = stats
        self._interval = evaluation_interval
        self._store_stats = store_stats

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily(
            P + "build_info", "The running version; always 1.", labels=["version"]
        )
        build.add_metric([__version__], 1)
        yield build
        by_status = GaugeMetricFamily(
            P + "monitors", "Active monitors by alert status.", labels=["status"]
        )
        counts: dict[str, int] = dict.fromkeys(ALERT_STATUSES, 0)
        inactive = 0
        for ms in self._state.monitors.values():
            if ms.monitor.settings.active:
                counts[ms.monitor.alertstatus] += 1
            else:
                inactive += 1
        for status, n in counts.items():
            by_status.add_metric([status], n)
        yield by_status
        yield GaugeMetricFamily(
            P + "monitors_inactive",
            "Inactive monitors (not evaluated; left out of integration_monitor_monitors).",
            value=inactive,
        )
        yield GaugeMetricFamily(
            P + "evaluation_interval_seconds",
            "Configured evaluation interval.",
            value=self._interval,
        )
        yield GaugeMetricFamily(
            P + "evaluation_leader",
            "1 on the replica that runs the periodic evaluation pass and retention (it holds "
            "the lease), else 0. Always 1 on SQLite.",
            value=int(self._leads()),
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
        database = self._store_stats()
        yield GaugeMetricFamily(
            P + "database_size_bytes",
            "Size of the database: the SQLite file with its WAL, or the PostgreSQL database "
            "(measured every minute).",
            value=database.size_bytes,
        )
        yield CounterMetricFamily(
            P + "database_commits",
            "Transactions committed by the writer (each holds a group of writes).",
            value=database.commits,
        )
        yield CounterMetricFamily(
            P + "database_writes",
            "Writes (reports, monitor changes, evaluation results) committed.",
            value=database.writes,
        )


def service_registry(
    state: State,
    stats: ServiceStats,
    evaluation_interval: float,
    store_stats: Callable[[], StoreStats],
    leads: Callable[[], bool] = lambda: True,
) -> CollectorRegistry:
    """The service's own metrics with the standard process and platform collectors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(state, stats, evaluation_interval, store_stats, leads))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
