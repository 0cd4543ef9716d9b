"""The dashboards' queries against a real Prometheus scraping a real service: values, not just data.

The service runs as `python -m exporter serve` on a temporary database, Prometheus scrapes it
every second and evaluates the shipped rules (the overview reads their recording rules), and
the test reports batches and logs over HTTP in waves with exact start and end times, so that
every value a panel shows is known: the status counts, the rows of the attention table, the
duration quantiles, the run duration between runs, and the runs counted once at any step.

Prometheus scrapes through a gate that the test closes for the first wave: those scrapes
fail, Prometheus marks every series stale, and the counters move while it cannot see them, as
in a restart or a timeout; the panels must still count every run.

Every query is evaluated at one moment, `Stack.at`, after the last scrape that saw the second
wave, so that a test's answer does not depend on how long the tests before it took.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.support import ROOT
from tests.support.processes import (
    Processes,
    Prometheus,
    http,
    serve_in_thread,
    start_prometheus,
    wait_for,
)
from tests.support.service import Service

DASHBOARD_FILES = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
RULES_FILE = ROOT / "rules" / "integration-monitor.rules.yml"
RECORDING_GROUP = "integration-monitor-recording"
JOB = "integration-monitor"
DRILL_KEY = "crm-sync"  # a batch monitor with the duration histogram on
PLAIN_KEY = "erp-import"  # a batch monitor without it (the default)
# The drill-down's schedule panels are about a monitor with a schedule, which crm-sync (an
# interval monitor) is not: they are run for this one instead.
SCHEDULED_KEY = "nightly"
SCHEDULE_METRICS = re.compile(
    r"integration_monitor_(schedule_info|start_deadline_timestamp_seconds|max_runtime_seconds)\b"
)
RATE_INTERVAL = "1m"
# Instant queries stand for the last step of a range; any step works for them.
INTERVAL = "15s"
SCRAPE_TIMEOUT = 30.0
# Steps ($__interval) at which Runs by status must count every run once: Prometheus has
# scraped the service for longer than the largest before the first report.
STEPS = (1, 2, 3, 5, 7)
# The rate window of the Run duration test: short, so that the test can wait it out.
SHORT_RATE_INTERVAL = 5
CUSTOM_STATUSES = {"partial": "error"}


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace Grafana variables (`$name`, `${name}`, `${name:format}`) in a query.

    `$__rate_interval` becomes 1m and `$__interval` 15s unless `variables` says otherwise;
    an unknown variable is an error, so a query cannot silently keep a `$` that Prometheus
    would reject. `$1` (label_replace's group) is not a variable.
    """
    values = {"__rate_interval": RATE_INTERVAL, "__interval": INTERVAL, **variables}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)", replace, expr)


def test_substitute() -> None:
    expr = (
        'rate(m{job=~"$job", instance=~"${instance}", integration_key="${integration_key:raw}"}'
        '[$__rate_interval]) - m offset $__interval or label_replace(m, "a", "$1", "b", "(.*)")'
    )
    assert substitute(expr, {"job": "j", "instance": "i:1", "integration_key": "k"}) == (
        'rate(m{job=~"j", instance=~"i:1", integration_key="k"}[1m]) - m offset 15s'
        ' or label_replace(m, "a", "$1", "b", "(.*)")'
    )
    assert substitute("x[$__rate_interval]", {"__rate_interval": "5m"}) == "x[5m]"
    with pytest.raises(KeyError, match="nope"):
        substitute("x{a=$nope}", {})


# --- panels and targets ---------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard}: {self.panel} [{self.ref}]"


def load_queries() -> list[Query]:
    queries = []
    for path in DASHBOARD_FILES:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        panels = []
        for panel in dashboard["panels"]:
            panels.append(panel)
            panels.extend(panel.get("panels", []))
        for panel in panels:
            for target in panel.get("targets", []):
                queries.append(Query(path.stem, panel["title"], target["refId"], target["expr"]))
    return queries


def load_variable_queries() -> list[tuple[str, str, str, str]]:
    """(dashboard, variable, selector, label) for every label_values() variable."""
    out = []
    for path in DASHBOARD_FILES:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text)
            assert match, text
            out.append((path.stem, variable["name"], match.group(1), match.group(2)))
    return out


