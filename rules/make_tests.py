"""Write integration-monitor.rules.test.yml, the promtool unit tests of the shipped rules.

Run `python rules/make_tests.py` after changing the rules or this file; tests/system/test_rules.py
fails while the written file is out of date. The tests are generated because every alert is
tested in the same seven kinds of test, which only differ in how the input series are bent:

  firing    the condition holds: quiet before, pending within `for:`, then firing
  quiet     a near miss: what another alert owns, an inactive monitor, an unrelated target
  short     the condition holds for less than `for:`: no alert
  gap       every series of the target goes stale for a few minutes (a failed scrape, a
            rollout) while the alert fires: it keeps firing (keep_firing_for), same labels
  restart   the target gets a new instance label (a new pod; counters start again at 0):
            the alert keeps firing with the same labels
  rename    the monitor's name changes (for the service's own alerts, its version): the
            alert's labels do not change, its description names the new name
  replicas  two instances export the same series: one alert, not two

and a few scenarios of several alerts at once (a stale monitor pages once, an integration that
fails every other run does not page, a custom running status, team and severity overrides).
Time starts at the Unix epoch and every series has one sample a minute, so a timestamp series'
value is its time in seconds. Expected annotations are written out in full: promtool compares
them, and they are what a person reads in the notification.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "integration-monitor.rules.test.yml"
JOB = "integration-monitor"
A = "im-a:8080"
B = "im-b:8080"
KEY = "crm"
NAME = "CRM sync"
NEW_NAME = "CRM sync (EU)"
LENGTH = 70  # minutes of input, one sample a minute
STALE = "stale"
DOCS = "https://github.com/integration-monitor/integration-monitor/blob/main/docs/alerting.md"

Value = float | str | None  # a number, STALE, or None for no sample
Values = list[Value]


# --- values ----------------------------------------------------------------------------------


def const(value: float, start: int = 0, end: int = LENGTH) -> Values:
    """`value` from minute `start` until `end`; a stale marker at `end`; nothing otherwise."""
    return [None] * start + [value] * (end - start) + ([STALE] if end < LENGTH else [])


def ramp(per_minute: float, start: int = 0, end: int = LENGTH, first: float = 0) -> Values:
    """A counter: `first` at minute `start`, growing by `per_minute`, flat after `end`."""
    return [
        None if t < start else first + per_minute * (min(t, end) - start) for t in range(LENGTH)
    ]


def steps(points: Sequence[tuple[int, float]]) -> Values:
    """A gauge that takes each (minute, value) from its minute on; nothing before the first."""
    values: Values = [None] * LENGTH
    for t in range(LENGTH):
        for start, value in points:
            if t >= start:
                values[t] = value
    return values


def encode(values: Values) -> str:
    """promtool's expanding notation: runs of equal numbers as `vxN`, of gaps as `_xN`."""
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i] and values[i] != STALE:
            j += 1
        run, value = j - i + 1, values[i]
        if value is None:
            parts.append("_" if run == 1 else f"_x{run}")
        elif value == STALE:
            parts.append(STALE)
        else:
            number = f"{value:g}"
            parts.append(number if run == 1 else f"{number}x{run - 1}")
        i = j + 1
    return " ".join(parts)


# --- series ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    metric: str
    labels: dict[str, str]
    values: Values
    counter: bool = False

    def on(self, instance: str) -> Series:
        return replace(self, labels={**self.labels, "instance": instance})

    def text(self) -> str:
        labels = ",".join(f'{k}="{v}"' for k, v in self.labels.items())
        return f"{self.metric}{{{labels}}}"


def target(instance: str = A, job: str = JOB, **extra: str) -> dict[str, str]:
    return {"job": job, "instance": instance, **extra}


def monitor(key: str = KEY, instance: str = A, **extra: str) -> dict[str, str]:
    return {**target(instance), "integration_key": key, **extra}


def info(
    key: str = KEY,
    name: str = NAME,
    active: str = "true",
    kind: str = "batch",
    values: Values | None = None,
    **extra: str,
) -> Series:
    labels = monitor(key, name=name, type=kind, active=active, **extra)
    return Series("integration_monitor_info", labels, values or const(1))


def gauge(metric: str, values: Values, key: str = KEY, **extra: str) -> Series:
    return Series(f"integration_monitor_{metric}", monitor(key, **extra), values)


# --- expected alerts -------------------------------------------------------------------------


def humanize_duration(seconds: float) -> str:
    """Prometheus' humanizeDuration for durations of a second or more."""
    whole = int(seconds)
    days, hours = whole // 86400, whole // 3600 % 24
    minutes, secs = whole // 60 % 60, whole % 60
    if days:
        return f"{days}d {hours}h {minutes}m {secs}s"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{seconds:.4g}s"


