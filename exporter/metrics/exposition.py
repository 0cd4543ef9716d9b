"""/metrics text, assembled from per-monitor pieces that are rendered again only on change.

The series are defined once, in `families`; this module renders and caches their text, per
monitor and per family, and gzip-compresses each family's text once per change (`gzip`). A
scrape of 10,000 monitors then joins a few ready strings instead of formatting a hundred
thousand samples, which keeps it within milliseconds and off the ingest path.
"""

from __future__ import annotations

import asyncio
import re
from array import array
from collections.abc import Callable, Hashable
from itertools import accumulate

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.utils import floatToGoString

from exporter.metrics.families import (
    EVALUATION_FAMILIES,
    FAMILIES,
    KEY,
    SETTINGS_FAMILIES,
    P,
    Sample,
    Shape,
    evaluation_samples,
    run_samples,
    settings_samples,
)
from exporter.metrics.gzip import GzipPieces
from exporter.service.state import MonitorState, State

_go_float: Callable[[float], str] = floatToGoString  # the client's own number format


_SPECIAL = re.compile(r'[\\\n"]')
_COMMON = {0.0: "0.0", 1.0: "1.0"}  # most values: skip the general number formatting


def _label_value(value: str) -> str:
    if _SPECIAL.search(value) is None:
        return value
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


_SUFFIXES: dict[tuple[tuple[str, str], ...], str] = {}  # labels after key, from fixed words
_FREE_TEXT = frozenset({"name", "schedule", "summary", "timezone", "team"})  # set by people


def _suffix(labels: tuple[tuple[str, str], ...]) -> str:
    """`,status="ok"}` for the labels after the key; cached unless they hold free text."""
    text = _SUFFIXES.get(labels)
    if text is None:
        text = "".join(f',{k}="{_label_value(v)}"' for k, v in labels) + "}"
        if _FREE_TEXT.isdisjoint(k for k, _ in labels):  # names, schedules: not cached
            _SUFFIXES[labels] = text
    return text


def _render(samples: list[Sample]) -> dict[int, bytes]:
    """One monitor's sample lines, one piece per family they belong to."""
    parts: dict[int, list[str]] = {}
    prefix = ""
    for index, name, labels, value in samples:
        number = _COMMON.get(value)
        if number is None:
            number = repr(value)  # floatToGoString's answer, unless the checks below say not
            if "n" in number or (value > 0 and number.find(".") > 6):  # inf, nan; exponent
                number = _go_float(value)
        if labels[0][0] != KEY:  # a label sorts before the key (info's `active`)
            text = ",".join(f'{k}="{_label_value(v)}"' for k, v in labels)
            line = f"{name}{{{text}}} {number}\n"
        else:
            if not prefix:
                prefix = f'{{{KEY}="{_label_value(labels[0][1])}"'
            line = f"{name}{prefix}{_suffix(labels[1:])} {number}\n"
        lines = parts.get(index)
        if lines is None:
            parts[index] = [line]
        else:
            lines.append(line)
    return {index: "".join(lines).encode() for index, lines in parts.items()}


def _headers(openmetrics_format: bool) -> tuple[bytes, ...]:
    out = []
    for family in FAMILIES:
        name = P + family.name
        if openmetrics_format:
            doc = _label_value(family.doc)
        else:
            doc = family.doc.replace("\\", r"\\").replace("\n", r"\n")
            name += "_total" if family.type == "counter" else ""
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {family.type}\n".encode())
    return tuple(out)


class Spliced:
    """One family's text for every monitor, in key order, as one bytes object.

    A monitor's piece changes by splicing: changes wait in `_pending` and `commit` makes the
    new text in one join of the unchanged stretches (views into the old text) and the new
    pieces. No object per monitor is kept, which at 10,000 monitors and a dozen families saved
    5 MB of object headers, and an unchanged family is sent as it is, without a join.
    """

    __slots__ = ("_ends", "_lengths", "_pending", "text", "version")

    def __init__(self, count: int, version: int = 0) -> None:
        self.text = b""
        self.version = version  # moves with every change: the key of its gzip segment
        self._lengths = array("I", [0]) * count  # a family of one service stays under 4 GB
        self._ends = array("I", [0]) * count
        self._pending: dict[int, bytes] = {}

    def set(self, i: int, piece: bytes) -> None:
        """The i-th monitor's piece from now on (a change only when it differs)."""
        old = self._pending.get(i)
        if old is None:
            end = self._ends[i]
            old = self.text[end - self._lengths[i] : end]
        if piece != old:
            self._pending[i] = piece
            self.version += 1

    def commit(self) -> bytes:
        """The text with every change made."""
        if self._pending:
            view, at = memoryview(self.text), 0
            parts: list[bytes | memoryview] = []
            for i in sorted(self._pending):
                end = self._ends[i]
                start = end - self._lengths[i]
                parts.append(view[at:start])
                piece = self._pending[i]
                parts.append(piece)
                self._lengths[i] = len(piece)
                at = end
            parts.append(view[at:])
            self.text = b"".join(parts)
            self._ends = array("I", accumulate(self._lengths))
            self._pending.clear()
        return self.text


RUN_FAMILIES = [i for i in range(len(FAMILIES)) if i not in EVALUATION_FAMILIES | SETTINGS_FAMILIES]
SERVICE = "service"  # the piece of the service's own metrics (gzip cache key)


