"""Every dashboard query returns data from a real Prometheus scraping a real service.

The service runs as `python -m exporter serve` on a temporary database, Prometheus scrapes it
every second, and the test reports batches and logs over HTTP in two waves: the first creates
every series, the second moves the counters, so that rate(), increase() and
histogram_quantile() have something to compute over.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.support import ROOT
from tests.support.processes import Processes, Prometheus, http, start_prometheus, wait_for
from tests.support.service import Service

DASHBOARD_FILES = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
JOB = "integration-monitor"
DRILL_KEY = "crm-sync"
# The drill-down's schedule panels are about a monitor with a schedule, which crm-sync (an
# interval monitor) is not: they are run for this one instead.
SCHEDULED_KEY = "nightly"
SCHEDULE_METRICS = re.compile(
    r"integration_monitor_(schedule_info|start_deadline_timestamp_seconds|max_runtime_seconds)\b"
)
RATE_INTERVAL = "1m"
SCRAPE_TIMEOUT = 30.0


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace Grafana variables (`$name`, `${name}`, `${name:format}`) in a query.

    `$__rate_interval` becomes 1m unless `variables` says otherwise; an unknown variable is
    an error, so a query cannot silently keep a `$` that Prometheus would reject.
    """
    values = {"__rate_interval": RATE_INTERVAL, **variables}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", replace, expr)