def monitor_links(alert: str, key: str = KEY, url: str = "") -> dict[str, str]:
    return {
        "link": f"{url.rstrip('/')}/monitors/{key}",
        "dashboard_url": (
            f"/d/integration-monitor-monitor?var-job={JOB}&var-integration_key={key}"
        ),
        "runbook_url": f"{DOCS}#{alert.lower()}",
    }


def service_links(alert: str, page: str) -> dict[str, str]:
    return {
        "link": f"/{page}",
        "dashboard_url": f"/d/integration-monitor-overview?var-job={JOB}",
        "runbook_url": f"{DOCS}#{alert.lower()}",
    }


Describe = Callable[[str, float, tuple[str, ...]], str]  # (name, value, instances) -> text


@dataclass(frozen=True)
class Alert:
    """One alerting rule and the monitor (or service) that makes it fire in the tests."""

    name: str
    severity: str
    summary: str
    describe: Describe
    fire: Callable[[], list[Series]]  # the firing series, on instance A
    onset: int  # first minute the condition holds
    for_minutes: int
    value: Callable[[int], float]  # the alert's value at a minute while it holds
    quiet: Callable[[], list[Series]]
    short: Callable[[], list[Series]]
    per_monitor: bool = True
    link_page: str = ""  # service alerts: the Prometheus page of `link`
    replica_scale: float = 1.0  # the value with two replicas, relative to one
    gap_value: float | None = None  # a rate over a window with a gap: its value there

    @property
    def fired(self) -> int:
        return self.onset + self.for_minutes

    def expect(
        self,
        at: int,
        name: str = NAME,
        value_at: int | None = None,
        instances: tuple[str, ...] = (A,),
        scale: float = 1.0,
        value: float | None = None,
    ) -> dict[str, Any]:
        if value is None:
            value = self.value(at if value_at is None else value_at) * scale
        labels = {"severity": self.severity, "job": JOB}
        if self.per_monitor:
            labels["integration_key"] = KEY
            links = monitor_links(self.name)
        else:
            links = service_links(self.name, self.link_page)
        description = self.describe(name, value, instances)
        annotations = {"summary": self.summary, "description": description, **links}
        return {"exp_labels": labels, "exp_annotations": annotations}


def case(alert: str, at: int, *expected: dict[str, Any]) -> dict[str, Any]:
    return {"eval_time": f"{at}m", "alertname": alert, "exp_alerts": list(expected)}


def quiet_cases(alert: str) -> list[dict[str, Any]]:
    return [case(alert, t) for t in range(0, LENGTH, 2)]


def test(name: str, series: list[Series], cases: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "interval": "1m",
        "input_series": [{"series": s.text(), "values": encode(s.values)} for s in series],
        "alert_rule_test": cases,
    }


# --- the bends of the seven kinds ------------------------------------------------------------


def gap(series: list[Series], start: int, minutes: int) -> list[Series]:
    """Every series goes stale at `start` and has no sample for `minutes`, then resumes."""
    bent = []
    for s in series:
        values = list(s.values)
        if values[start] is not None:
            values[start] = STALE
            for t in range(start + 1, start + minutes):
                values[t] = None
        bent.append(replace(s, values=values))
    return bent


def restart(series: list[Series], at: int) -> list[Series]:
    """Instance A until `at`, then instance B: a new pod. Counters start again at 0 there."""
    bent = []
    for s in series:
        if s.labels.get("instance") != A:
            bent.append(s)
            continue
        before = [*s.values[:at], STALE if s.values[at] is not None else None]
        before += [None] * (LENGTH - len(before))
        after: Values = [None] * at + list(s.values[at:])
        first = s.values[at]
        if s.counter and isinstance(first, int | float):
            after = [v - first if isinstance(v, int | float) else v for v in after]
        bent += [replace(s, values=before), replace(s, values=after).on(B)]
    return bent


RENAMED = {
    "integration_monitor_info": ("name", NEW_NAME),
    "integration_monitor_build_info": ("version", "2.0.0"),
}


def rename(series: list[Series], at: int) -> list[Series]:
    """The monitor's name (for the service: its version) changes at `at`."""
    bent = []
    for s in series:
        if s.metric not in RENAMED:
            bent.append(s)
            continue
        label, new = RENAMED[s.metric]
        before = [*s.values[:at], STALE, *[None] * (LENGTH - at - 1)]
        after = [None] * at + list(s.values[at:])
        bent += [
            replace(s, values=before),
            replace(s, labels={**s.labels, label: new}, values=after),
        ]
    return bent


