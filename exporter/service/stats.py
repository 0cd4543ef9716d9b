"""Counters of the service itself, kept in memory and exposed on /metrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class ServiceStats:
    reports: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, outcome)
    evaluations: int = 0
    evaluation_errors: int = 0
    evaluation_last: float | None = None
    evaluation_duration: float | None = None

    def report(self, kind: str, outcome: str) -> None:
        self.reports[(kind, outcome)] += 1
