"""Cron schedules (core.schedules) and the evaluation of scheduled monitors (core.evaluation):
pure functions of the settings, the latest run and `now`, across daylight-saving changes."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from exporter.core.errors import InvalidSettings
from exporter.core.evaluation import Evaluation, evaluate_monitor
from exporter.core.records import MonitorSettings, Run
from exporter.core.schedules import (
    Schedule,
    ScheduleError,
    check_schedule,
    check_timezone,
    describe,
    expected_run,
    explain,
)
from exporter.core.statuses import BUILTIN_STATUSES

MIN = 60.0
HOUR = 3600.0
STOCKHOLM = ZoneInfo("Europe/Stockholm")
NEW_YORK = ZoneInfo("America/New_York")


def local(zone: ZoneInfo, *parts: int, fold: int = 0) -> float:
    """Unix seconds of a wall-clock time in a zone (fold=1: the second pass of a repeated
    hour)."""
    return datetime(*parts, tzinfo=zone, fold=fold).timestamp()  # type: ignore[misc]


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


def started(at: float, status: str = "ok", run_id: int = 1) -> Run:
    running = status == "running"
    end = None if running else at + 30
    return Run("batch", run_id, status, at, end, None if running else 30.0, 0, 0, 0, "", "")


def settings(**values: Any) -> MonitorSettings:
    return MonitorSettings(**{"name": "Backup", **values})


def evaluate(
    latest: Run | None, now: float, created_at: float | None = None, **values: Any
) -> Evaluation:
    finished = latest if latest is not None and latest.endtime is not None else None
    created = created_at if created_at is not None else now - 30 * 24 * HOUR
    return evaluate_monitor(settings(**values), created, latest, finished, now, BUILTIN_STATUSES)


def walk(schedule: Schedule, since: float, count: int) -> list[float]:
    out, at = [], since
    for _ in range(count):
        nxt = schedule.next_after(at)
        assert nxt is not None
        out.append(nxt)
        at = nxt
    return out


# --- the expression and the zone, checked at the edge ---------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "0 2 * * *",
        "*/15 8-17 * * MON-FRI",
        "0 0 1 jan,jul *",
        "5 4 * * sun",
        "0-30/10 1,13 1-7 * 1",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@YEARLY",
    ],
)
def test_cron_expressions_that_are_valid(expression: str) -> None:
    assert check_schedule(expression) == expression


def test_whitespace_is_tidied() -> None:
    assert check_schedule("  0  2 *\t* * ") == "0 2 * * *"


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("61 * * * *", "bad minute field in '61 * * * *'"),
        ("0 24 * * *", "bad hour field"),
        ("0 0 32 * *", "bad day-of-month field"),
        ("0 0 30 2 *", "bad day-of-month field"),
        ("0 0 * 13 *", "bad month field"),
        ("0 0 * * funday", "bad day-of-week field"),
        ("*/0 * * * *", "bad minute field"),
        ("* * *", "has 3 fields; cron takes five (minute hour day-of-month month day-of-week)"),
        ("0 0 2 * * *", "has 6 fields"),
        ("@reboot", "'@reboot' is not a known macro; use one of @yearly"),
        ("   ", "is empty"),
        ("* * */20 * 1L", "never comes round"),
    ],
)
def test_invalid_expressions_say_why(expression: str, reason: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(reason)):
        check_schedule(expression)


def test_time_zones_are_iana_names() -> None:
    assert check_timezone("Europe/Stockholm") == "Europe/Stockholm"
    assert check_timezone("UTC") == "UTC"
    for wrong in ("Mars/Olympus_Mons", "europe/stockholm", "", "../../etc/passwd", "CEST+2"):
        with pytest.raises(ScheduleError, match="is not an IANA time zone name"):
            check_timezone(wrong)


def test_schedules_in_words() -> None:
    assert explain("0 2 * * *") == "at 02:00 every day"
    assert explain("@hourly") == "at the start of every hour"
    assert explain("*/15 8-17 * * MON-FRI") == (
        "every 15th minute from 08:00 through 17:59 on Monday through Friday"
    )
    assert describe(settings(schedule="0 2 * * *", timezone="Europe/Stockholm")) == (
        "at 02:00 every day, Europe/Stockholm"
    )
    assert describe(settings(alert_interval=60)) is None


def test_a_schedule_and_an_interval_contradict_each_other() -> None:
    with pytest.raises(InvalidSettings) as raised:
        settings(schedule="0 2 * * *", alert_interval=60)
    assert raised.value.field == "schedule"


# --- the calendar ---------------------------------------------------------------------------


def test_next_after_is_strictly_after() -> None:
    schedule = Schedule("0 2 * * *", "UTC")
    assert schedule.next_after(utc(2026, 12, 3, 1, 59)) == utc(2026, 12, 3, 2, 0)
    assert schedule.next_after(utc(2026, 12, 3, 2, 0)) == utc(2026, 12, 4, 2, 0)
    assert schedule.latest_before(utc(2026, 12, 3, 2, 0)) == utc(2026, 12, 2, 2, 0)
    assert schedule.latest_before(utc(2026, 12, 3, 2, 0, 1)) == utc(2026, 12, 3, 2, 0)


def test_the_zone_sets_the_wall_clock() -> None:
    schedule = Schedule("0 2 * * *", "Europe/Stockholm")
    assert schedule.next_after(utc(2026, 12, 2, 12, 0)) == utc(2026, 12, 3, 1, 0)  # CET
    assert schedule.next_after(utc(2026, 7, 2, 12, 0)) == utc(2026, 7, 3, 0, 0)  # CEST


@pytest.mark.parametrize(
    ("expression", "timezone", "start"),
    [
        ("*/15 8-17 * * MON-FRI", "Europe/Stockholm", (2026, 3, 27)),
        ("30 2 * * *", "Europe/Stockholm", (2026, 10, 23)),
        ("30 1 * * *", "America/New_York", (2026, 10, 30)),
        ("*/30 * * * *", "America/New_York", (2026, 3, 7)),
        ("0 0 L * *", "UTC", (2026, 1, 1)),
    ],
)
def test_remembered_cells_give_the_same_answers(
    expression: str, timezone: str, start: tuple[int, int, int]
) -> None:
    """next_after remembers cells of the calendar; asked again, in any order, across a DST
    change, it must agree with a fresh walk."""
    remembered = Schedule(expression, timezone)
    first = utc(*start)
    span = 60 * 24 * HOUR if expression.startswith("0 0 L") else 4 * 24 * HOUR
    rng = random.Random(13)
    times = sorted(first + rng.uniform(0, span) for _ in range(300))
    for t in times + times[::-1] + rng.sample(times, len(times)):
        fresh = Schedule(expression, timezone)  # remembers nothing yet
        assert remembered.next_after(t) == fresh.next_after(t), t


# Spring forward: 02:00 → 03:00 (Stockholm 29 Mar 2026, New York 8 Mar 2026). Fall back:
# 03:00 → 02:00 in Stockholm (25 Oct 2026), 02:00 → 01:00 in New York (1 Nov 2026).


@pytest.mark.parametrize(("zone", "day"), [(STOCKHOLM, 29), (NEW_YORK, 8)])
def test_spring_forward_0230_is_due_right_after_the_change(zone: ZoneInfo, day: int) -> None:
    schedule = Schedule("30 2 * * *", str(zone))
    times = walk(schedule, local(zone, 2026, 3, day - 1, 12, 0), 2)
    assert times == [local(zone, 2026, 3, day, 3, 0), local(zone, 2026, 3, day + 1, 2, 30)]


@pytest.mark.parametrize(
    ("zone", "month", "day", "hour"), [(STOCKHOLM, 10, 25, 2), (NEW_YORK, 11, 1, 1)]
)
def test_fall_back_the_repeated_time_is_due_once(
    zone: ZoneInfo, month: int, day: int, hour: int
) -> None:
    schedule = Schedule(f"30 {hour} * * *", str(zone))
    first = local(zone, 2026, month, day, hour, 30)  # the first pass of the repeated hour
    times = walk(schedule, first - 12 * HOUR, 2)
    assert times == [first, first + 25 * HOUR]  # the next night's: a day of 25 hours later
    # Asked from inside the second pass of the repeated hour, the next one is tomorrow's.
    inside = local(zone, 2026, month, day, hour, 10, fold=1)
    assert schedule.next_after(inside) == first + 25 * HOUR


def test_fall_back_a_wildcard_hour_follows_real_time() -> None:
    """*/30: both passes of the repeated hour, as cron runs it by elapsed time."""
    schedule = Schedule("*/30 * * * *", "Europe/Stockholm")
    times = walk(schedule, local(STOCKHOLM, 2026, 10, 25, 1, 50), 5)
    assert [t - times[0] for t in times] == [0, 30 * MIN, 60 * MIN, 90 * MIN, 120 * MIN]


# --- the expected run and its deadline ------------------------------------------------------


def test_the_expected_run_follows_the_latest_start_not_the_clock() -> None:
    s = settings(schedule="0 2 * * *", timezone="Europe/Stockholm", grace=10)
    created = utc(2026, 11, 1)
    expected = expected_run(s, created, started(local(STOCKHOLM, 2026, 12, 2, 2, 0, 5)))
    assert expected is not None
    assert expected.start == local(STOCKHOLM, 2026, 12, 3, 2, 0)
    assert expected.deadline == local(STOCKHOLM, 2026, 12, 3, 2, 10)
    never = expected_run(s, local(STOCKHOLM, 2026, 12, 2, 14, 0), None)
    assert never is not None and never.start == local(STOCKHOLM, 2026, 12, 3, 2, 0)
    assert expected_run(settings(alert_interval=60), created, None) is None


def test_times_beyond_the_calendar_expect_nothing_rather_than_fail() -> None:
    """A database from before report times were bounded may hold any float (core.times)."""
    s = settings(schedule="0 2 * * *", timezone="Europe/Stockholm")
    for start in (1e13, -1e13, float("nan"), float("inf"), 253_402_300_000.0):
        assert expected_run(s, 0.0, started(start)) is None
    assert Schedule("0 2 * * *", "UTC").latest_before(-1e13) is None


# --- evaluation ------------------------------------------------------------------------------

NIGHTLY = {"schedule": "0 2 * * *", "timezone": "Europe/Stockholm", "grace": 10}


def test_a_run_at_its_time_is_ok_until_the_next_deadline() -> None:
    run = started(local(STOCKHOLM, 2026, 12, 2, 2, 0, 3))
    assert evaluate(run, local(STOCKHOLM, 2026, 12, 3, 2, 10), **NIGHTLY).alertstatus == "ok"
    missed = evaluate(run, local(STOCKHOLM, 2026, 12, 3, 2, 10, 1), **NIGHTLY)
    assert missed.alertstatus == "error"
    assert missed.kinds == {"no_recent_run"}
    assert missed.alerttext == (
        "No run since the one due at 02:00 on 3 Dec (Europe/Stockholm); last started 02:00 on 2 Dec"
    )


def test_the_text_names_the_latest_missed_run() -> None:
    run = started(local(STOCKHOLM, 2026, 12, 1, 2, 0))
    result = evaluate(run, local(STOCKHOLM, 2026, 12, 4, 9, 0), **NIGHTLY)
    assert result.alerttext.startswith("No run since the one due at 02:00 on 4 Dec")


def test_a_late_run_counts_for_its_time() -> None:
    late = started(local(STOCKHOLM, 2026, 12, 3, 2, 25))  # after the grace
    assert evaluate(late, local(STOCKHOLM, 2026, 12, 3, 9, 0), **NIGHTLY).alertstatus == "ok"


def test_a_run_before_its_time_counts_for_the_previous_one() -> None:
    early = started(local(STOCKHOLM, 2026, 12, 3, 1, 59))
    result = evaluate(early, local(STOCKHOLM, 2026, 12, 3, 2, 11), **NIGHTLY)
    assert result.alertstatus == "error"


def test_never_reported_counts_from_creation() -> None:
    created = local(STOCKHOLM, 2026, 12, 2, 14, 0)
    waiting = evaluate(None, local(STOCKHOLM, 2026, 12, 3, 2, 5), created, **NIGHTLY)
    assert waiting.alertstatus == "notcalculated"
    missed = evaluate(None, local(STOCKHOLM, 2026, 12, 3, 2, 11), created, **NIGHTLY)
    assert missed.alertstatus == "error"
    assert missed.alerttext == (
        "No run since the one due at 02:00 on 3 Dec (Europe/Stockholm); "
        "never reported; monitor created 14:00 on 2 Dec"
    )


def test_office_hours_skip_the_weekend() -> None:
    office = {"schedule": "*/15 8-17 * * MON-FRI", "timezone": "America/New_York", "grace": 5}
    friday_last = started(local(NEW_YORK, 2026, 12, 4, 17, 45))  # a Friday
    monday_early = local(NEW_YORK, 2026, 12, 7, 8, 4)
    assert evaluate(friday_last, monday_early, **office).alertstatus == "ok"
    monday_late = local(NEW_YORK, 2026, 12, 7, 8, 6)
    result = evaluate(friday_last, monday_late, **office)
    assert result.alerttext.startswith(
        "No run since the one due at 08:00 on 7 Dec (America/New_York)"
    )


@pytest.mark.parametrize(
    ("zone", "day", "due"),
    [(STOCKHOLM, (2026, 3, 29), (3, 0)), (NEW_YORK, (2026, 3, 8), (3, 0))],
)
def test_spring_forward_night_expects_the_0230_run_at_0300(
    zone: ZoneInfo, day: tuple[int, int, int], due: tuple[int, int]
) -> None:
    tz = str(zone)
    values = {"schedule": "30 2 * * *", "timezone": tz, "grace": 10}
    yesterday = started(local(zone, day[0], day[1], day[2] - 1, 2, 30))
    # 02:30 does not exist that night; the run is due at 03:00 and late after 03:10.
    assert evaluate(yesterday, local(zone, *day, 3, 10), **values).alertstatus == "ok"
    result = evaluate(yesterday, local(zone, *day, 3, 11), **values)
    assert result.alerttext.startswith(
        f"No run since the one due at {due[0]:02d}:{due[1]:02d} on {day[2]} Mar ({tz})"
    )
    # A run that cron started at 03:00 covers it.
    ran = started(local(zone, *day, 3, 0, 2))
    assert evaluate(ran, local(zone, *day, 12, 0), **values).alertstatus == "ok"


@pytest.mark.parametrize(
    ("zone", "day", "hour"), [(STOCKHOLM, (2026, 10, 25), 2), (NEW_YORK, (2026, 11, 1), 1)]
)
def test_fall_back_night_expects_the_run_once(
    zone: ZoneInfo, day: tuple[int, int, int], hour: int
) -> None:
    """The 02:30 (Stockholm) or 01:30 (New York) job runs at the first pass of the repeated
    hour; the second pass expects nothing, so the one run is enough all night and all day."""
    values = {"schedule": f"30 {hour} * * *", "timezone": str(zone), "grace": 10}
    first_pass = started(local(zone, *day, hour, 30, 5, fold=0))
    second_pass_late = local(zone, *day, hour, 45, fold=1)  # after the second 30 + grace
    assert evaluate(first_pass, second_pass_late, **values).alertstatus == "ok"
    assert evaluate(first_pass, local(zone, *day, 23, 0), **values).alertstatus == "ok"
    # Without the first-pass run, the monitor is in error from 10 minutes after that pass.
    before = started(local(zone, *day, hour, 30) - 24 * HOUR)  # yesterday's, same offset
    assert evaluate(before, local(zone, *day, hour, 39, fold=0), **values).alertstatus == "ok"
    assert evaluate(before, local(zone, *day, hour, 41, fold=0), **values).alertstatus == "error"


# --- max_runtime ----------------------------------------------------------------------------


def test_max_runtime_with_a_schedule() -> None:
    running = started(local(STOCKHOLM, 2026, 12, 3, 2, 0), "running")
    values = {**NIGHTLY, "max_runtime": 120}
    assert evaluate(running, local(STOCKHOLM, 2026, 12, 3, 4, 0), **values).alertstatus == "ok"
    result = evaluate(running, local(STOCKHOLM, 2026, 12, 3, 4, 1), **values)
    assert result.kinds == {"run_too_long"}
    assert result.alerttext == (
        "Batch still running after 2 h 1 min, longer than max_runtime of 2 h "
        "(started 2026-12-03 01:00 UTC)"
    )


def test_max_runtime_with_neither_schedule_nor_interval() -> None:
    running = started(utc(2026, 12, 3, 0, 0), "running")
    result = evaluate(running, utc(2026, 12, 3, 0, 31), max_runtime=30)
    assert result.kinds == {"run_too_long"}


def test_max_runtime_replaces_the_interval_for_running_batches() -> None:
    running = started(utc(2026, 12, 3, 0, 0), "running")
    now = utc(2026, 12, 3, 1, 30)
    # Today's rule: running past the 60-minute interval is an error ...
    assert evaluate(running, now, alert_interval=60).kinds == {"run_too_long"}
    # ... with max_runtime 120 the batch may run for two hours.
    assert evaluate(running, now, alert_interval=60, max_runtime=120).alertstatus == "ok"
    late = evaluate(running, utc(2026, 12, 3, 2, 1), alert_interval=60, max_runtime=120)
    assert late.alerttext.startswith("Batch still running after 2 h 1 min, longer than max_runtime")
    # A finished batch is still judged by the interval.
    done = started(utc(2026, 12, 3, 0, 0))
    assert evaluate(done, now, alert_interval=60, max_runtime=120).kinds == {"no_recent_run"}