def replicas(series: list[Series]) -> list[Series]:
    return [*series, *(s.on(B) for s in series if s.labels.get("instance") == A)]


def kinds(alert: Alert) -> list[dict[str, Any]]:
    """The seven tests of an alert (ExporterAbsent has its own: absent_kinds)."""
    name, fired, onset = alert.name, alert.fired, alert.onset
    pending = [case(name, t) for t in sorted({onset - 1, onset, fired - 1}) if t >= 0]
    bend = fired + 2
    return [
        test(
            f"{name} firing: quiet before, pending for {alert.for_minutes}m, then firing",
            alert.fire(),
            [
                *pending,
                case(name, fired, alert.expect(fired)),
                case(name, fired + 5, alert.expect(fired + 5)),
            ],
        ),
        test(f"{name} quiet: near misses do not fire", alert.quiet(), quiet_cases(name)),
        test(
            f"{name} short: the condition holds for less than for: {alert.for_minutes}m",
            alert.short(),
            quiet_cases(name),
        ),
        test(
            f"{name} gap: every series stale for 4m while firing, the alert stays",
            gap(alert.fire(), bend, 4),
            [
                case(name, bend - 1, alert.expect(bend - 1)),
                # Kept by keep_firing_for, with the annotations of its last evaluation.
                # (A rate still sees the samples before the gap: its value is re-computed.)
                case(
                    name, bend + 2, alert.expect(bend + 2, value_at=bend - 1, value=alert.gap_value)
                ),
                case(name, bend + 8, alert.expect(bend + 8)),
            ],
        ),
        test(
            f"{name} restart: a new instance label, the alert and its labels stay",
            restart(alert.fire(), bend),
            [
                case(name, bend - 1, alert.expect(bend - 1)),
                case(name, bend + 6, alert.expect(bend + 6, instances=(B,))),
            ],
        ),
        test(
            f"{name} rename: the labels stay, the description follows the new name",
            rename(alert.fire(), bend),
            [
                case(name, bend - 1, alert.expect(bend - 1)),
                case(name, bend + 1, alert.expect(bend + 1, name=NEW_NAME)),
            ],
        ),
        test(
            f"{name} replicas: two instances with the same series make one alert",
            replicas(alert.fire()),
            [
                case(name, t, alert.expect(t, instances=(A, B), scale=alert.replica_scale))
                for t in (fired, fired + 5)
            ],
        ),
    ]


# --- the alerts ------------------------------------------------------------------------------

INTERVAL = 600.0  # the monitors' alert interval in the tests: 10m


def every(minutes: int, until: int = LENGTH) -> Values:
    """A run start every `minutes`: the start timestamp of the latest one."""
    return steps([(t, t * 60.0) for t in range(0, until, minutes)])


def error_description(name: str, value: float, instances: tuple[str, ...]) -> str:
    return (
        f'Integration monitor "{name}" ({KEY}) is in error (last run failed). The service\'s'
        " alert text and the run's error message are on the status page."
    )


ERROR = Alert(
    name="IntegrationMonitorError",
    severity="warning",
    summary="The latest run of an integration failed or processed too few objects.",
    describe=error_description,
    fire=lambda: [
        info(),
        gauge("alert_reason", const(1, 5), reason="last_run_failed"),
        gauge("last_run_info", const(1), status="error", result="error"),
    ],
    onset=5,
    for_minutes=1,
    value=lambda t: 1,
    quiet=lambda: [
        # Stale, not failed: NoRecentRun's cause, not this alert's.
        info(),
        gauge("alert_reason", const(1, 5), reason="no_recent_run"),
        gauge("alert_status", const(1), status="error"),
        # Failed, but inactive.
        info("old", active="false"),
        gauge("alert_reason", const(1), key="old", reason="last_run_failed"),
    ],
    short=lambda: [info(), gauge("alert_reason", const(1, 5, 6), reason="last_run_failed")],
)


def no_success_description(name: str, value: float, instances: tuple[str, ...]) -> str:
    return (
        f'Integration monitor "{name}" ({KEY}) has had no successful run for'
        f" {humanize_duration(value)}, more than three times its alert interval of 10m 0s."
        " Its runs start but fail (or never finish); the latest errors are on the status page."
    )


def failing_runs(success: Values) -> list[Series]:
    return [
        info(),
        gauge("alert_interval_seconds", const(INTERVAL)),
        gauge("last_run_start_timestamp_seconds", every(10)),
        gauge("last_success_timestamp_seconds", success),
        gauge("last_run_info", const(1), status="error", result="error"),
    ]


