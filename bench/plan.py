"""What a run measures: the sizes of each scenario, for the full run and for the smoke run."""

from __future__ import annotations

from dataclasses import dataclass, replace

SCENARIOS = (
    "ingest",
    "scrape",
    "alert",
    "evaluation",
    "memory",
    "pushgateway",
    "prometheus",
    "replicas",
)


def key(index: int) -> str:
    """The integration_key of the index-th benchmark monitor."""
    return f"m{index:05d}"


@dataclass(frozen=True)
class Sizes:
    duration: float = 30.0  # seconds of each ingest load
    clients: int = 32
    ingest_monitors: int = 1_000
    stored_runs: int = 1_000_000
    scrape_monitors: tuple[int, ...] = (1_000, 10_000)
    runs_per_monitor: int = 3  # so that every series of a monitor exists
    scrapes: int = 50
    alert_monitors: int = 1_000
    alert_samples: int = 20
    evaluation_monitors: int = 10_000
    evaluation_passes: int = 5
    memory_monitors: int = 10_000
    memory_runs: int = 1_000_000
    push_groups: int = 1_000
    push_scrape_groups: int = 10_000  # Pushgateway holding one group per monitor, scraped
    push_scrapes: int = 10  # its /metrics takes seconds at 10,000 groups
    prometheus_monitors: int = 1_000
    prometheus_seconds: float = 60.0
    prometheus_interval: float = 1.0
    propagation_samples: int = 200
    pool_sizes: tuple[int, ...] = (2, 10, 30)  # PostgreSQL connections per replica; 10: default

    def with_duration(self, duration: float | None) -> Sizes:
        return self if duration is None else replace(self, duration=duration)


FULL = Sizes()
SMOKE = Sizes(
    duration=1.0,
    clients=4,
    ingest_monitors=20,
    stored_runs=2_000,
    scrape_monitors=(20, 50),
    scrapes=5,
    alert_monitors=20,
    alert_samples=3,
    evaluation_monitors=200,
    evaluation_passes=2,
    memory_monitors=50,
    memory_runs=2_000,
    push_groups=20,
    push_scrape_groups=50,
    push_scrapes=3,
    prometheus_monitors=20,
    prometheus_seconds=3.0,
    propagation_samples=5,
    pool_sizes=(2, 10),
)
