"""Structure of the shipped Grafana dashboards, their provisioning and their export copies."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT

GRAFANA = ROOT / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
EXPORT_FILES = sorted((GRAFANA / "export").glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
EXPECTED_UIDS = {
    "integration-monitor-overview.json": "integration-monitor-overview",
    "integration-monitor-monitor.json": "integration-monitor-monitor",
}
# Grafana's own variables, always defined.
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range", "__url_time_range", "__data"}
# The recording rules the dashboards read (group integration-monitor-recording of
# rules/integration-monitor.rules.yml), with their labels. They have no `instance`: replicas
# are aggregated away.
RECORDED = {
    "job:integration_monitor_last_run_duration_seconds:quantile": {"job", "quantile"},
    "job:integration_monitor_monitors:max": {"job", "status"},
}
# Service-level families: one series per instance, no integration_key.
SERVICE_LEVEL = re.compile(
    r"integration_monitor_(build_info|monitors|monitors_inactive|evaluation_\w+|evaluations_total"
    r"|reports_received_total|database_\w+)$|up$"
)
# Counters that count runs (or their logs and objects): never rate()d or increase()d over
# $__rate_interval, whose windows overlap (see test_run_counters_count_each_run_once).
RUN_COUNTERS = (
    "integration_monitor_runs_total",
    "integration_monitor_logs_total",
    "integration_monitor_objects_total",
)
# Families the lean exposition removed, and the old label name.
REMOVED = (
    "integration_monitor_active",
    "integration_monitor_alert_timestamp_seconds",
    "integration_monitor_last_run_status",
)
OVERVIEW = GRAFANA / "dashboards" / "integration-monitor-overview.json"
MONITOR = GRAFANA / "dashboards" / "integration-monitor-monitor.json"
PROMQL_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan",
}  # fmt: skip
# Every series has these two, added by Prometheus at scrape time.
TARGET_LABELS = {"job", "instance"}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those nested in collapsed rows included."""
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def data_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in all_panels(dashboard) if p["type"] != "row"]


def targets(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(p, t) for p in data_panels(dashboard) for t in p.get("targets", [])]


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def all_exprs(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: panel targets and query variables' label_values() selectors."""
    exprs = [t["expr"] for _, t in targets(dashboard)]
    for variable in variables(dashboard).values():
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable_query(variable))
            assert match, f"variable {variable['name']}: expected label_values(selector, label)"
            exprs.append(match.group(1))
    return exprs


def documented_metrics() -> dict[str, set[str]]:
    """Metric names (or glob patterns) from docs/metrics.md's tables, with their labels."""
    metrics: dict[str, set[str]] = {}
    row = re.compile(r"^\|\s*`([a-z_*]+)`\s*\|\s*(\w*)\s*\|([^|]*)\|")
    for line in (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8").splitlines():
        match = row.match(line)
        if not match:
            continue
        name, kind, labels_cell = match.groups()
        labels = set(re.findall(r"`(\w+)`", labels_cell)) | TARGET_LABELS
        if kind == "histogram":
            metrics[f"{name}_bucket"] = labels | {"le"}
            metrics[f"{name}_sum"] = labels
            metrics[f"{name}_count"] = labels
        metrics[name] = labels
    metrics["up"] = set(TARGET_LABELS)
    metrics.update(RECORDED)
    return metrics


def strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def metric_names(expr: str) -> set[str]:
    """Names of the series an expression selects (functions, keywords, labels left out)."""
    text = strip_strings(expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\$\{?\w+(:\w+)?\}?", " ", text)  # offset $__interval
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\b\d+(\.\d+)?([eE][+-]?\d+)?\b", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*(?!\s*\(|[A-Za-z0-9_:])", text):
        if match.group(0).lower() not in PROMQL_KEYWORDS:
            names.add(match.group(0))
    return names


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """Each `metric{matchers}` of an expression as (metric, {label: operator+value})."""
    out = []
    for match in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}", expr):
        matchers = {}
        for m in re.finditer(r'(\w+)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")', match.group(2)):
            matchers[m.group(1)] = m.group(2) + m.group(3)
        out.append((match.group(1), matchers))
    return out