def test_substitute() -> None:
    expr = 'rate(m{job=~"$job", instance=~"${instance}", key="${key:raw}"}[$__rate_interval])'
    assert substitute(expr, {"job": "j", "instance": "i:1", "key": "k"}) == (
        'rate(m{job=~"j", instance=~"i:1", key="k"}[1m])'
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


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- the stack ------------------------------------------------------------------------------


@dataclass
class Stack:
    service_url: str
    prometheus: Prometheus
    variables: dict[str, str]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.prometheus.query(expr)

    def last_scrape(self) -> float:
        """Start time (Unix seconds) of the latest completed scrape of the service."""
        result = self.query(f'timestamp(up{{job="{JOB}"}} == 1)')
        return float(result[0]["value"][1]) if result else 0.0


def seed_first_wave(api: str) -> None:
    """Monitors, and a first report of each kind: every series exists afterwards."""
    now = datetime.now(UTC)
    monitors = {
        DRILL_KEY: {"name": "CRM sync", "alert_interval": 60, "alert_no_creates_deceeds": 1},
        "erp-import": {"name": "ERP import", "alert_interval": 1440},
        "newsletter": {"name": "Newsletter", "type": "message", "alert_interval": 0},
        "never-ran": {"name": "Never ran", "alert_interval": 0},
        SCHEDULED_KEY: {
            "name": "Nightly backup",
            "schedule": "0 2 * * *",
            "timezone": "Europe/Stockholm",
            "max_runtime": 120,
        },
    }
    for key, body in monitors.items():
        http("PUT", f"{api}/monitors/{key}", body)
    batch = http(
        "POST",
        f"{api}/monitors/{DRILL_KEY}/batches",
        {"logstatus": "running", "starttime": iso(now - timedelta(seconds=45))},
    )["batch"]
    http(
        "POST",
        f"{api}/monitors/{DRILL_KEY}/logs",
        {"batch_id": batch["id"], "logstatus": "ok", "logtext": "fetched 8 accounts"},
    )
    http(
        "PATCH",
        f"{api}/batches/{batch['id']}",
        {"logstatus": "ok", "no_created": 5, "no_updated": 2, "no_deleted": 1},
    )
    http(
        "POST",
        f"{api}/monitors/{DRILL_KEY}/batches",
        {
            "logstatus": "error",
            "starttime": iso(now - timedelta(seconds=20)),
            "no_updated": 1,
            "errormsg": "CRM API answered 502",
        },
    )
    http(
        "POST",
        f"{api}/monitors/erp-import/batches",
        {"logstatus": "error", "starttime": iso(now - timedelta(seconds=300)), "no_created": 3},
    )
    http("POST", f"{api}/monitors/newsletter/logs", {"logstatus": "ok", "message": "sent"})
    http("POST", f"{api}/monitors/{SCHEDULED_KEY}/batches", {"logstatus": "ok"})


def seed_second_wave(api: str) -> None:
    """More runs of every kind, so counters and histogram buckets increase between scrapes."""
    now = datetime.now(UTC)
    for seconds, status in ((12, "error"), (90, "ok")):
        http(
            "POST",
            f"{api}/monitors/{DRILL_KEY}/batches",
            {
                "logstatus": status,
                "starttime": iso(now - timedelta(seconds=seconds)),
                "no_created": 4,
                "no_updated": 7,
                "no_deleted": 2,
            },
            headers={"Idempotency-Key": f"wave2-{seconds}"},
        )
    # The same report again: counted once, as outcome "duplicate".
    http(
        "POST",
        f"{api}/monitors/{DRILL_KEY}/batches",
        {
            "logstatus": "ok",
            "starttime": iso(now - timedelta(seconds=90)),
            "no_created": 4,
            "no_updated": 7,
            "no_deleted": 2,
        },
        headers={"Idempotency-Key": "wave2-90"},
    )
    http("POST", f"{api}/monitors/{DRILL_KEY}/logs", {"logstatus": "error", "errormsg": "retry"})
    http("POST", f"{api}/monitors/{DRILL_KEY}/logs", {"logstatus": "ok", "logtext": "done"})
    http(
        "POST",
        f"{api}/monitors/erp-import/batches",
        {"logstatus": "ok", "starttime": iso(now - timedelta(seconds=60)), "no_created": 30},
    )
    http("POST", f"{api}/monitors/newsletter/logs", {"logstatus": "error", "errormsg": "bounce"})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("dashboards-prometheus")
    processes = Processes()
    try:
        service = Service(tmp, "evaluation:\n  interval_seconds: 1\n", processes=processes)
        prometheus = start_prometheus(
            processes,
            tmp,
            {
                "global": {
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "evaluation_interval": "1s",
                },
                "scrape_configs": [
                    {
                        "job_name": JOB,
                        "static_configs": [{"targets": [f"127.0.0.1:{service.port}"]}],
                    }
                ],
            },
        )
        stack = Stack(
            service.url,
            prometheus,
            {"job": JOB, "instance": f"127.0.0.1:{service.port}", "key": DRILL_KEY},
        )
        api = f"{service.url}/api/v1"

        def scraped_since(moment: float) -> Callable[[], bool]:
            # A scrape that started a second after `moment` sees everything reported before.
            return lambda: stack.last_scrape() > moment + 1

        seed_first_wave(api)
        first = time.time()
        wait_for(
            "a scrape after the first reports", scraped_since(first), SCRAPE_TIMEOUT, processes
        )
        seed_second_wave(api)
        second = time.time()
        wait_for(
            "a scrape after the second reports", scraped_since(second), SCRAPE_TIMEOUT, processes
        )
        moved = f'increase(integration_monitor_runs_total{{key="{DRILL_KEY}"}}[1m]) > 0'
        wait_for("the run counters to increase", lambda: bool(stack.query(moved)), 10, processes)
        yield stack
    finally:
        processes.stop()


@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_panel_query_returns_data(stack: Stack, query: Query) -> None:
    variables = stack.variables
    if query.dashboard == "integration-monitor-monitor" and SCHEDULE_METRICS.search(query.expr):
        variables = {**variables, "key": SCHEDULED_KEY}
    expr = substitute(query.expr, variables)
    result = stack.query(expr)
    assert result, f"{query}: no data for {expr}"
    values = [float(series["value"][1]) for series in result]
    assert any(math.isfinite(v) for v in values), f"{query}: only {values} for {expr}"


@pytest.mark.parametrize(
    ("dashboard", "variable", "selector", "label"), VARIABLE_QUERIES, ids=lambda x: str(x)
)
def test_variable_query_offers_values(
    stack: Stack, dashboard: str, variable: str, selector: str, label: str
) -> None:
    # Multi-value variables stand for "All" (.+) while their options are computed.
    expr = substitute(selector, {"job": ".+", "instance": ".+"})
    values = {series["metric"].get(label) for series in stack.query(expr)} - {None}
    expected = {"job": JOB, "instance": stack.variables["instance"], "key": DRILL_KEY}[variable]
    assert expected in values, f"{dashboard} ${variable}: {sorted(values)}"


def test_overview_counts_monitors_by_alert_status(stack: Stack) -> None:
    """The stat panels agree with the reports: crm-sync's and newsletter's latest runs failed,
    erp-import's latest run and nightly's are ok, never-ran never reported."""
    by_title = {q.panel: q for q in QUERIES if q.dashboard == "integration-monitor-overview"}

    def value(title: str) -> float:
        result = stack.query(substitute(by_title[title].expr, stack.variables))
        return float(result[0]["value"][1])

    assert value("Monitors") == 5
    assert value("In error") == 2
    assert value("OK") == 2
    assert value("Not calculated") == 1
    assert value("Inactive") == 0


def test_schedule_panels_show_the_schedule_and_the_deadline(stack: Stack) -> None:
    """The drill-down's schedule stat shows the words; the deadline is tomorrow's 02:10 in
    Stockholm, in milliseconds for Grafana's date units; the overview table has both."""
    by_title = {q.panel: q for q in QUERIES if q.dashboard == "integration-monitor-monitor"}
    variables = {**stack.variables, "key": SCHEDULED_KEY}
    [info] = stack.query(substitute(by_title["Schedule"].expr, variables))
    assert info["metric"]["summary"] == "at 02:00 every day, Europe/Stockholm"
    [deadline] = stack.query(substitute(by_title["Next run due by"].expr, variables))
    due = datetime.fromtimestamp(float(deadline["value"][1]) / 1000, ZoneInfo("Europe/Stockholm"))
    assert (due.hour, due.minute) == (2, 10) and due > datetime.now(UTC)
    [runtime] = stack.query(substitute(by_title["Max runtime"].expr, variables))
    assert float(runtime["value"][1]) == 7200
    table = [q for q in QUERIES if q.panel == "Every monitor"]
    rows = [s for q in table for s in stack.query(substitute(q.expr, stack.variables))]
    assert {"key": SCHEDULED_KEY, "summary": "at 02:00 every day, Europe/Stockholm"} in [
        r["metric"] for r in rows
    ]
