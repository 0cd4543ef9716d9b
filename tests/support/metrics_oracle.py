"""A second rendering of the per-monitor series, for tests only: a prometheus_client collector
over the same state, so tests can ask a registry `get_sample_value` (as client_python's own
tests do) and compare the production text renderer against the client library's."""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter.http import appkeys
from exporter.metrics.families import FAMILIES, Shape, monitor_samples
from exporter.service.state import State


class MonitorCollector(Collector):
    """Every monitor's series from the in-memory state, through `monitor_samples`."""

    def __init__(self, state: State, shape: Shape) -> None:
        self._state = state
        self._shape = shape

    def collect(self) -> Iterator[Metric]:
        families = [f.metric() for f in FAMILIES]
        for _, ms in sorted(self._state.monitors.items()):
            for index, sample_name, labels, value in monitor_samples(ms, self._shape):
                families[index].add_sample(sample_name, dict(labels), value)
        yield from families


def build_registry(monitors: MonitorCollector, service: CollectorRegistry) -> CollectorRegistry:
    """Everything /metrics shows, in one registry (monitor families first)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(monitors)
    registry.register(service)
    return registry


def registry_of(app: web.Application) -> CollectorRegistry:
    """The oracle registry of a running app: its state, its shape, its service metrics."""
    monitors = MonitorCollector(app[appkeys.STATE], app[appkeys.EXPOSITION].shape)
    return build_registry(monitors, app[appkeys.EXPOSITION].service)
