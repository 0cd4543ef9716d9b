"""Result rows, their targets, and the table they print as."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Target:
    """`value <op> limit` must hold, op being >= or <= or <."""

    op: str
    limit: float

    def met(self, value: float) -> bool:
        if self.op == ">=":
            return value >= self.limit
        if self.op == "<=":
            return value <= self.limit
        return value < self.limit

    def __str__(self) -> str:
        return f"{self.op} {_number(self.limit)}"


def at_least(limit: float) -> Target:
    return Target(">=", limit)


def at_most(limit: float) -> Target:
    return Target("<=", limit)


def below(limit: float) -> Target:
    return Target("<", limit)


@dataclass(frozen=True)
class Row:
    scenario: str
    measurement: str
    value: float | None  # None: could not be measured (counts as a miss when there is a target)
    unit: str
    target: Target | None = None

    @property
    def result(self) -> str:
        if self.target is None:
            return ""
        if self.value is None or not math.isfinite(self.value):
            return "MISS"
        return "PASS" if self.target.met(self.value) else "MISS"


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value >= 1000 or value == int(value):
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 0.1 or value == 0 else f"{value:.3f}"


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table (readable in a terminal, pasteable into a README)."""
    head = ("scenario", "measurement", "value", "target", "result")
    cells = [
        (
            r.scenario,
            r.measurement,
            "n/a" if r.value is None else f"{_number(r.value)} {r.unit}".rstrip(),
            f"{r.target} {r.unit}".rstrip() if r.target else "",
            r.result,
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [head, *cells]) for i in range(len(head))]

    def line(values: tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), rule, *(line(c) for c in cells)])


def write_json(rows: list[Row], path: Path, about: dict[str, str]) -> None:
    items = [{**asdict(r), "target": str(r.target) if r.target else None} for r in rows]
    for item, row in zip(items, rows, strict=True):
        item["result"] = row.result
    path.write_text(json.dumps({"about": about, "rows": items}, indent=2) + "\n")