def _marks(ms: MonitorState) -> tuple[int, int, int]:
    """What has changed of a monitor: its settings, its runs, its evaluation."""
    return (ms.configured, ms.version, ms.evaluated)


class Exposition:
    """Renders /metrics in the Prometheus text format or OpenMetrics, caching each monitor.

    The cache is family-major: `_families[f]` holds the text of family f for every monitor by
    key (`Spliced`), so a family's body is ready as it is. A monitor is rendered again only in
    the part that changed: settings, runs (each report) or evaluation. A gzip-compressed
    scrape compresses only the families that changed since the last one.
    """

    def __init__(self, state: State, shape: Shape, service: CollectorRegistry) -> None:
        self._state = state
        self.shape = shape
        self.service = service
        self._headers = {False: _headers(False), True: _headers(True)}
        self._gzip = GzipPieces()
        self._membership = -1
        self._keys: list[str] = []
        self._families = [Spliced(0) for _ in FAMILIES]
        # The marks of each monitor when it was last rendered, by part (settings, runs,
        # evaluation); -1: not yet. Arrays of machine integers: 10,000 tuples were 1.5 MB.
        self._seen: tuple[array[int], ...] = ()
        self._parts: tuple[tuple[list[int], Callable[[MonitorState], list[Sample]]], ...] = (
            (sorted(SETTINGS_FAMILIES), settings_samples),
            (RUN_FAMILIES, self._run_samples),
            (sorted(EVALUATION_FAMILIES), evaluation_samples),
        )

    def _run_samples(self, ms: MonitorState) -> list[Sample]:
        return run_samples(ms, self.shape)

    def _layout(self) -> None:
        """Start afresh when monitors were added or removed (their order changes)."""
        if self._membership == self._state.membership:
            return
        self._membership = self._state.membership
        self._keys = sorted(self._state.monitors)
        count = len(self._keys)
        self._families = [Spliced(count, f.version + 1) for f in self._families]
        self._seen = tuple(array("q", [-1]) * count for _ in self._parts)

    def _stale(self) -> list[int]:
        """The monitors changed since they were rendered. A monitor keeps its state object for
        as long as it exists (one added or removed lays everything out again)."""
        monitors = self._state.monitors
        settings, runs, evaluated = self._seen
        return [
            i
            for i, key in enumerate(self._keys)
            if _marks(monitors[key]) != (settings[i], runs[i], evaluated[i])
        ]

    def _refresh(self, i: int) -> None:
        ms = self._state.monitors[self._keys[i]]
        for part, mark in enumerate(_marks(ms)):
            seen = self._seen[part]
            if seen[i] == mark:
                continue
            families, samples = self._parts[part]
            text = _render(samples(ms))
            for index in families:
                self._families[index].set(i, text.get(index, b""))
            seen[i] = mark

    def _service(self, openmetrics_format: bool) -> bytes:
        if openmetrics_format:
            rest: bytes = openmetrics.generate_latest(self.service)  # type: ignore[no-untyped-call]
            return rest
        return generate_latest(self.service)

    def _text(self, openmetrics_format: bool) -> list[bytes]:
        """Header and body of each family, then the service's own metrics."""
        out: list[bytes] = []
        for header, family in zip(self._headers[openmetrics_format], self._families, strict=True):
            out.append(header)
            out.append(family.commit())
        out.append(self._service(openmetrics_format))
        return out

    def _gzip_pieces(self, openmetrics_format: bool) -> list[tuple[Hashable, int, bytes | None]]:
        """What `GzipPieces.encode` needs: the text of the families that changed only."""
        out: list[tuple[Hashable, int, bytes | None]] = []
        current = self._gzip.current
        for index, header in enumerate(self._headers[openmetrics_format]):
            key = (openmetrics_format, index)
            out.append((key, 0, None if current(key, 0) else header))
            family = self._families[index]
            text = family.commit()
            out.append((index, family.version, None if current(index, family.version) else text))
        out.append((SERVICE, 0, self._service(openmetrics_format)))
        return out

    def _update(self) -> None:
        self._layout()
        for i in self._stale():
            self._refresh(i)

    def chunks(self, openmetrics_format: bool) -> list[bytes]:
        """The whole exposition now, as chunks to send one after another."""
        self._update()
        return self._text(openmetrics_format)

    async def chunks_yielding(
        self, openmetrics_format: bool, gzip: bool = False, slice_size: int = 256
    ) -> list[bytes]:
        """As `chunks`, but lets other requests in after every `slice_size` monitors rendered,
        and gzip-compressed (one gzip member) in a worker thread when `gzip`.

        Under heavy ingest most monitors changed since the last scrape; rendering them all in
        one go held reports up for hundreds of milliseconds at 10,000 monitors. The text is
        assembled in one step at the end, so each family is one moment's.
        """
        laid_out = False
        for _ in range(3):  # monitors added or removed meanwhile: lay out again
            self._layout()
            stale = self._stale()
            for n, i in enumerate(stale, 1):
                if self._membership != self._state.membership:
                    break
                self._refresh(i)
                if n % slice_size == 0:
                    await asyncio.sleep(0)
            else:
                if self._membership == self._state.membership:
                    laid_out = True
                    break
        if not laid_out:
            self._update()
        if not gzip:
            return self._text(openmetrics_format)
        return await asyncio.to_thread(self._gzip.encode, self._gzip_pieces(openmetrics_format))

    def render(self, openmetrics_format: bool) -> bytes:
        return b"".join(self.chunks(openmetrics_format))