def made_labels(expr: str) -> set[str]:
    """Labels an expression makes with label_replace(v, "dst", ...)."""
    without_selectors = re.sub(r"\{[^}]*\}", "", expr)
    return set(re.findall(r'label_replace\([^"]*"(\w+)"', without_selectors))


def grouping_labels(expr: str) -> set[str]:
    labels: set[str] = set()
    for match in re.finditer(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr
    ):
        labels.update(x.strip() for x in match.group(1).split(",") if x.strip())
    return labels


def referenced_variables(text: str) -> set[str]:
    """Names in `$name`, `${name}`, `${name:format}` and `${name.path}` references."""
    found = re.findall(r"\$\{([A-Za-z_]\w*)(?:[:.][^}]*)?\}|\$([A-Za-z_]\w*)", text)
    return {a or b for a, b in found}


@pytest.fixture(params=DASHBOARD_FILES, ids=lambda p: p.name)
def dashboard_file(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


@pytest.fixture
def dashboard(dashboard_file: Path) -> dict[str, Any]:
    return load(dashboard_file)


def test_the_expected_dashboards_are_shipped() -> None:
    assert {p.name for p in DASHBOARD_FILES} == set(EXPECTED_UIDS)


def test_dashboard_identity(dashboard_file: Path, dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == EXPECTED_UIDS[dashboard_file.name]
    assert dashboard["id"] is None, "provisioned dashboards get their id from Grafana"
    assert dashboard["schemaVersion"] == 39
    assert "integration-monitor" in dashboard["tags"]
    assert dashboard["title"].startswith("Integration monitor / ")
    assert dashboard["description"]


def test_one_prometheus_datasource_variable(dashboard: dict[str, Any]) -> None:
    datasource_vars = [v for v in variables(dashboard).values() if v["type"] == "datasource"]
    assert [v["name"] for v in datasource_vars] == ["datasource"]
    assert datasource_vars[0]["query"] == "prometheus"
    # The provisioned data source (grafana/provisioning/datasources/prometheus.yaml).
    assert datasource_vars[0]["current"]["value"] == "prometheus"


def test_every_panel_target_and_variable_uses_the_datasource_variable(
    dashboard: dict[str, Any],
) -> None:
    for panel in data_panels(dashboard):
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
    for panel, target in targets(dashboard):
        assert target.get("datasource") == DATASOURCE, f"{panel['title']} {target['refId']}"
    for variable in variables(dashboard).values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


def test_job_and_instance_variables_filter_every_selector(dashboard: dict[str, Any]) -> None:
    variable_map = variables(dashboard)
    for name in ("job", "instance"):
        assert variable_map[name]["type"] == "query"
        assert variable_map[name]["includeAll"] and variable_map[name]["multi"]
    for panel, target in targets(dashboard):
        found = selectors(target["expr"])
        assert found, f"{panel['title']}: no selector in {target['expr']}"
        for metric, matchers in found:
            where = f"{panel['title']} {target['refId']}: {metric}"
            assert matchers.get("job") == '=~"$job"', where
            if metric in RECORDED:
                assert "instance" not in matchers, where
            else:
                assert matchers.get("instance") == '=~"$instance"', where


def test_monitor_dashboard_selects_one_integration_key() -> None:
    """The variable is named after the label: the alerts link to
    /d/integration-monitor-monitor?var-integration_key=<key>."""
    dashboard = load(MONITOR)
    key = variables(dashboard)["integration_key"]
    assert "key" not in variables(dashboard)
    assert key["type"] == "query"
    assert variable_query(key).startswith("label_values(integration_monitor_info{")
    assert variable_query(key).endswith(", integration_key)")
    assert not key["multi"] and not key["includeAll"]
    for panel, target in targets(dashboard):
        for metric, matchers in selectors(target["expr"]):
            if metric != "up":
                where = f"{panel['title']}: {metric}"
                assert matchers.get("integration_key") == '="$integration_key"', where


def test_every_panel_has_a_unit_and_a_description(dashboard: dict[str, Any]) -> None:
    for panel in data_panels(dashboard):
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: no unit"
        assert len(panel.get("description", "")) >= 20, f"{panel['title']}: no description"


def test_panel_ids_and_titles_are_unique_and_panels_do_not_overlap(
    dashboard: dict[str, Any],
) -> None:
    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in data_panels(dashboard)]
    assert len(titles) == len(set(titles)), "panels are named in tests and links by title"
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_range_is_the_rate_interval_and_every_offset_one_step(
    dashboard: dict[str, Any],
) -> None:
    for panel, target in targets(dashboard):
        expr = strip_strings(target["expr"])
        where = f"{panel['title']}: {expr}"
        ranges = re.findall(r"\[([^\]]*)\]", expr)
        calls = re.findall(r"\b(?:rate|irate|increase|delta|\w+_over_time)\s*\(", expr)
        assert len(ranges) == len(calls), where
        assert all(r == "$__rate_interval" for r in ranges), where
        offsets = re.findall(r"\boffset\s+([^\s)]+)", expr)
        assert all(o == "$__interval" for o in offsets), where


def counted_once(metric: str, selector: str, label: str) -> str:
    """The change of a run counter over one step, summed by `label` (the shape
    test_dashboards_prometheus checks in Prometheus).

    Summed per target first, so that the joins are between a few series per target, not
    10,000 monitors'. Both ends take each series' last sample (a failed scrape's stale
    markers skipped: a step that ends in the gap still shows the runs before it), and a group
    absent one step ago counts from 0 if the target was scraped then (the first status of that
    name appeared), else from itself (Prometheus had not seen the target).
    """
    by = f"job, instance, {label}"
    now = f"sum by({by})(last_over_time({metric}{{{selector}}}[$__rate_interval]))"
    before = (
        f"sum by({by})(last_over_time({metric}{{{selector}}}[$__rate_interval] offset $__interval))"
    )
    up = (
        'max_over_time(up{job=~"$job", instance=~"$instance"}[$__rate_interval] offset $__interval)'
    )
    return (
        f"sum by({label})(max by(job, {label})(clamp_min("
        f"{now} - ({before} or ({now} * 0 and on(job, instance) ({up} == 1)) or {now}), 0)))"
    )


def test_run_counters_count_each_run_once(dashboard: dict[str, Any]) -> None:
    """increase(x[$__rate_interval]) at a step of $__interval counts a run in every bar whose
    window covers it (the windows overlap), and extrapolates fractions; the change of the
    counter over exactly one step counts it once at any zoom."""
    selector = 'job=~"$job", instance=~"$instance"'
    if dashboard["uid"] == "integration-monitor-monitor":
        selector += ', integration_key="$integration_key"'
    used = set()
    for panel, target in targets(dashboard):
        expr = target["expr"]
        for metric in RUN_COUNTERS:
            if metric not in metric_names(expr):
                continue
            used.add(metric)
            where = f"{panel['title']}: {expr}"
            assert not re.search(r"\b(rate|irate|increase)\(", expr), where
            label = "operation" if metric.endswith("objects_total") else "status"
            assert expr == counted_once(metric, selector, label), where
            assert target["range"] and not target["instant"], where
            custom = panel["fieldConfig"]["defaults"]["custom"]
            assert custom["drawStyle"] == "bars", where
            # The value at t counts the step (t - $__interval, t]: the bar is drawn before t.
            assert custom["barAlignment"] == -1, where
            # Grafana sends $__interval as the step only while no query sets its own min step
            # or resolution (pkg/tsdb/prometheus/models/query.go).
            assert "interval" not in target and "intervalFactor" not in target, where
    assert "integration_monitor_runs_total" in used
    assert "integration_monitor_objects_total" in used


def test_per_monitor_series_are_aggregated_by_job_never_by_instance(
    dashboard: dict[str, Any],
) -> None:
    """Like the alerting rules: one answer per job and monitor, whatever the replicas."""
    for panel, target in targets(dashboard):
        expr = target["expr"]
        per_monitor = {
            n for n in metric_names(expr) if n not in RECORDED and not SERVICE_LEVEL.match(n)
        }
        if not per_monitor:
            continue
        where = f"{panel['title']}: {expr}"
        # max: replicas report the same values (a sum would count them twice); the histogram's
        # quantile is a ratio, the same for one replica's buckets or the sum of identical ones.
        assert re.search(r"\bmax by\(job\b|histogram_quantile\(.*\bsum by\(job, le\)", expr), where
        for match in re.finditer(r"\bby\s*\(([^)]*)\)", expr):
            if "instance" in match.group(1):
                # Run counters are summed per target first, then max across its instances.
                inner = re.fullmatch(r"job, instance, (\w+)", match.group(1))
                assert inner and f"max by(job, {inner.group(1)})(" in expr, where


def test_only_lean_series_and_labels(dashboard: dict[str, Any]) -> None:
    text = json.dumps(dashboard)
    for name in REMOVED:
        assert not re.search(rf"\b{name}\b", text), name
    for expr in all_exprs(dashboard):
        assert not re.search(r"\bkey\s*(=|!=|=~|!~)", expr), expr
        assert "key" not in grouping_labels(expr), expr
    assert "var-key=" not in text and "fields.key}" not in text


def test_refresh_at_most_every_minute(dashboard: dict[str, Any]) -> None:
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def parse(text: str) -> int:
        return int(text[:-1]) * seconds[text[-1]]

    assert parse(dashboard["refresh"]) >= 60
    assert all(parse(r) >= 60 for r in dashboard["timepicker"]["refresh_intervals"])


def test_every_metric_is_documented_and_used_with_its_labels(dashboard: dict[str, Any]) -> None:
    documented = documented_metrics()
    assert len(documented) > 20, "docs/metrics.md's tables were not found"

    def labels_of(name: str) -> set[str]:
        for pattern, labels in documented.items():
            if fnmatch.fnmatchcase(name, pattern):
                return labels
        raise AssertionError(f"{name} is not in docs/metrics.md")

    for expr in all_exprs(dashboard):
        names = metric_names(expr)
        assert names, expr
        allowed: set[str] = set()
        for name in names:
            allowed |= labels_of(name)
        for metric, matchers in selectors(expr):
            assert set(matchers) <= labels_of(metric), f"{metric} has no such label: {expr}"
        allowed |= made_labels(expr)
        assert grouping_labels(expr) <= allowed, f"grouping by an unknown label: {expr}"


def test_metric_name_parser() -> None:
    expr = (
        'time() - max by(key)(a_b{job=~"$job", x="rate(y[5m])"}) * on(key) group_left(name) '
        "histogram_quantile(0.99, sum by(le)(rate(c_bucket[$__rate_interval]))) > 1e3 and up"
    )
    assert metric_names(expr) == {"a_b", "c_bucket", "up"}
    assert grouping_labels(expr) == {"key", "name", "le"}
    recorded = 'label_replace(job:x:max{job=~"$job"}, "dst", "$1", "src", "(.*)")'
    assert metric_names(recorded) == {"job:x:max"}
    assert metric_names("a - a offset $__interval or b offset ${__interval}") == {"a", "b"}
    assert made_labels(recorded) == {"dst"}


def test_variables_referenced_are_defined(dashboard: dict[str, Any]) -> None:
    defined = set(variables(dashboard)) | BUILTIN_VARIABLES
    text = json.dumps({k: v for k, v in dashboard.items() if k != "templating"})
    text += json.dumps([variable_query(v) for v in variables(dashboard).values() if "query" in v])
    assert referenced_variables(text) <= defined


def test_service_url_variable_defaults_to_the_local_service(dashboard: dict[str, Any]) -> None:
    service_url = variables(dashboard)["service_url"]
    assert service_url["type"] in ("textbox", "constant")
    assert service_url["query"] == "http://localhost:9812"


def test_links_point_at_shipped_dashboards(dashboard: dict[str, Any]) -> None:
    text = json.dumps(dashboard)
    for uid in re.findall(r"/d/([\w-]+)", text):
        assert uid in EXPECTED_UIDS.values()


def test_alert_links_open_the_monitor_dashboard_on_its_variables() -> None:
    """The shipped alerts link to /d/<uid>?var-<name>=...: the uid and every variable exist."""
    rules = (ROOT / "rules" / "integration-monitor.rules.yml").read_text(encoding="utf-8")
    links = re.findall(r"/d/([\w-]+)\?([^\n]+)", rules)
    assert links, "the rules link no dashboard"
    for uid, query in links:
        [path] = [GRAFANA / "dashboards" / name for name, u in EXPECTED_UIDS.items() if u == uid]
        names = set(re.findall(r"(?:^|&)var-(\w+)=", query))
        assert names and names <= set(variables(load(path))), (uid, query)
    assert any(
        uid == "integration-monitor-monitor" and "var-integration_key=" in query
        for uid, query in links
    )


def overview_tables() -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in data_panels(load(OVERVIEW)) if p["type"] == "table"}


