"""Times as the service writes them: total functions of any stored float, never raising.

Times are Unix seconds (UTC) everywhere inside. Reports may carry times from `EARLIEST` up to
a little into the future (the clock-skew allowance); a database written before that rule may
hold anything a datetime can say, from year 0 to year 10000. Formatting clamps to what every
client can parse (years 0001 to 9999) instead of failing a page or an answer.
"""

from __future__ import annotations

import math
import time

EARLIEST = 946_684_800.0  # 2000-01-01T00:00:00Z: older report times are refused
_FIRST = -62_135_596_800.0  # 0001-01-01T00:00:00Z
_LAST = 253_402_300_799.9995  # 9999-12-31T23:59:59.999Z, as floats there round

_SECONDS: dict[int, str] = {}  # whole second -> "2026-11-30T10:02:03", for recent seconds


def _clamped(ts: float) -> float:
    if math.isnan(ts):
        return 0.0
    return min(max(ts, _FIRST), _LAST)


def _second(second: int) -> str:
    t = time.gmtime(second)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )


def iso(ts: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC with milliseconds and Z: 2026-11-30T10:02:03.123Z.

    Rounds as `datetime.fromtimestamp` does (to the microsecond, then cut to the millisecond)
    and formats each whole second once: responses carry several times of the same second.
    """
    if ts is None:
        return None
    if not _FIRST <= ts <= _LAST:  # NaN too: only a database from before the bounds
        ts = _clamped(ts)
    fraction, whole = math.modf(ts)
    micros = round(fraction * 1e6)
    second = int(whole)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    elif micros < 0:
        second, micros = second - 1, micros + 1_000_000
    if second > _LAST:
        second, micros = int(_LAST), 999_000
    text = _SECONDS.get(second)
    if text is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        text = _SECONDS[second] = _second(second)
    return f"{text}.{micros // 1000:03d}Z"


def format_time(ts: float) -> str:
    """A time as people on call read it: 2026-11-28 10:02 UTC."""
    t = time.gmtime(math.floor(_clamped(ts)))
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d} {t.tm_hour:02d}:{t.tm_min:02d} UTC"