NO_SUCCESS = Alert(
    name="IntegrationMonitorNoSuccess",
    severity="critical",
    summary="An integration has had no successful run for three alert intervals.",
    describe=no_success_description,
    fire=lambda: failing_runs(const(0)),
    onset=31,
    for_minutes=5,
    value=lambda t: t * 60.0,
    quiet=lambda: [
        # Stale: no run at all since 0, NoRecentRun's cause.
        info(),
        gauge("alert_interval_seconds", const(INTERVAL)),
        gauge("last_run_start_timestamp_seconds", const(0)),
        gauge("last_success_timestamp_seconds", const(0)),
        gauge("last_run_info", const(1), status="ok", result="ok"),
        # Failing, but inactive.
        info("old", active="false"),
        gauge("alert_interval_seconds", const(INTERVAL), key="old"),
        gauge("last_run_start_timestamp_seconds", every(10), key="old"),
        gauge("last_success_timestamp_seconds", const(0), key="old"),
    ],
    short=lambda: failing_runs(steps([(0, 0), (33, 33 * 60)])),
)


def no_recent_run_description(name: str, value: float, instances: tuple[str, ...]) -> str:
    return (
        f'No run of integration monitor "{name}" ({KEY}) has started for'
        f" {humanize_duration(value)} (since its creation if it never reported), longer than"
        " its alert interval of 10m 0s. The job may not be scheduled, may fail before it"
        " reports, or may not reach the service."
    )


def stale(start: Values, result: str = "ok", **extra: str) -> list[Series]:
    return [
        info(),
        gauge("alert_interval_seconds", const(INTERVAL)),
        gauge("last_run_start_timestamp_seconds", start),
        gauge("last_success_timestamp_seconds", const(0)),
        gauge("last_run_info", const(1), status=result, result=result),
    ]


NO_RECENT_RUN = Alert(
    name="IntegrationMonitorNoRecentRun",
    severity="critical",
    summary="An integration has not started a run within its alert interval.",
    describe=no_recent_run_description,
    fire=lambda: stale(const(0)),
    onset=11,
    for_minutes=5,
    value=lambda t: t * 60.0,
    quiet=lambda: [
        # Still running with a max_runtime: RunTooLong's cause.
        *stale(const(0), result="running"),
        gauge("max_runtime_seconds", const(3600)),
        # A scheduled monitor has no alert interval.
        info("nightly"),
        gauge("last_run_start_timestamp_seconds", const(0), key="nightly"),
        # Stale, but inactive.
        info("old", active="false"),
        gauge("alert_interval_seconds", const(INTERVAL), key="old"),
        gauge("last_run_start_timestamp_seconds", const(0), key="old"),
    ],
    short=lambda: stale(steps([(0, 0), *((t, t * 60.0) for t in range(13, LENGTH, 10))])),
)


def missed_run_description(name: str, value: float, instances: tuple[str, ...]) -> str:
    return (
        f'No run of integration monitor "{name}" ({KEY}) has started for the time it was due'
        f" (at 02:00 every day); the grace ran out {humanize_duration(value)} ago. The job may"
        " not be scheduled on its host, may fail before it reports, or may not reach the"
        " service."
    )


def scheduled(deadline: Values, key: str = KEY, active: str = "true") -> list[Series]:
    return [
        info(key, active=active),
        gauge(
            "schedule_info",
            const(1),
            key=key,
            schedule="0 2 * * *",
            summary="at 02:00 every day",
            timezone="Europe/Stockholm",
        ),
        gauge("start_deadline_timestamp_seconds", deadline, key=key),
    ]


MISSED_RUN = Alert(
    name="IntegrationMonitorMissedRun",
    severity="critical",
    summary="A scheduled integration run has not started by its deadline.",
    describe=missed_run_description,
    fire=lambda: scheduled(const(600)),
    onset=11,
    for_minutes=2,
    value=lambda t: t * 60.0 - 600,
    quiet=lambda: [
        *scheduled(const(LENGTH * 60 + 600)),
        *scheduled(const(600), key="old", active="false"),
    ],
    short=lambda: scheduled(steps([(0, 600), (12, 4200)])),
)


def run_too_long_description(name: str, value: float, instances: tuple[str, ...]) -> str:
    return (
        f'The latest run of integration monitor "{name}" ({KEY}) started'
        f" {humanize_duration(value)} ago and is still running, longer than its max_runtime of"
        " 10m 0s. The job may hang, may have died without reporting the end of the run, or may"
        " be much slower than usual."
    )


