"""/metrics text, assembled from per-monitor pieces that are rendered again only on change.

The series are those of `MonitorCollector` (one definition, `monitor_samples`); this module
only caches their text. A scrape of 10,000 monitors then joins strings instead of formatting
half a million samples, which keeps it within milliseconds and off the ingest path.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.utils import floatToGoString

from exporter.metrics import (
    EVALUATION_FAMILIES,
    FAMILIES,
    MonitorCollector,
    P,
    Sample,
    evaluation_samples,
)
from exporter.state import MonitorState, State

_go_float: Callable[[float], str] = floatToGoString  # the client's own number format


_SPECIAL = re.compile(r'[\\\n"]')
_COMMON = {0.0: "0.0", 1.0: "1.0"}  # most values: skip the general number formatting


def _label_value(value: str) -> str:
    if _SPECIAL.search(value) is None:
        return value
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


_SUFFIXES: dict[tuple[tuple[str, str], ...], str] = {}  # labels after key, from fixed words


def _suffix(labels: tuple[tuple[str, str], ...]) -> str:
    """`,status="ok"}` for the labels after `key`; cached unless they hold free text."""
    text = _SUFFIXES.get(labels)
    if text is None:
        text = "".join(f',{k}="{_label_value(v)}"' for k, v in labels) + "}"
        if all(k != "name" for k, _ in labels):  # a monitor's name is free text: not cached
            _SUFFIXES[labels] = text
    return text


def _render(samples: list[Sample], into: list[bytes]) -> None:
    """Put one monitor's sample lines into `into`, one piece per family they belong to."""
    parts: dict[int, list[str]] = {}
    prefix = ""
    for index, name, labels, value in samples:
        if not prefix:  # every sample of a monitor starts with its key
            prefix = f'{{key="{_label_value(labels[0][1])}"'
        number = _COMMON.get(value) or _go_float(value)
        line = f"{name}{prefix}{_suffix(labels[1:])} {number}\n"
        lines = parts.get(index)
        if lines is None:
            parts[index] = [line]
        else:
            lines.append(line)
    for index, lines in parts.items():
        into[index] = "".join(lines).encode()


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


RUN_FAMILIES = [i for i in range(len(FAMILIES)) if i not in EVALUATION_FAMILIES]


class Exposition:
    """Renders /metrics in the Prometheus text format or OpenMetrics, caching each monitor."""

    def __init__(self, state: State, monitors: MonitorCollector, service: CollectorRegistry):
        self._state = state
        self._monitors = monitors
        self._service = service
        # key -> (state, its version, its evaluated count, one piece of text per family)
        self._cache: dict[str, tuple[MonitorState, int, int, list[bytes]]] = {}
        self._keys: list[str] = []
        self._membership = -1
        self._headers = {False: _headers(False), True: _headers(True)}

    def _pieces(self, key: str, ms: MonitorState) -> tuple[list[bytes], bool]:
        """The monitor's text per family, and whether any of it had to be rendered again.

        Only the part that changed is rendered, into a new list: a scrape still sending may
        hold the old one.
        """
        cached = self._cache.get(key)
        if cached is not None and cached[0] is ms:
            _, version, evaluated, old = cached
            if version == ms.version and evaluated == ms.evaluated:
                return old, False
            pieces = list(old)
        else:
            version = evaluated = -1
            pieces = [b""] * len(FAMILIES)
        if version != ms.version:
            for index in RUN_FAMILIES:
                pieces[index] = b""
            _render(self._monitors.run_samples(ms), pieces)
        if evaluated != ms.evaluated:
            for index in EVALUATION_FAMILIES:
                pieces[index] = b""
            _render(evaluation_samples(ms), pieces)
        self._cache[key] = (ms, ms.version, ms.evaluated, pieces)
        return pieces, True

    def _keys_now(self) -> list[str]:
        monitors = self._state.monitors
        if self._membership != self._state.membership:
            self._keys = sorted(monitors)
            self._membership = self._state.membership
            for gone in self._cache.keys() - monitors.keys():
                del self._cache[gone]
        return self._keys

    def _assemble(self, pieces: list[list[bytes]], openmetrics_format: bool) -> list[bytes]:
        """Header and body of each family, then the service's own metrics."""
        out: list[bytes] = []
        for index, header in enumerate(self._headers[openmetrics_format]):
            out.append(header)
            out.append(b"".join([p[index] for p in pieces]))
        if openmetrics_format:
            rest: bytes = openmetrics.generate_latest(self._service)  # type: ignore[no-untyped-call]
        else:
            rest = generate_latest(self._service)
        out.append(rest)
        return out

    def chunks(self, openmetrics_format: bool) -> list[bytes]:
        """The whole exposition now, as chunks to send one after another."""
        monitors = self._state.monitors
        pieces = [self._pieces(key, monitors[key])[0] for key in self._keys_now()]
        return self._assemble(pieces, openmetrics_format)

    async def chunks_yielding(self, openmetrics_format: bool, slice_size: int = 256) -> list[bytes]:
        """As `chunks`, but lets other requests in after every `slice_size` monitors rendered.

        Under heavy ingest most monitors changed since the last scrape; rendering them all in
        one go held reports up for hundreds of milliseconds at 10,000 monitors. Each
        monitor's text stays one moment's; a monitor removed meanwhile is left out.
        """
        pieces = []
        rendered = 0
        for key in self._keys_now():
            ms = self._state.monitors.get(key)
            if ms is None:
                continue
            text, fresh = self._pieces(key, ms)
            pieces.append(text)
            if fresh:
                rendered += 1
                if rendered % slice_size == 0:
                    await asyncio.sleep(0)
        return self._assemble(pieces, openmetrics_format)

    def render(self, openmetrics_format: bool) -> bytes:
        return b"".join(self.chunks(openmetrics_format))