QUERIES = load_queries()
VARIABLE_QUERIES = load_variable_queries()


def panel_queries(dashboard: str, title: str) -> list[Query]:
    found = [q for q in QUERIES if q.dashboard == dashboard and q.panel == title]
    assert found, f"{dashboard} has no panel {title!r}"
    return found


def overview(title: str) -> list[Query]:
    return panel_queries("integration-monitor-overview", title)


def drill_down(title: str) -> list[Query]:
    return panel_queries("integration-monitor-monitor", title)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- the stack ------------------------------------------------------------------------------


class ScrapeGate:
    """A proxy in front of the service's /metrics that answers 503 while closed."""

    def __init__(self, service_url: str) -> None:
        self.closed = False
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if gate.closed:
                    self.send_error(503, "scrape gate closed")
                    return
                with urllib.request.urlopen(service_url + self.path, timeout=5) as answer:
                    body = answer.read()
                    content_type = answer.headers["Content-Type"]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.handler = Handler


@dataclass
class Stack:
    service_url: str
    prometheus: Prometheus
    variables: dict[str, str]
    # Set by the fixture: Prometheus time before the first report, after each wave's first
    # scrape, and the moment every test evaluates at.
    before_reports: float = 0.0
    first_wave_scraped: float = 0.0
    second_wave_sent: float = 0.0
    second_wave_scraped: float = 0.0
    at: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query at `at` (default: `self.at`, or now before it is set)."""
        moment = at if at is not None else self.at
        params = {"query": expr, **({"time": f"{moment:.3f}"} if moment else {})}
        answer = http(
            "GET", f"{self.prometheus.url}/api/v1/query?" + urllib.parse.urlencode(params)
        )
        if answer.get("status") != "success":
            raise AssertionError(f"query {expr!r} -> {answer}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: int) -> list[dict[str, Any]]:
        """A range query aligned as Grafana aligns it: start and end on multiples of step."""
        params = {
            "query": expr,
            "start": str(math.floor(start / step) * step),
            "end": str(math.floor(end / step) * step),
            "step": str(step),
        }
        answer = http(
            "GET",
            f"{self.prometheus.url}/api/v1/query_range?" + urllib.parse.urlencode(params),
        )
        if answer.get("status") != "success":
            raise AssertionError(f"query {expr!r} -> {answer}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def value(self, expr: str) -> float:
        result = self.query(expr)
        assert len(result) == 1, f"{expr}: {result}"
        return float(result[0]["value"][1])

    def last_scrape(self) -> float:
        """Start time (Unix seconds) of the latest completed scrape of the service."""
        result = self.query(f'timestamp(up{{job="{JOB}"}} == 1)', at=time.time())
        return float(result[0]["value"][1]) if result else 0.0


def shipped_rules() -> Path:
    """The shipped rules file, which holds the recording rules the overview reads."""
    groups = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    assert RECORDING_GROUP in {group["name"] for group in groups}
    return RULES_FILE


def batch(api: str, key: str, status: str, start: datetime, end: datetime, **counts: int) -> None:
    http(
        "POST",
        f"{api}/monitors/{key}/batches",
        {"logstatus": status, "starttime": iso(start), "endtime": iso(end), **counts},
    )


def seed_monitors(api: str) -> None:
    monitors: dict[str, dict[str, Any]] = {
        DRILL_KEY: {
            "name": "CRM sync",
            "alert_interval": 60,
            "alert_no_creates_deceeds": 1,
            "duration_histogram": True,
        },
        PLAIN_KEY: {"name": "ERP import", "alert_interval": 1440},
        "newsletter": {"name": "Newsletter", "type": "message", "alert_interval": 0},
        # Never reports: notcalculated, with a schedule whose first deadline is hours away.
        "never-ran": {"name": "Never ran", "schedule": "30 3 * * *", "timezone": "UTC"},
        SCHEDULED_KEY: {
            "name": "Nightly backup",
            "schedule": "0 2 * * *",
            "timezone": "Europe/Stockholm",
            "max_runtime": 120,
        },
        # Switched off, with a failed 1000 s run: in no count, no quantile, no attention row.
        "paused": {"name": "Paused", "alert_interval": 60, "active": False},
    }
    for key, body in monitors.items():
        http("PUT", f"{api}/monitors/{key}", body)


def seed_wave_zero(api: str) -> None:
    """crm-sync's first run, seen by a scrape before the gate closes: running, a log, then ok
    with objects, so that its run, log and object counters hold values when they go stale."""
    now = datetime.now(UTC)
    started = http(
        "POST",
        f"{api}/monitors/{DRILL_KEY}/batches",
        {"logstatus": "running", "starttime": iso(now - timedelta(seconds=45))},
    )["batch"]
    http(
        "POST",
        f"{api}/monitors/{DRILL_KEY}/logs",
        {"batch_id": started["id"], "logstatus": "ok", "logtext": "fetched 8 accounts"},
    )
    http(
        "PATCH",
        f"{api}/batches/{started['id']}",
        {
            "logstatus": "ok",
            "endtime": iso(now - timedelta(seconds=35)),
            "no_created": 5,
            "no_updated": 2,
            "no_deleted": 1,
        },
    )


def seed_first_wave(api: str) -> None:
    """A first report of the others, and crm-sync failed (20 s); erp-import failed (60 s)."""
    now = datetime.now(UTC)
    batch(
        api, DRILL_KEY, "error", now - timedelta(seconds=30), now - timedelta(seconds=10),
        no_updated=1,
    )  # fmt: skip
    batch(api, PLAIN_KEY, "error", now - timedelta(seconds=300), now - timedelta(seconds=240))
    http("POST", f"{api}/monitors/newsletter/logs", {"logstatus": "ok", "message": "sent"})
    batch(api, SCHEDULED_KEY, "ok", now - timedelta(seconds=100), now - timedelta(seconds=90))
    batch(api, "paused", "error", now - timedelta(seconds=2000), now - timedelta(seconds=1000))


def seed_second_wave(api: str, facts: dict[str, Any]) -> None:
    """More runs, one of a status crm-sync never used (partial): its counter appears now.

    crm-sync: partial (5 s), ok (30 s, ended 10 s ago), error (3 s, the latest);
    erp-import: ok (30 s). Durations of the latest runs: crm-sync 3, erp-import 30, nightly 10.
    """
    now = datetime.now(UTC)
    batch(
        api, DRILL_KEY, "partial", now - timedelta(seconds=50), now - timedelta(seconds=45),
        no_created=1,
    )  # fmt: skip
    ok_end = now - timedelta(seconds=10)
    body = {
        "logstatus": "ok",
        "starttime": iso(now - timedelta(seconds=40)),
        "endtime": iso(ok_end),
        "no_created": 4,
        "no_updated": 7,
        "no_deleted": 2,
    }
    for _ in range(2):  # the same report again: counted once, as outcome "duplicate"
        http(
            "POST",
            f"{api}/monitors/{DRILL_KEY}/batches",
            body,
            headers={"Idempotency-Key": "wave2-ok"},
        )
    facts["crm_last_success"] = ok_end.timestamp()
    batch(api, DRILL_KEY, "error", now - timedelta(seconds=8), now - timedelta(seconds=5))
    http("POST", f"{api}/monitors/{DRILL_KEY}/logs", {"logstatus": "error", "errormsg": "retry"})
    http("POST", f"{api}/monitors/{DRILL_KEY}/logs", {"logstatus": "ok", "logtext": "done"})
    batch(
        api, PLAIN_KEY, "ok", now - timedelta(seconds=60), now - timedelta(seconds=30),
        no_created=30,
    )  # fmt: skip
    http("POST", f"{api}/monitors/newsletter/logs", {"logstatus": "error", "errormsg": "bounce"})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("dashboards-prometheus")
    processes = Processes()
    exits = contextlib.ExitStack()
    try:
        config = {"evaluation": {"interval_seconds": 1}, "statuses": CUSTOM_STATUSES}
        service = Service(tmp, yaml.safe_dump(config), processes=processes)
        gate = ScrapeGate(service.url)
        target = exits.enter_context(serve_in_thread(gate.handler)).removeprefix("http://")
        prometheus = start_prometheus(
            processes,
            tmp,
            {
                "global": {
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "evaluation_interval": "1s",
                },
                "rule_files": [str(shipped_rules())],
                "scrape_configs": [
                    {
                        "job_name": JOB,
                        "static_configs": [{"targets": [target]}],
                    }
                ],
            },
        )
        stack = Stack(
            service.url,
            prometheus,
            {
                "job": JOB,
                "instance": target,
                "integration_key": DRILL_KEY,
            },
        )
        api = f"{service.url}/api/v1"

        def scraped_since(moment: float) -> Callable[[], bool]:
            # A scrape that started a second after `moment` sees everything reported before.
            return lambda: stack.last_scrape() > moment + 1

        # The monitors exist, and Prometheus has seen the service for longer than the largest
        # step before any run: a counter that appears later appeared on its first use.
        # Every scrape of the last max(STEPS) + 3 seconds succeeded, not merely the latest: a
        # counter's first step looks a step back for the target being up (a slow start whose
        # early scrapes timed out left that look empty, and step 7 lost crm-sync's first run).
        seed_monitors(api)
        span = max(STEPS) + 3
        steady = (
            f'min_over_time(up{{job="{JOB}"}}[{span}s]) == 1 '
            f'and count_over_time(up{{job="{JOB}"}}[{span}s]) >= {span - 1}'
        )
        wait_for(
            "scrapes before the first report",
            lambda: bool(stack.query(steady, at=time.time())),
            SCRAPE_TIMEOUT,
            processes,
        )
        stack.before_reports = time.time()
        seed_wave_zero(api)
        zero = time.time()
        wait_for(
            "a scrape after crm-sync's first run", scraped_since(zero), SCRAPE_TIMEOUT, processes
        )
        # The first wave while scrapes fail: crm-sync's counters go stale and come back
        # moved, the other monitors' run counters appear unseen.
        gate.closed = True
        failed = f'up{{job="{JOB}"}} == 0'
        wait_for(
            "a failed scrape",
            lambda: bool(stack.query(failed, at=time.time())),
            SCRAPE_TIMEOUT,
            processes,
        )
        seed_first_wave(api)
        time.sleep(2)
        gate.closed = False
        first = time.time()
        wait_for("a scrape after the first wave", scraped_since(first), SCRAPE_TIMEOUT, processes)
        stack.first_wave_scraped = stack.last_scrape()
        stack.second_wave_sent = time.time()
        seed_second_wave(api, stack.facts)
        second = time.time()
        wait_for("a scrape after the second wave", scraped_since(second), SCRAPE_TIMEOUT, processes)
        stack.second_wave_scraped = stack.last_scrape()
        # Past the short rate window, so that Run duration has steps without runs in it.
        settled = stack.second_wave_scraped + SHORT_RATE_INTERVAL + 2
        wait_for("the rate window to pass", scraped_since(settled), SCRAPE_TIMEOUT, processes)
        quantiles = 'job:integration_monitor_last_run_duration_seconds:quantile{quantile="0.5"}'
        wait_for(
            "the recording rules to see the second wave",
            lambda: any(float(s["value"][1]) == 10 for s in stack.query(quantiles, at=time.time())),
            SCRAPE_TIMEOUT,
            processes,
        )
        stack.at = stack.last_scrape() + 0.5
        yield stack
    finally:
        exits.close()
        processes.stop()


# --- every query answers --------------------------------------------------------------------


@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_panel_query_returns_data(stack: Stack, query: Query) -> None:
    variables = stack.variables
    if query.dashboard == "integration-monitor-monitor" and SCHEDULE_METRICS.search(query.expr):
        variables = {**variables, "integration_key": SCHEDULED_KEY}
    expr = substitute(query.expr, variables)
    result = stack.query(expr)
    assert result, f"{query}: no data for {expr}"
    values = [float(series["value"][1]) for series in result]
    assert all(math.isfinite(v) for v in values), f"{query}: {values} for {expr}"


@pytest.mark.parametrize(
    ("dashboard", "variable", "selector", "label"), VARIABLE_QUERIES, ids=lambda x: str(x)
)
def test_variable_query_offers_values(
    stack: Stack, dashboard: str, variable: str, selector: str, label: str
) -> None:
    # Multi-value variables stand for "All" (.+) while their options are computed.
    expr = substitute(selector, {"job": ".+", "instance": ".+"})
    values = {series["metric"].get(label) for series in stack.query(expr)} - {None}
    expected = {"job": JOB, "instance": stack.variables["instance"], "integration_key": DRILL_KEY}
    assert expected[variable] in values, f"{dashboard} ${variable}: {sorted(values)}"


# --- the overview ---------------------------------------------------------------------------


def test_overview_counts_active_monitors_by_alert_status(stack: Stack) -> None:
    """crm-sync's and newsletter's latest runs failed, erp-import's and nightly's are ok,
    never-ran never reported; paused (inactive, with a failed run) is only Inactive."""

    def value(title: str) -> float:
        [query] = overview(title)
        return stack.value(substitute(query.expr, stack.variables))

    assert value("Active monitors") == 5
    assert value("In error") == 2
    assert value("OK") == 2
    assert value("Not calculated") == 1
    assert value("Inactive") == 1
    [by_status] = overview("Monitors by alert status")
    series = stack.query(substitute(by_status.expr, stack.variables))
    assert {s["metric"]["status"]: float(s["value"][1]) for s in series} == {
        "error": 2,
        "ok": 2,
        "notcalculated": 1,
    }


def table_rows(stack: Stack, title: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The table as Grafana's merge builds it: one row per (job, integration_key), with each
    query's labels and its value as `Value #<ref>`."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for query in overview(title):
        for series in stack.query(substitute(query.expr, stack.variables)):
            labels = series["metric"]
            row = rows.setdefault((labels["job"], labels["integration_key"]), {})
            for name, value in labels.items():
                assert row.get(name, value) == value, f"{query}: {name} differs: {row}"
                row[name] = value
            row[f"Value #{query.ref}"] = float(series["value"][1])
    return rows


def test_needs_attention_lists_the_active_monitors_that_are_not_ok(stack: Stack) -> None:
    rows = table_rows(stack, "Needs attention")
    assert set(rows) == {(JOB, DRILL_KEY), (JOB, "newsletter"), (JOB, "never-ran")}
    crm, newsletter, never = (
        rows[(JOB, DRILL_KEY)],
        rows[(JOB, "newsletter")],
        rows[(JOB, "never-ran")],
    )
    assert [crm["status"], newsletter["status"], never["status"]] == [
        "error",
        "error",
        "notcalculated",
    ]
    # Sorted by alert status ascending, as the panel is, errors come first.
    ordered = sorted(rows.values(), key=lambda r: r["status"])
    assert [r["status"] for r in ordered] == ["error", "error", "notcalculated"]
    assert crm["name"] == "CRM sync" and crm["type"] == "batch"
    assert (crm["run_status"], crm["result"]) == ("error", "error")
    assert (newsletter["run_status"], newsletter["result"]) == ("error", "error")
    reasons = {
        s["metric"]["reason"]
        for s in stack.query(f'integration_monitor_alert_reason{{integration_key="{DRILL_KEY}"}}')
    }
    assert "last_run_failed" in reasons and crm["reason"] in reasons
    assert crm["Value #G"] == 3, "the latest finished run took 3 s"
    since_success = stack.at - stack.facts["crm_last_success"]
    assert abs(crm["Value #F"] - since_success) < 1.5, (crm["Value #F"], since_success)
    assert 0 < crm["Value #E"] < stack.at - stack.before_reports + 60
    # never-ran: time since creation, its schedule and its first deadline (03:30 + grace).
    assert 0 < never["Value #E"] < stack.at - stack.before_reports + 120
    assert never["summary"].startswith("at 03:30 every day")
    due = datetime.fromtimestamp(never["Value #I"] / 1000, UTC)
    assert (due.hour, due.minute) == (3, 40) and due.timestamp() > stack.at
    assert "Value #G" not in never and "Value #D" not in never


def test_all_monitors_lists_every_monitor_with_its_state(stack: Stack) -> None:
    rows = table_rows(stack, "All monitors")
    keys = {DRILL_KEY, PLAIN_KEY, "newsletter", "never-ran", SCHEDULED_KEY, "paused"}
    assert set(rows) == {(JOB, key) for key in keys}
    assert rows[(JOB, "paused")]["active"] == "false"
    assert rows[(JOB, PLAIN_KEY)]["status"] == "ok"
    assert rows[(JOB, PLAIN_KEY)]["run_status"] == "ok"


def test_duration_quantiles_across_active_batch_monitors(stack: Stack) -> None:
    """Latest durations of the active batch monitors: crm-sync 3, nightly 10, erp-import 30
    (paused's 1000 s is left out; never-ran and the message monitor have none): PromQL's
    quantile interpolates between ranks, p50 = 10, p90 = 26, p99 = 29.6."""
    [query] = overview("Run duration quantiles")
    series = stack.query(substitute(query.expr, stack.variables))
    assert {s["metric"]["job"] for s in series} == {JOB}
    got = {s["metric"]["quantile"]: float(s["value"][1]) for s in series}
    assert got == pytest.approx({"0.5": 10.0, "0.9": 26.0, "0.99": 29.6})


def final_totals(stack: Stack, metric: str, label: str, key: str | None = None) -> dict[str, float]:
    selector = f'job="{JOB}"' + (f', integration_key="{key}"' if key else "")
    expr = f"sum by({label})(max by(job, integration_key, {label})({metric}{{{selector}}}))"
    return {s["metric"][label]: float(s["value"][1]) for s in stack.query(expr)}


def counted(stack: Stack, query: Query, label: str, step: int, key: str) -> dict[str, float]:
    """Sum over every step of a range query of the panel, from before the first report.

    The range ends exactly at `stack.at` and starts a whole number of steps before, at or
    before the first report: a range that started at the first report would end up to a step
    before `at`, and a run in that last part (a slow machine puts the second wave there) would
    fall outside every bar.
    """
    expr = substitute(
        query.expr, {**stack.variables, "integration_key": key, "__interval": f"{step}s"}
    )
    start = stack.at - step * math.ceil((stack.at - stack.before_reports) / step)
    totals: dict[str, float] = {}
    for series in stack.query_range(expr, start, stack.at, step):
        values = [float(v) for _, v in series["values"]]
        assert all(math.isfinite(v) and v >= 0 for v in values), f"{query} at {step}s: {values}"
        name = series["metric"][label]
        totals[name] = totals.get(name, 0.0) + sum(values)
    return totals


@pytest.mark.parametrize("step", STEPS)
def test_runs_by_status_count_each_run_once_at_every_step(stack: Stack, step: int) -> None:
    """crm-sync finished ok twice, failed twice and once with partial, whose counter appeared
    only in the second wave: the bars add up to exactly that at any step, and over all
    monitors to the counters' totals (every run happened after Prometheus first scraped the
    service), the first wave's runs included although their scrapes failed."""
    [runs] = drill_down("Runs by status")
    assert counted(stack, runs, "status", step, DRILL_KEY) == {"ok": 2, "error": 2, "partial": 1}
    [logs] = drill_down("Log messages by status")
    assert counted(stack, logs, "status", step, DRILL_KEY) == {"ok": 2, "error": 1}
    [objects] = drill_down("Objects created, updated, deleted")
    assert counted(stack, objects, "operation", step, DRILL_KEY) == {
        "created": 10,
        "updated": 10,
        "deleted": 3,
    }
    [all_runs] = overview("Runs by status")
    expected = final_totals(stack, "integration_monitor_runs_total", "status")
    assert counted(stack, all_runs, "status", step, DRILL_KEY) == expected
    assert expected == {"ok": 5, "error": 5, "partial": 1}
    [all_objects] = overview("Objects created, updated, deleted")
    expected = final_totals(stack, "integration_monitor_objects_total", "operation")
    assert counted(stack, all_objects, "operation", step, DRILL_KEY) == expected