def running(info_values: Values, max_runtime: Values | None = None) -> list[Series]:
    """A batch in the custom status `queued`, which counts as running."""
    series = [
        info(),
        gauge("alert_interval_seconds", const(3600)),
        gauge("last_run_start_timestamp_seconds", const(0)),
        gauge("last_run_info", info_values, status="queued", result="running"),
    ]
    if max_runtime is not None:
        series.append(gauge("max_runtime_seconds", max_runtime))
    return series


RUN_TOO_LONG = Alert(
    name="IntegrationMonitorRunTooLong",
    severity="warning",
    summary="An integration run has been running longer than its max_runtime.",
    describe=run_too_long_description,
    fire=lambda: running(const(1), const(600)),
    onset=11,
    for_minutes=5,
    value=lambda t: t * 60.0,
    quiet=lambda: [
        # Running for long, but without a max_runtime (the alert interval is not the limit).
        *running(const(1)),
        # Over max_runtime, but finished.
        info("done"),
        gauge("max_runtime_seconds", const(600), key="done"),
        gauge("last_run_start_timestamp_seconds", const(0), key="done"),
        gauge("last_run_info", const(1), key="done", status="ok", result="ok"),
    ],
    short=lambda: [
        *running(const(1, 0, 13), const(600)),
        gauge("last_run_info", const(1, 13), status="ok", result="ok"),
    ],
)


def build_info(version: str = "1.0.0", instance: str = A) -> Series:
    return Series("integration_monitor_build_info", target(instance, version=version), const(1))


def exporter_down_description(name: str, value: float, instances: tuple[str, ...]) -> str:
    return (
        f"Prometheus has failed to scrape {value:g} target(s) of job {JOB}"
        f" ({', '.join(instances)}) for at least 5 minutes. The service is down, unreachable,"
        " or refuses the scrape (check the read token in the scrape config). Monitor alerts"
        " cannot fire for what only those targets export."
    )


EXPORTER_DOWN = Alert(
    name="IntegrationMonitorExporterDown",
    severity="critical",
    summary="Prometheus cannot scrape integration-monitor.",
    describe=exporter_down_description,
    fire=lambda: [Series("up", target(), steps([(0, 1), (5, 0)])), build_info()],
    onset=5,
    for_minutes=5,
    value=lambda t: 1,
    quiet=lambda: [
        Series("up", target(), const(1)),
        Series("up", target(job="other"), const(0)),
    ],
    short=lambda: [Series("up", target(), steps([(0, 1), (5, 0), (8, 1)]))],
    per_monitor=False,
    link_page="targets",
    replica_scale=2,
)

EVALUATION_FOOTER = (
    " Alert statuses on /metrics and the status page are out of date;"
    " IntegrationMonitorError may miss a failed run, while IntegrationMonitorNoRecentRun,"
    " NoSuccess and MissedRun still work. Check the service's log."
)


def stalled_description(name: str, value: float, instances: tuple[str, ...]) -> str:
    return (
        f"No integration-monitor of job {JOB} has finished an evaluation pass for"
        f" {humanize_duration(value)}, more than three times the evaluation interval of 1m 0s."
        + EVALUATION_FOOTER
    )


def evaluating(last: Values) -> list[Series]:
    return [
        Series("integration_monitor_evaluation_interval_seconds", target(), const(60)),
        Series("integration_monitor_evaluation_last_timestamp_seconds", target(), last),
        Series("process_start_time_seconds", target(), const(0)),
        build_info(),
    ]


EVALUATION_STALLED = Alert(
    name="IntegrationMonitorEvaluationStalled",
    severity="warning",
    summary="integration-monitor has stopped evaluating its monitors.",
    describe=stalled_description,
    fire=lambda: evaluating(const(60)),
    onset=5,
    for_minutes=5,
    value=lambda t: t * 60.0 - 60,
    quiet=lambda: evaluating(ramp(60, first=60)),
    short=lambda: evaluating(steps([(0, 60), *((t, t * 60.0) for t in range(7, LENGTH))])),
    per_monitor=False,
    link_page="alerts",
)


def errors_description(name: str, value: float, instances: tuple[str, ...]) -> str:
    return (
        f"integration-monitor of job {JOB} counted {value:.0f} failed monitor evaluation(s)"
        " in the last 5 minutes, and has for 15 minutes. Those monitors keep an old alert"
        " status. The service's log names the monitor and the error."
    )


def errors(values: Values) -> list[Series]:
    metric = "integration_monitor_evaluation_errors_total"
    return [Series(metric, target(), values, counter=True), build_info()]