# Not ok: error or notcalculated (one series per state, the current one 1).
ACTIVE_NOT_OK = (
    ' and on(job, integration_key) (integration_monitor_alert_status{job=~"$job", '
    'instance=~"$instance", status="ok"} == 0)'
)


@pytest.mark.parametrize("title", ["Needs attention", "All monitors"])
def test_overview_monitor_tables(title: str) -> None:
    """Instant table queries, one row per (job, integration_key), merged; errors sorted first,
    paginated; each row links to the status page and the drill-down of its job and key."""
    table = overview_tables()[title]
    refs = {t["refId"] for t in table["targets"]}
    for target in table["targets"]:
        assert target["instant"] and target["format"] == "table", target["refId"]
        assert re.search(r"\bby\(job, integration_key\b", target["expr"]), target["expr"]
    exprs = " ".join(t["expr"] for t in table["targets"])
    for metric in ("integration_monitor_info", "integration_monitor_alert_status",
                   "integration_monitor_last_run_info"):  # fmt: skip
        assert metric in exprs
    # A monitor that never ran counts from its creation, as the staleness rule does.
    assert (
        "time() - max by(job, integration_key)(integration_monitor_last_run_start_timestamp_seconds"
        '{job=~"$job", instance=~"$instance"} or integration_monitor_created_timestamp_seconds'
    ) in exprs
    transformations = {t["id"]: t["options"] for t in table["transformations"]}
    assert list(transformations) == ["merge", "organize"]
    organize = transformations["organize"]
    named = set(organize["excludeByName"]) | set(organize["renameByName"])
    for name in named:
        if name.startswith("Value #"):
            assert name.removeprefix("Value #") in refs, name
    renamed = organize["renameByName"]
    assert {"job": "Job", "integration_key": "Key", "status": "Alert status"}.items() <= (
        renamed.items()
    )
    assert "instance" not in renamed and "instance" not in grouping_labels(exprs)
    # The alert status and the latest run's status are both `status`: merging on it would
    # join the wrong rows, so the latter is renamed in PromQL.
    assert '"run_status", "$1", "status", "(.*)"' in exprs
    options = table["options"]
    assert options["footer"]["enablePagination"] is True
    assert options["sortBy"][0] == {"displayName": "Alert status", "desc": False}
    assert sorted(["ok", "notcalculated", "error"])[0] == "error"  # the sort puts errors first
    urls = [link["url"] for link in table["fieldConfig"]["defaults"]["links"]]
    assert "${service_url}/monitors/${__data.fields.integration_key}" in urls
    assert any(
        u.startswith("/d/integration-monitor-monitor/")
        and "var-integration_key=${__data.fields.integration_key}" in u
        and "var-job=${__data.fields.job}" in u
        for u in urls
    )


