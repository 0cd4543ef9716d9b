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

    def _pieces(self, key: str, ms: MonitorState) -> list[bytes]:
        """The monitor's text per family, rendering again only the part that changed."""
        cached = self._cache.get(key)
        if cached is not None and cached[0] is ms:
            _, version, evaluated, pieces = cached
            if version == ms.version and evaluated == ms.evaluated:
                return pieces
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
        return pieces

    def chunks(self, openmetrics_format: bool) -> list[bytes]:
        """The exposition as one chunk per family (then the service's own metrics).

        The text is taken from the state now, so chunks sent later are still one moment's.
        """
        monitors = self._state.monitors
        if self._membership != self._state.membership:
            self._keys = sorted(monitors)
            self._membership = self._state.membership
            for gone in self._cache.keys() - monitors.keys():
                del self._cache[gone]
        pieces = [self._pieces(key, monitors[key]) for key in self._keys]
        out = [
            header + b"".join([p[index] for p in pieces])
            for index, header in enumerate(self._headers[openmetrics_format])
        ]
        if openmetrics_format:
            rest: bytes = openmetrics.generate_latest(self._service)  # type: ignore[no-untyped-call]
        else:
            rest = generate_latest(self._service)
        out.append(rest)
        return out

    def render(self, openmetrics_format: bool) -> bytes:
        return b"".join(self.chunks(openmetrics_format))
