"""Alert evaluation: pure functions of a monitor, its latest runs, `now` and the severities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.core.records import MonitorSettings, Run
from exporter.core.schedules import expected_run, schedule_of
from exporter.core.statuses import AlertStatus, Severity
from exporter.core.times import format_time

ALERTTEXT_LIMIT = 256
# Why a monitor is in error, as bounded words for labels (integration_monitor_alert_reason).
NO_RECENT_RUN, RUN_TOO_LONG, LAST_RUN_FAILED, BELOW_THRESHOLD = REASON_KINDS = (
    "no_recent_run",
    "run_too_long",
    "last_run_failed",
    "below_threshold",
)


@dataclass(frozen=True, slots=True)
class Evaluation:
    alertstatus: AlertStatus
    alerttext: str
    reasons: tuple[str, ...]
    kinds: frozenset[str] = frozenset()  # of REASON_KINDS
    # Why the status is what it is, in words also for ok ("Last run ok"), where alerttext is
    # empty: the reason of a transition. Derived from the same inputs, so not compared.
    summary: str = field(default="", compare=False)


def format_span(seconds: float) -> str:
    """A span in plain words: 45 s, 60 min, 5 h 10 min, 3 d 4 h."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def severity_of(status: str, severities: Mapping[str, Severity]) -> Severity:
    """Unknown statuses (e.g. a custom one removed from config) count as errors: never hide them."""
    return severities.get(status, "error")


def _staleness(
    settings: MonitorSettings,
    latest: Run | None,
    created_at: float,
    now: float,
    severities: Mapping[str, Severity],
) -> list[tuple[str, str]]:
    running = latest is not None and severity_of(latest.logstatus, severities) == "running"
    out: list[tuple[str, str]] = []
    if settings.schedule:
        missed = _missed(settings, latest, created_at, now)
        if missed:
            out.append((NO_RECENT_RUN, missed))
    elif settings.alert_interval > 0:
        # With max_runtime set, a running batch is judged by it alone (below).
        stale = _interval(settings, latest, created_at, now, running, settings.max_runtime > 0)
        if stale:
            out.append(stale)
    limit = settings.max_runtime * 60
    if running and latest is not None and limit > 0 and now - latest.starttime > limit:
        text = (
            f"Batch still running after {format_span(now - latest.starttime)}, longer than "
            f"max_runtime of {format_span(limit)} (started {format_time(latest.starttime)})"
        )
        out.append((RUN_TOO_LONG, text))
    return out


def _interval(
    settings: MonitorSettings,
    latest: Run | None,
    created_at: float,
    now: float,
    running: bool,
    running_judged_apart: bool,
) -> tuple[str, str] | None:
    """Nothing started within alert_interval, or the latest batch still running past it."""
    interval = settings.alert_interval * 60
    noun = "batch" if settings.type == "batch" else "log"
    if latest is None:
        if now - created_at > interval:
            return NO_RECENT_RUN, (
                f"No {noun} received in the last {format_span(interval)} "
                f"(never reported; monitor created {format_time(created_at)})"
            )
        return None
    age = now - latest.starttime
    if age <= interval:
        return None
    if running:
        if running_judged_apart:  # by max_runtime
            return None
        return RUN_TOO_LONG, (
            f"Batch still running after {format_span(age)}, longer than the interval of "
            f"{format_span(interval)} (started {format_time(latest.starttime)})"
        )
    verb = "started" if settings.type == "batch" else "received"
    return NO_RECENT_RUN, (
        f"No {noun} {verb} in the last {format_span(interval)} "
        f"(last: {format_time(latest.starttime)})"
    )


