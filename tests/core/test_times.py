"""Time formatting is total: whatever float a database holds renders, and parses back."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from exporter.core.times import format_time, iso

# What a database written before report times were bounded may hold: the ends of what a
# datetime with an offset can say (year 0 and year 10000 in UTC), and worse.
ODD = [
    datetime.fromisoformat("9999-12-31T23:59:59-01:00").timestamp(),
    datetime.fromisoformat("0001-01-01T00:00:00+01:00").timestamp(),
    4_102_444_800.0,  # 2100-01-01
    -1.5,
    1e300,
    -1e300,
    math.inf,
    -math.inf,
    math.nan,
]


@pytest.mark.parametrize("ts", ODD)
def test_iso_renders_every_float_as_a_parseable_utc_time(ts: float) -> None:
    text = iso(ts)
    assert text is not None and text.endswith("Z")
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None and 1 <= parsed.year <= 9999


def test_iso_clamps_to_the_years_clients_parse() -> None:
    assert iso(ODD[0]) == "9999-12-31T23:59:59.999Z"
    assert iso(ODD[1]) == "0001-01-01T00:00:00.000Z"
    assert iso(ODD[2]) == "2100-01-01T00:00:00.000Z"
    assert iso(-1.5) == "1969-12-31T23:59:58.500Z"


@pytest.mark.parametrize("ts", ODD)
def test_format_time_never_raises(ts: float) -> None:
    text = format_time(ts)
    assert text.endswith(" UTC")
    datetime.strptime(text, "%Y-%m-%d %H:%M UTC")


def test_format_time_reads_as_utc() -> None:
    ts = datetime(2026, 11, 28, 10, 2, 59, tzinfo=UTC).timestamp()
    assert format_time(ts) == "2026-11-28 10:02 UTC"
    assert format_time(ODD[1]) == "0001-01-01 00:00 UTC"
