"""Cron schedules in a time zone: when runs are expected, in Unix seconds and in words.

cronsim (the parser Healthchecks uses) reads the expression and walks the calendar. It follows
Debian's cron across daylight-saving changes: a time that the spring-forward skips (02:30 in
Europe/Stockholm on the last Sunday of March) is due right after the change (03:00), and a
time that the fall-back repeats is due once, at its first occurrence. Schedules whose minute
or hour is a wildcard (`*/15 * * * *`, `0 * * * *`) run by real elapsed time instead, as cron
does: every 15 minutes through both of the repeated hour.

Expressions and zones are checked at the edge (`check_schedule`, `check_timezone`: the config
and the API), so the rest of the service only sees valid ones. Looking a zone up reads the
time-zone database (the system's, or the `tzdata` package): a pure lookup, never the clock.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, available_timezones

from cronsim import CronSim, CronSimError

from exporter.core.records import MonitorSettings, Run

# The macros of Vixie/Debian cron, as five fields (@reboot has no time: refused).
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS = "minute hour day-of-month month day-of-week"
_SKIPS_MAX = 1000  # answers behind t skipped at most (a fall-back hour holds at most 60)
_WINDOWS_KEPT = 64  # per schedule: cells of its calendar asked about recently
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class ScheduleError(ValueError):
    """An expression or a zone that cannot be used, with the reason in words."""


def cron_fields(expression: str) -> str:
    """The five fields an expression stands for (a macro's expansion, or itself)."""
    text = " ".join(expression.split())
    return MACROS.get(text.lower(), text)


def check_schedule(expression: str) -> str:
    """The expression, whitespace tidied, if cron can use it; else `ScheduleError` saying why."""
    text = " ".join(expression.split())
    if not text:
        raise ScheduleError("is empty; give five fields or a macro such as @daily")
    if text.startswith("@") and text.lower() not in MACROS:
        known = ", ".join(MACROS)
        raise ScheduleError(f"{text!r} is not a known macro; use one of {known}")
    fields = cron_fields(text)
    count = len(fields.split())
    if count != 5:
        raise ScheduleError(f"has {count} field{'s' * (count != 1)}; cron takes five ({FIELDS})")
    try:
        first = next(CronSim(fields, _EPOCH), None)
    except CronSimError as exc:  # "Bad minute": which field, in cronsim's words
        raise ScheduleError(f"{exc.args[0].lower()} field in {text!r}") from None
    if first is None:
        raise ScheduleError(f"{text!r} never comes round (no time matches within 50 years)")
    return text


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def check_timezone(name: str) -> str:
    """The name if it is an IANA time zone (Europe/Stockholm, UTC); else `ScheduleError`."""
    if name not in _zone_names():
        raise ScheduleError(f"{name!r} is not an IANA time zone name such as Europe/Stockholm")
    return name


def zone(name: str) -> tzinfo:
    """The zone by its IANA name; UTC as the datetime module's own, which cronsim takes fast."""
    return UTC if name in ("UTC", "Etc/UTC") else ZoneInfo(name)


class Schedule:
    """A cron expression in a zone. `next_after` remembers the cells of the calendar it was
    asked about, so a pass over many monitors with one schedule walks the calendar once."""

    __slots__ = ("_ends", "_fields", "_starts", "expression", "timezone", "zone")

    def __init__(self, expression: str, timezone: str) -> None:
        self.expression = expression
        self.timezone = timezone
        self.zone = zone(timezone)
        self._fields = cron_fields(expression)
        self._starts: list[float] = []  # windows, sorted and disjoint: next_after(t) is the
        self._ends: list[float] = []  # end of the window that holds t

    def _walk(self, t: float, reverse: bool) -> float | None:
        """The first scheduled time after t (or before it, reverse); None when none comes
        within 50 years, or t lies beyond the years a datetime can say (an old database).

        Around a fall-back cronsim counts on the wall clock: from inside the repeated hour it
        may answer with the hour's first pass, which is behind t. Such answers are skipped.
        """
        if not math.isfinite(t):
            return None
        try:
            found = CronSim(self._fields, datetime.fromtimestamp(t, self.zone), reverse=reverse)
            for _ in range(_SKIPS_MAX):
                at = next(found, None)
                if at is None:
                    return None
                if (at.timestamp() < t) if reverse else (at.timestamp() > t):
                    return at.timestamp()
        except (OverflowError, ValueError, OSError):  # beyond what a datetime can say
            return None
        except CronSimError:  # checked at the edge; only a hand-edited database gets here
            return None
        return None

    def next_after(self, t: float) -> float | None:
        """The first scheduled time strictly after t (Unix seconds)."""
        starts, ends = self._starts, self._ends
        i = bisect.bisect_right(starts, t) - 1
        if i >= 0 and t < ends[i]:
            return ends[i]
        end = self._walk(t, reverse=False)
        if end is None:
            return None
        j = bisect.bisect_left(ends, end)
        if j < len(ends) and ends[j] == end:  # the same cell, asked from earlier in it
            starts[j] = min(starts[j], t)
        else:
            if len(ends) >= _WINDOWS_KEPT:
                starts.clear()
                ends.clear()
                j = 0
            starts.insert(j, t)
            ends.insert(j, end)
        return end

    def latest_before(self, t: float) -> float | None:
        """The last scheduled time strictly before t."""
        return self._walk(t, reverse=True)

    def local(self, ts: float) -> str:
        """A time in the schedule's zone as on-call people read it: `02:00 on 3 Dec`."""
        d = datetime.fromtimestamp(ts, self.zone)
        return f"{d.hour:02d}:{d.minute:02d} on {d.day} {_MONTHS[d.month - 1]}"


@functools.lru_cache(maxsize=16384)
def schedule_of(expression: str, timezone: str) -> Schedule:
    """The one `Schedule` of an expression and zone (monitors that share them share it)."""
    return Schedule(expression, timezone)


@functools.lru_cache(maxsize=16384)
def explain(expression: str) -> str:
    """The expression in words, starting lower-case: `every 15th minute from 08:00 through
    17:59 on Monday through Friday`. The expression itself where words fail."""
    try:
        words = CronSim(cron_fields(expression), _EPOCH).explain()
    except Exception:  # cronsim's explain covers what it parses; never fail a page on words
        return f"cron {expression}"
    return words[:1].lower() + words[1:]


@dataclass(frozen=True, slots=True)
class Expected:
    """The scheduled time that the latest run (or the monitor's creation) has not covered."""

    start: float  # when the run is due
    deadline: float  # start + grace: the monitor is in error once this has passed


def expected_run(
    settings: MonitorSettings, created_at: float, latest: Run | None
) -> Expected | None:
    """The first scheduled time after the latest run's start (or the monitor's creation), and
    the deadline by which a run must have started for it; None without a schedule.

    It moves on only when a run starts, never with the clock: a passed deadline stays passed
    until a run comes, so Prometheus can alert on it without the service's evaluation.
    """
    if not settings.schedule:
        return None
    since = latest.starttime if latest is not None else created_at
    start = schedule_of(settings.schedule, settings.timezone).next_after(since)
    if start is None:
        return None
    return Expected(start, start + settings.grace * 60.0)


def describe(settings: MonitorSettings) -> str | None:
    """The monitor's schedule in words (`at 02:00 every day, Europe/Stockholm`), or None."""
    if not settings.schedule:
        return None
    return f"{explain(settings.schedule)}, {settings.timezone}"
