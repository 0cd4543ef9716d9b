"""Request models and the helpers beside them: time format and truncation."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from exporter.core.reports import TEXT_LIMITS, truncate
from exporter.core.times import iso


def test_iso_formats_exactly_as_datetime_does() -> None:
    rng = random.Random(7)
    samples = [rng.uniform(0, 2e9) for _ in range(20000)]
    samples += [
        round(rng.uniform(1.79e9, 1.8e9), rng.choice([0, 1, 3, 4, 6])) for _ in range(20000)
    ]
    samples += [1_796_000_000.0, 1_796_000_000.9995, 1_796_000_000.9999996, 0.0]
    for ts in samples:
        expected = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert iso(ts) == expected, ts
    assert iso(None) is None


def test_truncate_names_each_cut_field() -> None:
    texts, cut = truncate({"logtext": "x" * 300, "errormsg": "short", "message": "m" * 1024})
    assert cut == ("logtext",)
    assert len(texts["logtext"]) == TEXT_LIMITS["logtext"]
    assert texts["errormsg"] == "short" and len(texts["message"]) == 1024