# --- the drill-down -------------------------------------------------------------------------


def duration_steps(stack: Stack, key: str, ref: str) -> dict[float, tuple[str, float]]:
    """Run duration's query `ref` for `key` at every second since the first wave's scrape:
    {time: (source, value)}; two series at one step fail the test."""
    [query] = [q for q in drill_down("Run duration") if q.ref == ref]
    expr = substitute(
        query.expr,
        {**stack.variables, "integration_key": key, "__rate_interval": f"{SHORT_RATE_INTERVAL}s"},
    )
    steps: dict[float, tuple[str, float]] = {}
    for series in stack.query_range(expr, stack.first_wave_scraped + 1, stack.at, 1):
        for moment, value in series["values"]:
            assert moment not in steps, f"two values at {moment}: {expr}"
            steps[moment] = (series["metric"].get("source", ""), float(value))
    return steps


def scraped_steps(stack: Stack) -> set[float]:
    """The seconds of duration_steps' range at which the latest scrape had succeeded: after a
    failed one (a loaded machine), Prometheus has marked every series stale until the next."""
    up = stack.query_range(f'up{{job="{JOB}"}}', stack.first_wave_scraped + 1, stack.at, 1)
    return {moment for series in up for moment, value in series["values"] if value == "1"}


def test_run_duration_without_the_histogram_holds_the_latest_run(stack: Stack) -> None:
    """erp-import (no histogram): at every step the latest run's duration, 60 s until the
    second wave, then 30 s; no gap, no NaN."""
    steps = duration_steps(stack, PLAIN_KEY, "A")
    assert set(steps) == scraped_steps(stack)
    for moment, (source, value) in steps.items():
        assert source == "latest run"
        if moment < stack.second_wave_sent:
            assert value == 60, moment
        elif moment >= stack.second_wave_scraped:
            assert value == 30, moment
    assert not duration_steps(stack, PLAIN_KEY, "B"), "no histogram, no p99 line"


