"""Small inline SVG charts of a monitor's recent runs, built as text with no I/O.

The SVG carries classes, not colours: the status page's stylesheet paints it, so the charts
follow the page's theme and need no inline style (the Content-Security-Policy forbids it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from exporter.core.evaluation import format_span

WIDTH = 640
HEIGHT = 168
LEFT = 52  # room for the y-axis labels
RIGHT = 8
TOP = 10
BOTTOM = 22  # room for the x-axis labels
MAX_BAR = 28.0
SERIES = ("created", "updated", "deleted")
_DURATION_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800)


@dataclass(frozen=True, slots=True)
class ChartRun:
    """One run as a chart shows it: `label` is its time, `severity` its colour class."""

    label: str
    severity: str
    status: str
    duration: float | None
    created: int
    updated: int
    deleted: int
    running_for: float | None = None  # a run not finished: seconds since it started


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (and at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def duration_ceiling(seconds: float) -> float:
    """A round axis maximum for durations: 30 s, 5 min, 2 h rather than 4,213 s."""
    for step in _DURATION_STEPS:
        if step >= seconds:
            return float(step)
    return float(math.ceil(seconds / 28800) * 28800)


def short_span(seconds: float) -> str:
    """A compact span for axis labels and tooltips: 0.4 s, 12 s, 5 min, 2 h 5 min."""
    if seconds < 10:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.0f} min" if minutes >= 10 else f"{minutes:.1f} min".replace(".0 ", " ")
    return format_span(seconds)


def short_count(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:,.0f}"


def _frame(title: str, top_label: str, mid_label: str, first: str, last: str) -> list[str]:
    """The SVG element, its accessible title, gridlines and axis labels."""
    bottom = HEIGHT - BOTTOM
    middle = TOP + (bottom - TOP) / 2
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line class="grid" x1="{LEFT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}"/>',
        f'<line class="grid" x1="{LEFT}" y1="{middle}" x2="{WIDTH - RIGHT}" y2="{middle}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">'
        f"{escape(top_label)}</text>",
        f'<text class="tick" x="{LEFT - 6}" y="{middle + 4}" text-anchor="end">'
        f"{escape(mid_label)}</text>",
        f'<text class="tick" x="{LEFT - 6}" y="{bottom + 4}" text-anchor="end">0</text>',
        f'<text class="tick" x="{LEFT}" y="{HEIGHT - 6}">{escape(first)}</text>',
    ]
    if last != first:
        parts.append(
            f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
            f"{escape(last)}</text>"
        )
    return parts


def _slots(count: int) -> tuple[float, float]:
    """The width of one run's slot and of its bar."""
    slot = (WIDTH - LEFT - RIGHT) / max(count, 1)
    return slot, min(MAX_BAR, max(slot * 0.72, 1.0))


def _empty(title: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} 48" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<text class="tick" x="{WIDTH / 2}" y="28" text-anchor="middle">No runs yet</text></svg>'
    )


def duration_chart(runs: Sequence[ChartRun]) -> Markup:
    """Bars of run duration, oldest run first, coloured by severity.

    The axis follows the finished runs. A run not finished is drawn for as long as it has been
    running, up to the top of the chart and no further (class `open`): a start whose finish
    never came reads as a run still going, not as a short one, and does not squash the rest.
    """
    title = f"Duration of the last {len(runs)} runs"
    if not runs:
        return _empty(title)
    finished = [r.duration for r in runs if r.duration is not None]
    longest = max(finished) if finished else max((r.running_for or 0.0) for r in runs)
    top = duration_ceiling(longest)
    bottom = HEIGHT - BOTTOM
    slot, bar = _slots(len(runs))
    parts = _frame(title, short_span(top), short_span(top / 2), runs[0].label, runs[-1].label)
    for i, run in enumerate(runs):
        x = LEFT + i * slot + (slot - bar) / 2
        classes = f"bar {escape(run.severity)}"
        if run.duration is not None:
            seconds, shown = run.duration, short_span(run.duration)
        else:
            seconds = run.running_for or 0.0
            shown = f"running for {short_span(seconds)}, not finished"
            classes += " open"
        height = max((bottom - TOP) * min(seconds, top) / top, 1.5)
        parts.append(
            f'<rect class="{classes}" x="{x:.1f}" y="{bottom - height:.1f}" '
            f'width="{bar:.1f}" height="{height:.1f}" rx="1.5">'
            f"<title>{escape(run.label)}: {escape(run.status)}, {escape(shown)}</title></rect>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def counts_chart(runs: Sequence[ChartRun]) -> Markup:
    """Stacked bars of created, updated and deleted objects per run, oldest run first."""
    title = f"Objects created, updated and deleted in the last {len(runs)} runs"
    if not runs:
        return _empty(title)
    top = nice_ceiling(max(r.created + r.updated + r.deleted for r in runs))
    bottom = HEIGHT - BOTTOM
    slot, bar = _slots(len(runs))
    parts = _frame(title, short_count(top), short_count(top / 2), runs[0].label, runs[-1].label)
    for i, run in enumerate(runs):
        x = LEFT + i * slot + (slot - bar) / 2
        y = float(bottom)
        tip = (
            f"{run.label}: {run.created:,} created, {run.updated:,} updated, "
            f"{run.deleted:,} deleted"
        )
        parts.append(f"<g><title>{escape(tip)}</title>")
        for name, value in zip(SERIES, (run.created, run.updated, run.deleted), strict=True):
            if value <= 0:
                continue
            height = (bottom - TOP) * value / top
            y -= height
            parts.append(
                f'<rect class="seg {name}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}"/>'
            )
        if y == bottom:  # nothing at all: a hairline so the run still shows
            parts.append(
                f'<rect class="seg none" x="{x:.1f}" y="{bottom - 1}" '
                f'width="{bar:.1f}" height="1"/>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))


def status_strip(runs: Sequence[ChartRun]) -> Markup:
    """One tick per run (e.g. a message monitor's logs), oldest first, coloured by severity."""
    title = f"Status of the last {len(runs)} logs"
    if not runs:
        return _empty(title)
    height = 56
    slot, bar = _slots(len(runs))
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text class="tick" x="{LEFT}" y="{height - 4}">{escape(runs[0].label)}</text>',
    ]
    if len(runs) > 1:
        parts.append(
            f'<text class="tick" x="{WIDTH - RIGHT}" y="{height - 4}" text-anchor="end">'
            f"{escape(runs[-1].label)}</text>"
        )
    for i, run in enumerate(runs):
        x = LEFT + i * slot + (slot - bar) / 2
        parts.append(
            f'<rect class="bar {escape(run.severity)}" x="{x:.1f}" y="6" width="{bar:.1f}" '
            f'height="30" rx="1.5"><title>{escape(run.label)}: {escape(run.status)}</title></rect>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