def test_needs_attention_holds_only_active_monitors_that_are_not_ok() -> None:
    """Every query of the default table is cut to the active monitors that are not ok, so at
    10,000 healthy monitors it returns nothing, not 10,000 rows per query."""
    table = overview_tables()["Needs attention"]
    for target in table["targets"]:
        expr = target["expr"]
        assert ACTIVE_NOT_OK in expr, expr
        assert 'integration_monitor_info{job=~"$job", instance=~"$instance", active="true"}' in (
            expr
        ), expr
    refs = {t["refId"] for t in table["targets"]}
    assert len(refs) >= 8, "the attention table has the details: reason, success, schedule"


def test_all_monitors_table_is_in_a_collapsed_row() -> None:
    """Grafana queries a collapsed row's panels only when it is opened."""
    dashboard = load(OVERVIEW)
    [row] = [p for p in dashboard["panels"] if p["type"] == "row" and p["title"] == "All monitors"]
    assert row["collapsed"] is True
    assert [p["title"] for p in row["panels"]] == ["All monitors"]
    assert dashboard["panels"][-1] is row


def test_overview_has_the_promised_panels() -> None:
    dashboard = load(OVERVIEW)
    by_title = {p["title"]: p for p in data_panels(dashboard)}
    # Status counts read the per-status gauge (3 series per instance), never per-monitor series.
    for title, status in (("In error", "error"), ("OK", "ok"), ("Not calculated", "notcalculated")):
        [target] = by_title[title]["targets"]
        assert target["expr"] == (
            'sum(max by(job)(integration_monitor_monitors{job=~"$job", instance=~"$instance", '
            f'status="{status}"}}))'
        )
    assert by_title["Inactive"]["targets"][0]["expr"] == (
        "sum(max by(job)(integration_monitor_monitors_inactive"
        '{job=~"$job", instance=~"$instance"}))'
    )
    assert by_title["Active monitors"]["targets"][0]["expr"] == (
        'sum(max by(job, status)(integration_monitor_monitors{job=~"$job", instance=~"$instance"}))'
    )
    assert (
        "integration_monitor_monitors{"
        in by_title["Monitors by alert status"]["targets"][0]["expr"]
    )
    [quantiles] = by_title["Run duration quantiles"]["targets"]
    assert quantiles["expr"] == (
        'job:integration_monitor_last_run_duration_seconds:quantile{job=~"$job"}'
    )
    assert "{{quantile}}" in quantiles["legendFormat"]
    exprs = " ".join(t["expr"] for _, t in targets(dashboard))
    assert "_bucket" not in exprs, "the histogram is off by default; the overview never needs it"
    assert "time() - integration_monitor_evaluation_last_timestamp_seconds{" in exprs
    assert "sum by(outcome)(rate(integration_monitor_reports_received_total{" in exprs
    assert "up{" in exprs
    for title in ("Runs by status", "Objects created, updated, deleted"):
        assert by_title[title]["interval"] == "1m", "at most one point per minute over all monitors"