def _missed(
    settings: MonitorSettings, latest: Run | None, created_at: float, now: float
) -> str | None:
    """The latest scheduled time whose grace has passed has no run started at or after it.

    Only the first scheduled time after the latest start (or the creation) needs checking:
    if its deadline has passed, so has every later one's that is due.
    """
    expected = expected_run(settings, created_at, latest)
    if expected is None or now <= expected.deadline:
        return None
    schedule = schedule_of(settings.schedule, settings.timezone)
    due = schedule.latest_before(now - settings.grace * 60) or expected.start
    if latest is None:
        last = f"never reported; monitor created {schedule.local(created_at)}"
    else:
        last = f"last started {schedule.local(latest.starttime)}"
    return f"No run since the one due at {schedule.local(due)} ({settings.timezone}); {last}"


def _result(
    settings: MonitorSettings, finished: Run | None, severities: Mapping[str, Severity]
) -> str | None:
    if finished is None or severity_of(finished.logstatus, severities) != "error":
        return None
    noun = "batch" if finished.kind == "batch" else "log"
    detail = finished.errormsg or finished.logtext or f"status {finished.logstatus}"
    verb = _ENDED.get(finished.logstatus, "failed")
    return f"Last {noun} {verb} ({finished.logstatus}): {detail}"


# How a run with a status of severity error ended, where "failed" would say too much: a
# donewitherror run did its work, with some errors on the way.
_ENDED = {"donewitherror": "finished with errors"}


def _ok_summary(latest: Run | None, finished: Run | None) -> str:
    """Why a monitor is ok (or not calculated), for the transition into that status."""
    if latest is None:
        return "No run reported yet"
    if finished is None:
        return "A run started; none has finished yet"
    if finished.logstatus == "ok":
        return "Last run ok"
    return f"Last run {finished.logstatus} (counts as ok)"


def _thresholds(settings: MonitorSettings, finished: Run | None) -> list[str]:
    if settings.type != "batch" or finished is None or finished.kind != "batch":
        return []
    checks = (
        ("Created", finished.no_created, settings.alert_no_creates_deceeds),
        ("Updated", finished.no_updated, settings.alert_no_updates_deceeds),
        ("Deleted", finished.no_deleted, settings.alert_no_deletes_deceeds),
    )
    return [
        f"{verb} {count} objects, below threshold {limit}"
        for verb, count, limit in checks
        if limit > 0 and count < limit
    ]


def join_reasons(reasons: tuple[str, ...]) -> str:
    """The reasons as one alerttext of at most 256 characters."""
    text = "; ".join(reasons)
    if len(text) <= ALERTTEXT_LIMIT:
        return text
    return text[: ALERTTEXT_LIMIT - 1] + "…"


def evaluate_monitor(
    settings: MonitorSettings,
    created_at: float,
    latest: Run | None,
    latest_finished: Run | None,
    now: float,
    severities: Mapping[str, Severity],
) -> Evaluation:
    """Decide a monitor's alert status.

    1. Staleness. With a schedule: the latest scheduled time whose grace has passed has no
       run started at or after it (`core.schedules`). With an interval > 0: nothing started
       within it (from the monitor's creation when it never reported), or the latest batch
       still running past it. With max_runtime > 0: the latest batch running longer (a
       running batch is then judged by max_runtime alone, not by the interval).
    2. Result: the latest finished run has a status of severity error.
    3. Thresholds (batch monitors): the latest finished batch's counts below a non-zero limit.
    4. error if any reason holds; else ok if the monitor ever reported; else notcalculated.
    """
    reasons: list[str] = []
    kinds: set[str] = set()
    for kind, reason in _staleness(settings, latest, created_at, now, severities):
        kinds.add(kind)
        reasons.append(reason)
    failed = _result(settings, latest_finished, severities)
    if failed:
        kinds.add(LAST_RUN_FAILED)
        reasons.append(failed)
    below = _thresholds(settings, latest_finished)
    if below:
        kinds.add(BELOW_THRESHOLD)
        reasons.extend(below)
    if reasons:
        status: AlertStatus = "error"
    elif latest is not None:
        status = "ok"
    else:
        status = "notcalculated"
    text = join_reasons(tuple(reasons))
    summary = text or _ok_summary(latest, latest_finished)
    return Evaluation(status, text, tuple(reasons), frozenset(kinds), summary)
