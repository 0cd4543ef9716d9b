"""/metrics text, assembled from per-monitor pieces that are rendered again only on change.

The series are those of `MonitorCollector` (one definition, `monitor_samples`); this module
only caches their text. A scrape of 10,000 monitors then joins strings instead of formatting
half a million samples, which keeps it within milliseconds and off the ingest path.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.utils import floatToGoString

from exporter.metrics import FAMILIES, MonitorCollector, P, Sample
from exporter.state import MonitorState, State

_go_float: Callable[[float], str] = floatToGoString  # the client's own number format


_SPECIAL = re.compile(r'[\\\n"]')
_COMMON = {0.0: "0.0", 1.0: "1.0"}  # most values: skip the general number formatting


def _label_value(value: str) -> str:
    if _SPECIAL.search(value) is None:
        return value
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _render(samples: list[Sample]) -> tuple[bytes, ...]:
    """One monitor's sample lines, one piece per family."""
    parts: list[list[str]] = [[] for _ in FAMILIES]
    for index, name, labels, value in samples:
        labelstr = ",".join(f'{k}="{_label_value(v)}"' for k, v in labels)
        number = _COMMON.get(value) or _go_float(value)
        parts[index].append(f"{name}{{{labelstr}}} {number}\n")
    return tuple("".join(lines).encode() for lines in parts)


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


class Exposition:
    """Renders /metrics in the Prometheus text format or OpenMetrics, caching each monitor."""

    def __init__(self, state: State, monitors: MonitorCollector, service: CollectorRegistry):
        self._state = state
        self._monitors = monitors
        self._service = service
        self._cache: dict[str, tuple[MonitorState, int, tuple[bytes, ...]]] = {}
        self._keys: list[str] = []
        self._membership = -1
        self._headers = {False: _headers(False), True: _headers(True)}

    def _pieces(self, key: str, ms: MonitorState) -> tuple[bytes, ...]:
        cached = self._cache.get(key)
        if cached is not None and cached[0] is ms and cached[1] == ms.version:
            return cached[2]
        pieces = _render(self._monitors.samples(ms))
        self._cache[key] = (ms, ms.version, pieces)
        return pieces

    def render(self, openmetrics_format: bool) -> bytes:
        monitors = self._state.monitors
        if self._membership != self._state.membership:
            self._keys = sorted(monitors)
            self._membership = self._state.membership
            for gone in self._cache.keys() - monitors.keys():
                del self._cache[gone]
        pieces = [self._pieces(key, monitors[key]) for key in self._keys]
        out: list[bytes] = []
        for index, header in enumerate(self._headers[openmetrics_format]):
            out.append(header)
            out.extend([p[index] for p in pieces])
        body = b"".join(out)
        if openmetrics_format:
            rest: bytes = openmetrics.generate_latest(self._service)  # type: ignore[no-untyped-call]
            return body + rest
        return body + generate_latest(self._service)