EVALUATION_ERRORS = Alert(
    name="IntegrationMonitorEvaluationErrors",
    severity="warning",
    summary="integration-monitor fails to evaluate some monitors.",
    describe=errors_description,
    fire=lambda: errors([max(0.0, t - 5.0) for t in range(LENGTH)]),
    onset=6,
    for_minutes=15,
    value=lambda t: 5,
    # Samples at 20-22 in the window 20-25: 2 errors, extrapolated by half a minute: 2.5.
    gap_value=2.5,
    quiet=lambda: errors(const(3)),
    short=lambda: errors([min(max(0.0, t - 5.0), 3.0) for t in range(LENGTH)]),
    per_monitor=False,
    link_page="alerts",
    replica_scale=2,
)


def rejected_description(name: str, value: float, instances: tuple[str, ...]) -> str:
    return (
        f"{value * 100:.4g}% of the reports received by job {JOB} in the last 5 minutes were"
        " rejected. Jobs may use a wrong token, an unknown monitor key or status, or send"
        " invalid bodies; their runs are not recorded. The service's log and the jobs' own"
        " logs show the error answers."
    )


def reports(stored: Values, rejected: Values) -> list[Series]:
    metric = "integration_monitor_reports_received_total"
    return [
        Series(metric, target(kind="batch", outcome="stored"), stored, counter=True),
        Series(metric, target(kind="batch", outcome="rejected"), rejected, counter=True),
        build_info(),
    ]


REPORTS_REJECTED = Alert(
    name="IntegrationMonitorReportsRejected",
    severity="warning",
    summary="integration-monitor rejects a high share of the reports it receives.",
    describe=rejected_description,
    fire=lambda: reports(ramp(10), [max(0.0, 5.0 * (t - 5)) for t in range(LENGTH)]),
    onset=7,
    for_minutes=15,
    value=lambda t: 1 / 3,
    quiet=lambda: reports(ramp(49), ramp(1)),
    short=lambda: reports(ramp(10), [min(max(0.0, 5.0 * (t - 5)), 20.0) for t in range(LENGTH)]),
    per_monitor=False,
    link_page="alerts",
)


def crash_description(name: str, value: float, instances: tuple[str, ...]) -> str:
    return (
        f"A target of job {JOB} restarted {value:g} times in the last 30 minutes. Reports sent"
        " while it is down are refused and its alert evaluation restarts each time. Check its"
        " log for the reason it exits (configuration, database, memory)."
    )


def starts(points: Sequence[tuple[int, float]]) -> list[Series]:
    return [Series("process_start_time_seconds", target(), steps(points)), build_info()]


CRASH_LOOPING = Alert(
    name="IntegrationMonitorCrashLooping",
    severity="critical",
    summary="integration-monitor keeps restarting.",
    describe=crash_description,
    fire=lambda: starts([(0, 0), (5, 300), (10, 600), (15, 900)]),
    onset=15,
    for_minutes=5,
    value=lambda t: 3,
    quiet=lambda: [
        # One restart (a deploy), then a rollout to a new pod: not a loop.
        Series(
            "process_start_time_seconds",
            target(),
            [*steps([(0, 0), (5, 300)])[:20], STALE, *[None] * (LENGTH - 21)],
        ),
        Series("process_start_time_seconds", target(B), const(1200, 20)),
    ],
    short=lambda: starts([(0, 0), (2, 120), (20, 1200), (30, 1800)]),
    per_monitor=False,
    link_page="targets",
)


# --- ExporterAbsent: its condition is the absence of series, so its kinds are its own --------

ABSENT_NAME = "IntegrationMonitorExporterAbsent"


def absent_expected() -> dict[str, Any]:
    return {
        "exp_labels": {"severity": "critical"},
        "exp_annotations": {
            "summary": "Prometheus has no integration-monitor scrape target.",
            "description": (
                'Prometheus has had no scrape target with a job name starting with "integration-'
                'monitor" for 15 minutes: the service is not discovered, or its scrape job was'
                " removed or renamed. No other IntegrationMonitor alert can fire."
            ),
            "link": "/targets",
            "dashboard_url": "/d/integration-monitor-overview?var-job=",
            "runbook_url": f"{DOCS}#{ABSENT_NAME.lower()}",
        },
    }


def up(values: Values, instance: str = A, job: str = JOB) -> Series:
    return Series("up", target(instance, job), values)