def test_run_duration_with_the_histogram_falls_back_between_runs(stack: Stack) -> None:
    """crm-sync (histogram on): the median of the runs in the window where there were runs,
    the latest run's duration everywhere else, so every step has exactly one finite value."""
    steps = duration_steps(stack, DRILL_KEY, "A")
    assert set(steps) == scraped_steps(stack)
    assert all(math.isfinite(value) and value > 0 for _, value in steps.values())
    sources = {source for source, _ in steps.values()}
    assert sources == {"latest run", "median of runs (histogram)"}
    quiet = stack.second_wave_scraped + SHORT_RATE_INTERVAL + 1
    assert [v for t, (s, v) in steps.items() if t >= quiet] == [3.0 for t in steps if t >= quiet], (
        "past the window: the latest run, 3 s"
    )
    assert all(s == "latest run" for t, (s, _) in steps.items() if t >= quiet)
    p99 = duration_steps(stack, DRILL_KEY, "B")
    assert p99 and all(math.isfinite(v) for _, v in p99.values())
    assert all(t < quiet for t in p99), "no p99 where no run happened, rather than NaN"


def test_drill_down_shows_the_monitor_now(stack: Stack) -> None:
    def instant(title: str, key: str = DRILL_KEY) -> list[dict[str, Any]]:
        [query] = drill_down(title)
        return stack.query(substitute(query.expr, {**stack.variables, "integration_key": key}))

    [status] = instant("Alert status")
    assert status["metric"]["status"] == "error"
    assert "last_run_failed" in {s["metric"]["reason"] for s in instant("Reasons")}
    assert not instant("Reasons", PLAIN_KEY), "reasons only while they hold"
    [last] = instant("Latest run status")
    assert (last["metric"]["status"], last["metric"]["result"]) == ("error", "error")
    [duration] = instant("Latest run duration")
    assert float(duration["value"][1]) == 3
    [active] = instant("Active", "paused")
    assert active["metric"]["active"] == "false"
    [interval] = instant("Alert interval")
    assert float(interval["value"][1]) == 3600
    assert not instant("Alert interval", "newsletter"), "no interval, no series: the panel says off"


def test_schedule_panels_show_the_schedule_and_the_deadline(stack: Stack) -> None:
    """The drill-down's schedule stat shows the words; the deadline is tomorrow's 02:10 in
    Stockholm, in milliseconds for Grafana's date units; the overview's full table has both."""
    variables = {**stack.variables, "integration_key": SCHEDULED_KEY}
    [info] = stack.query(substitute(drill_down("Schedule")[0].expr, variables))
    assert info["metric"]["summary"] == "at 02:00 every day, Europe/Stockholm"
    [deadline] = stack.query(substitute(drill_down("Next run due by")[0].expr, variables))
    due = datetime.fromtimestamp(float(deadline["value"][1]) / 1000, ZoneInfo("Europe/Stockholm"))
    assert (due.hour, due.minute) == (2, 10) and due.timestamp() > stack.at
    [runtime] = stack.query(substitute(drill_down("Max runtime")[0].expr, variables))
    assert float(runtime["value"][1]) == 7200