def test_monitor_run_duration_falls_back_to_the_latest_run() -> None:
    """The histogram where present (and where runs happened), else the latest run's gauge,
    which keeps its value between runs: never NaN (NaN >= 0 is false, so `or` replaces it)."""
    by_title = {p["title"]: p for p in data_panels(load(MONITOR))}
    first, *rest = by_title["Run duration"]["targets"]
    expr = first["expr"]
    assert expr.startswith("label_replace(histogram_quantile(0.5, sum by(job, le)(rate(")
    assert ") >= 0, " in expr
    assert (
        " or on(job) label_replace(max by(job)(integration_monitor_last_run_duration_seconds{"
        in (expr)
    )
    assert first["legendFormat"] == "{{source}}"
    for target in rest:
        assert target["expr"].endswith(" >= 0"), target["expr"]


def test_provisioning_points_at_the_dashboards() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text(encoding="utf-8")
    )
    [prometheus] = datasources["datasources"]
    assert prometheus["type"] == "prometheus"
    assert prometheus["uid"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "integration-monitor.yaml").read_text(
            encoding="utf-8"
        )
    )
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def load_make_export() -> Any:
    spec = importlib.util.spec_from_file_location("make_export", GRAFANA / "make_export.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_is_what_make_export_generates() -> None:
    expected = load_make_export().expected_exports()
    assert sorted(expected) == EXPORT_FILES, "run: python grafana/make_export.py"
    for path, text in expected.items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name}: run make_export.py"


@pytest.mark.parametrize("path", EXPORT_FILES, ids=lambda p: p.name)
def test_export_asks_for_a_prometheus_datasource(path: Path) -> None:
    export = load(path)
    assert [i["name"] for i in export["__inputs"]] == ["DS_PROMETHEUS"]
    assert export["__inputs"][0]["pluginId"] == "prometheus"
    required = {(r["type"], r["id"]) for r in export["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "prometheus")} <= required
    assert {("panel", p["type"]) for p in data_panels(export)} <= required
    assert "id" not in export
    assert variables(export)["datasource"]["current"]["value"] == "${DS_PROMETHEUS}"
    assert set(re.findall(r"\$\{(DS_\w+)\}", json.dumps(export))) == {"DS_PROMETHEUS"}