def absent_kinds() -> list[dict[str, Any]]:
    name, fired = ABSENT_NAME, 25
    firing = [case(name, t, absent_expected()) for t in (fired, fired + 10)]
    return [
        test(
            f"{name} firing: quiet before, pending for 15m, then firing",
            [up(const(1, 0, 10))],
            [*(case(name, t) for t in (9, 10, 24)), *firing],
        ),
        test(f"{name} quiet: near misses do not fire", [up(const(1))], quiet_cases(name)),
        test(
            f"{name} short: the condition holds for less than for: 15m",
            [up([*const(1, 0, 10)[:20], *const(1, 20)[20:]])],
            quiet_cases(name),
        ),
        test(
            f"{name} gap: a stale gap of 6m in the scrape does not fire",
            gap([up(const(1))], 10, 6),
            quiet_cases(name),
        ),
        test(
            f"{name} restart: a new instance replaces the old one, nothing fires",
            [up(const(1, 0, 10)), up(const(1, 10), instance=B)],
            quiet_cases(name),
        ),
        test(
            f"{name} rename: a scrape job renamed away from integration-monitor fires",
            [up(const(1, 0, 10)), up(const(1, 10), job="crm-exporter")],
            [*(case(name, t) for t in (9, 24)), *firing],
        ),
        test(
            f"{name} replicas: one replica removed is quiet, both removed make one alert",
            [up(const(1, 0, 40)), up(const(1, 0, 10), instance=B)],
            [*(case(name, t) for t in (30, 54)), case(name, 55, absent_expected())],
        ),
    ]


# --- scenarios of several alerts at once -----------------------------------------------------

PER_MONITOR = (ERROR, NO_SUCCESS, NO_RECENT_RUN, MISSED_RUN, RUN_TOO_LONG)


def only(at: int, firing: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """At minute `at`, exactly the alerts in `firing` (name -> expected), none of the others."""
    return [case(a.name, at, *([firing[a.name]] if a.name in firing else [])) for a in PER_MONITOR]


def alternating() -> list[Series]:
    """Runs every 10m that fail and succeed in turn: ok at 0, error at 10, ok at 20, ..."""
    ok_blocks = [t // 10 % 2 == 0 for t in range(LENGTH)]

    def block(want_ok: bool) -> Values:
        values: Values = []
        for t, is_ok in enumerate(ok_blocks):
            if is_ok == want_ok:
                values.append(1)
            elif t and ok_blocks[t - 1] == want_ok:
                values.append(STALE)
            else:
                values.append(None)
        return values

    return [
        info(),
        gauge("alert_interval_seconds", const(INTERVAL)),
        gauge("last_run_start_timestamp_seconds", every(10)),
        gauge("last_success_timestamp_seconds", every(20)),
        gauge("last_run_info", block(True), status="ok", result="ok"),
        gauge("last_run_info", block(False), status="error", result="error"),
        gauge("alert_reason", block(False), reason="last_run_failed"),
    ]


def never_reported(**extra: str) -> list[Series]:
    url = {"integration_monitor_url": "https://im.example.com/"}
    return [
        Series(
            "integration_monitor_info",
            monitor("new", name="New feed", type="message", active="true", **url, **extra),
            const(1),
        ),
        gauge("alert_interval_seconds", const(INTERVAL), key="new", **url),
        gauge("created_timestamp_seconds", const(0), key="new", **url),
    ]


def scenarios() -> list[dict[str, Any]]:
    stale_and_failed = [
        *stale(const(0), result="error"),
        gauge("alert_reason", const(1), reason="last_run_failed"),
        gauge("alert_reason", const(1, 11), reason="no_recent_run"),
    ]
    stale_page = {
        ERROR.name: ERROR.expect(0),
        NO_RECENT_RUN.name: NO_RECENT_RUN.expect(0),
    }
    new_feed = NO_RECENT_RUN.expect(30)
    new_feed["exp_labels"].update(integration_key="new", severity="warning", team="feeds")
    new_feed["exp_annotations"].update(
        description=no_recent_run_description("New feed", 30 * 60, (A,)).replace(
            f"({KEY})", "(new)"
        ),
        **monitor_links(NO_RECENT_RUN.name, "new", "https://im.example.com"),
    )
    custom_running = running(const(1), const(600))
    custom_running[1] = gauge("alert_interval_seconds", const(300))
    return [
        test(
            "scenario: a stale monitor whose last run failed pages once (NoRecentRun only)",
            stale_and_failed,
            [
                case(NO_SUCCESS.name, 16),
                *(
                    c
                    for t in (20, 40, 60)
                    for c in only(
                        t,
                        {
                            **stale_page,
                            NO_RECENT_RUN.name: NO_RECENT_RUN.expect(t),
                        },
                    )
                ),
            ],
        ),
        test(
            "scenario: an integration that fails every other run does not page",
            alternating(),
            [
                *(case(a.name, t) for t in range(0, LENGTH, 3) for a in PER_MONITOR[1:]),
                # A single failed run is a warning, kept between failures instead of flapping.
                *(case(ERROR.name, t, ERROR.expect(t)) for t in (25, 45, 65)),
            ],
        ),
        test(
            "scenario: a custom running status (queued) is running: RunTooLong, not stale",
            custom_running,
            [
                *only(16, {RUN_TOO_LONG.name: RUN_TOO_LONG.expect(16)}),
                *only(40, {RUN_TOO_LONG.name: RUN_TOO_LONG.expect(40)}),
            ],
        ),
        test(
            "scenario: a monitor that runs but has never succeeded pages from its creation",
            [
                info(),
                gauge("alert_interval_seconds", const(INTERVAL)),
                gauge("created_timestamp_seconds", const(0)),  # exported until a success
                gauge("last_run_start_timestamp_seconds", every(10)),
                gauge("last_run_info", const(1), status="error", result="error"),
            ],
            [*only(20, {}), *only(40, {NO_SUCCESS.name: NO_SUCCESS.expect(40)})],
        ),
        test(
            "scenario: a never-reported monitor is stale from its creation; team, severity"
            " override and the target's service URL",
            never_reported(team="feeds", severity="warning"),
            [*only(15, {}), *only(30, {NO_RECENT_RUN.name: new_feed})],
        ),
    ]


def quantile_of(q: float, values: Sequence[float] = (10, 20, 30, 40)) -> float:
    """PromQL's quantile: linear between the two closest ranks, in its float arithmetic."""
    rank = q * (len(values) - 1)
    lower = math.floor(rank)
    weight = rank - lower
    return values[lower] * (1 - weight) + values[lower + 1] * weight


def recording_test() -> dict[str, Any]:
    """The recording rules: quantiles over active batch monitors, counts across replicas."""
    series = []
    for instance in (A, B):
        for key, seconds in (("a", 10), ("b", 20), ("c", 30), ("d", 40), ("e", 50)):
            labels = monitor(key, instance)
            active = "false" if key == "e" else "true"
            series.append(info(key, active=active).on(instance))
            series.append(
                Series("integration_monitor_last_run_duration_seconds", labels, const(seconds))
            )
        for status, count in (("ok", 3), ("error", 1), ("notcalculated", 0)):
            labels = target(instance, status=status)
            series.append(Series("integration_monitor_monitors", labels, const(count)))
    quantile = "job:integration_monitor_last_run_duration_seconds:quantile"
    counts = "job:integration_monitor_monitors:max"
    return {
        "name": "recording rules: duration quantiles of active monitors, counts of one replica",
        "interval": "1m",
        "input_series": [{"series": s.text(), "values": encode(s.values)} for s in series],
        "promql_expr_test": [
            {
                "expr": quantile,
                "eval_time": "2m",
                "exp_samples": [
                    {"labels": f'{quantile}{{job="{JOB}",quantile="{q}"}}', "value": v}
                    for q, v in (("0.5", 25), ("0.9", 37), ("0.99", quantile_of(0.99)))
                ],
            },
            {
                "expr": counts,
                "eval_time": "2m",
                "exp_samples": [
                    {
                        "labels": f'{counts}{{job="{JOB}",status="{s}"}}',
                        "value": v,
                    }
                    for s, v in (("error", 1), ("notcalculated", 0), ("ok", 3))
                ],
            },
        ],
    }


ALERTS = (
    *PER_MONITOR,
    EXPORTER_DOWN,
    EVALUATION_STALLED,
    EVALUATION_ERRORS,
    REPORTS_REJECTED,
    CRASH_LOOPING,
)

HEADER = """\
# GENERATED by make_tests.py from its alert definitions: edit that, then run
#   python rules/make_tests.py
# Unit tests of integration-monitor.rules.yml: promtool test rules rules/*.test.yml
# Every alert has the seven kinds of test (firing, quiet, short, gap, restart, rename,
# replicas), named "<alert> <kind>: ...", then scenarios and the recording rules.
"""


def document() -> str:
    tests = [t for alert in ALERTS for t in kinds(alert)]
    tests += absent_kinds()
    tests += scenarios()
    tests.append(recording_test())
    body = {
        "rule_files": ["integration-monitor.rules.yml"],
        "evaluation_interval": "1m",
        "tests": tests,
    }
    return HEADER + yaml.safe_dump(body, sort_keys=False, width=1000, allow_unicode=True)


def main() -> None:
    OUTPUT.write_text(document(), encoding="utf-8")


if __name__ == "__main__":
    main()
