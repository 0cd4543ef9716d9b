"""The shipped alerting rules: promtool checks and unit tests, conventions, a real Prometheus."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.support import ROOT
from tests.support.processes import Processes, binary, serve_in_thread, start_prometheus, wait_for

RULES_DIR = ROOT / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
TEST_FILES = sorted(RULES_DIR.glob("*.test.yml"))
GENERATOR = RULES_DIR / "make_tests.py"
METRICS_DOC = ROOT / "docs" / "metrics.md"
ALERTING_DOC = ROOT / "docs" / "alerting.md"
MONITOR_DASHBOARD = ROOT / "grafana" / "dashboards" / "integration-monitor-monitor.json"
# Labels (target or external), not metrics: base URLs for the links.
URL_LABELS = {
    "integration_monitor_url",
    "integration_monitor_grafana_url",
    "integration_monitor_docs_url",
}
# Removed by the lean exposition: a rule that still reads them never fires.
REMOVED = {
    "integration_monitor_active",
    "integration_monitor_alert_timestamp_seconds",
    "integration_monitor_last_run_status",
}
# The kinds of test every alert has (see rules/make_tests.py).
KINDS = ("firing", "quiet", "short", "gap", "restart", "rename", "replicas")
# Per-monitor alerts end with this aggregation: instance away, team and severity kept.
MONITOR_AGGREGATION = "max by (job, integration_key, team, severity) ("


def _run(args: list[str]) -> str:
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    print(output)
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{output}"
    return output


def _groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in RULE_FILES:
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return groups


def _tests() -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = []
    for path in TEST_FILES:
        tests.extend(yaml.safe_load(path.read_text())["tests"])
    return tests


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rules_make_tests", GENERATOR)
    assert spec and spec.loader, GENERATOR
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up by name while they are created.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ALERTS = [rule for group in _groups() for rule in group["rules"] if "alert" in rule]
RECORDS = [rule for group in _groups() for rule in group["rules"] if "record" in rule]
PER_MONITOR = [alert for alert in ALERTS if "integration_key" in alert["expr"]]


def _alert_ids(alerts: list[dict[str, Any]]) -> list[str]:
    return [alert["alert"] for alert in alerts]


def test_rule_and_test_files_exist() -> None:
    assert RULE_FILES, f"no *.rules.yml in {RULES_DIR}"
    assert TEST_FILES, f"no *.test.yml in {RULES_DIR}"
    assert ALERTS, "the rule files define no alerts"
    assert len(PER_MONITOR) >= 5, "the per-monitor alerts are not recognised"


def test_promtool_check_rules() -> None:
    _run([binary("promtool"), "check", "rules", *map(str, RULE_FILES)])


def test_promtool_test_rules() -> None:
    output = _run([binary("promtool"), "test", "rules", *map(str, TEST_FILES)])
    assert "SUCCESS" in output


def test_generated_rule_tests_are_up_to_date() -> None:
    """The test file is what rules/make_tests.py writes: run it after changing either."""
    [written] = TEST_FILES
    assert written.read_text(encoding="utf-8") == _generator().document(), (
        "run: python rules/make_tests.py"
    )


@pytest.mark.parametrize("alert", ALERTS, ids=_alert_ids(ALERTS))
def test_alert_follows_mixin_conventions(alert: dict[str, Any]) -> None:
    assert re.fullmatch(r"IntegrationMonitor(?:[A-Z][a-z0-9]+)+", alert["alert"])
    assert alert.get("for"), "every alert states its for: duration"
    assert alert.get("keep_firing_for"), "a stale gap must not resolve and re-fire the alert"
    severity = str(alert.get("labels", {}).get("severity", ""))
    default = re.fullmatch(
        r"\{\{ if \$labels\.severity \}\}\{\{ \$labels\.severity \}\}"
        r"\{\{ else \}\}(critical|warning)\{\{ end \}\}|(critical|warning)",
        severity,
    )
    assert default, f"severity is critical or warning, or the monitor's override: {severity!r}"
    annotations = alert.get("annotations", {})
    for name in ("summary", "description", "link", "runbook_url", "dashboard_url"):
        assert str(annotations.get(name, "")).strip(), f"annotation {name} missing or empty"
    assert "{{" not in annotations["summary"], "summary is static; details go in description"


@pytest.mark.parametrize("alert", ALERTS, ids=_alert_ids(ALERTS))
def test_runbook_url_is_a_section_of_the_alerting_doc(alert: dict[str, Any]) -> None:
    runbook = alert["annotations"]["runbook_url"]
    assert "/alerting.md#" in runbook
    anchor = runbook.rsplit("#", 1)[1].strip()
    assert anchor == alert["alert"].lower()
    headings = re.findall(r"^#+ (\S+)\s*$", ALERTING_DOC.read_text(), re.MULTILINE)
    assert alert["alert"] in headings, f"docs/alerting.md has no heading {alert['alert']}"


@pytest.mark.parametrize("alert", PER_MONITOR, ids=_alert_ids(PER_MONITOR))
def test_per_monitor_alert_identity_and_links(alert: dict[str, Any]) -> None:
    """Stable labels (no instance, no name), active monitors only, links to the monitor."""
    expr = " ".join(alert["expr"].split())
    assert expr.startswith(MONITOR_AGGREGATION), "instance must be aggregated away last"
    assert 'integration_monitor_info{active="true"}' in expr, "inactive monitors alert"
    assert "group_left (team, severity)" in expr
    assert "name" not in alert.get("labels", {})
    assert not re.search(r"\bby \([^)]*\bname\b", expr), "the name must not be an alert label"
    annotations = alert["annotations"]
    assert "/monitors/{{ $labels.integration_key }}" in annotations["link"]
    dashboard = annotations["dashboard_url"]
    uid = yaml.safe_load(MONITOR_DASHBOARD.read_text())["uid"]
    assert f"/d/{uid}?" in dashboard
    assert "var-integration_key={{ $labels.integration_key | urlquery }}" in dashboard


def test_every_alert_is_tested_in_every_kind() -> None:
    """Each alert has a test per kind, named "<alert> <kind>: ...", that evaluates it."""
    names = set(_alert_ids(ALERTS))
    found: set[tuple[str, str]] = set()
    for test in _tests():
        match = re.match(r"(IntegrationMonitor\w+) (\w+):", test.get("name", ""))
        if not match:
            continue
        alert, kind = match.groups()
        evaluated = {case["alertname"] for case in test.get("alert_rule_test") or []}
        assert alert in evaluated, f"test {test['name']!r} never evaluates {alert}"
        found.add((alert, kind))
    missing = {(a, k) for a in names for k in KINDS} - found
    assert missing == set(), f"alerts not tested in these kinds: {sorted(missing)}"


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = [case for test in _tests() for case in test.get("alert_rule_test") or []]
    names = set(_alert_ids(ALERTS))
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert names - firing == set(), "alerts never expected to fire in a test"
    assert names - quiet == set(), "alerts never expected to stay quiet in a test"
    # promtool accepts any alertname, so a typo would pass as "not firing".
    assert (firing | quiet) - names == set(), "tests name alerts that the rules do not define"


def test_scenarios_cover_paging_once_flapping_and_custom_running() -> None:
    names = " | ".join(test["name"] for test in _tests() if test["name"].startswith("scenario"))
    for scenario in ("stale monitor", "fails every other run", "custom running status"):
        assert scenario in names, f"no scenario test about a {scenario}: {names}"


def test_recording_rules_of_the_dashboards() -> None:
    records = {(rule["record"], rule.get("labels", {}).get("quantile")) for rule in RECORDS}
    quantiles = "job:integration_monitor_last_run_duration_seconds:quantile"
    assert records == {
        (quantiles, "0.5"),
        (quantiles, "0.9"),
        (quantiles, "0.99"),
        ("job:integration_monitor_monitors:max", None),
    }
    tested = {test["expr"] for case in _tests() for test in case.get("promql_expr_test") or []}
    assert {record for record, _ in records} <= tested, "a recording rule has no promtool test"


def test_rules_use_only_documented_metrics() -> None:
    documented = set(re.findall(r"`(integration_monitor_[a-z0-9_]+)`", METRICS_DOC.read_text()))
    documented |= {
        f"integration_monitor_{short}"
        for short in re.findall(r"^\| `([a-z0-9_]+)`", METRICS_DOC.read_text(), re.MULTILINE)
    }
    used: set[str] = set()
    for rule in ALERTS + RECORDS:
        text = rule["expr"] + "".join(rule.get("annotations", {}).values())
        used |= set(re.findall(r"\bintegration_monitor_[a-z0-9_]+", text))
    assert used & REMOVED == set(), "rules read series the lean exposition removed"
    assert used - URL_LABELS - documented == set(), f"not in {METRICS_DOC.name}"


def test_rules_match_on_integration_key_not_key() -> None:
    for rule in ALERTS + RECORDS:
        assert not re.search(r"[({,]\s*key\s*[,)=]", rule["expr"]), rule.get("alert")


# --- A real Prometheus: the external labels that promtool 2.42 cannot set ------------------

EXPOSITION = (
    b"# TYPE integration_monitor_info gauge\n"
    b'integration_monitor_info{integration_key="crm",name="CRM sync",type="batch",'
    b'active="true",team="crm"} 1\n'
    b"# TYPE integration_monitor_alert_reason gauge\n"
    b'integration_monitor_alert_reason{integration_key="crm",reason="last_run_failed"} 1\n'
)


class _MetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(EXPOSITION)))
        self.end_headers()
        self.wfile.write(EXPOSITION)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def metrics_server() -> Iterator[str]:
    """A stand-in for the service's /metrics with one monitor in error: its host:port."""
    with serve_in_thread(_MetricsHandler) as url:
        yield url.removeprefix("http://")


def test_links_in_a_real_prometheus(tmp_path: Path, metrics_server: str) -> None:
    """External labels give the base URLs; the target label overrides the service's."""
    config = {
        "global": {
            "scrape_interval": "1s",
            "evaluation_interval": "1s",
            "external_labels": {
                "integration_monitor_url": "https://external.example.com/",
                "integration_monitor_grafana_url": "https://grafana.example.com/",
                "integration_monitor_docs_url": "https://docs.example.com/im/",
            },
        },
        "rule_files": [str(path) for path in RULE_FILES],
        "scrape_configs": [
            {
                "job_name": "integration-monitor",
                "static_configs": [{"targets": [metrics_server]}],
            },
            {
                "job_name": "integration-monitor-b",
                "static_configs": [
                    {
                        "targets": [metrics_server],
                        "labels": {"integration_monitor_url": "https://b.example.com"},
                    }
                ],
            },
        ],
    }
    processes = Processes()
    try:
        prometheus = start_prometheus(processes, tmp_path, config)

        def errors_of_both_jobs() -> dict[str, dict[str, Any]]:
            alerts = {
                alert["labels"]["job"]: alert
                for alert in prometheus.alerts()
                if alert["labels"]["alertname"] == "IntegrationMonitorError"
            }
            assert len(alerts) >= 2, f"alerts so far: {alerts}"
            return alerts

        alerts = wait_for(
            "pending IntegrationMonitorError of both jobs", errors_of_both_jobs, 60, processes
        )
    finally:
        processes.stop()
    log = (tmp_path / "prometheus.log").read_text()
    links = {job: alert["annotations"]["link"] for job, alert in alerts.items()}
    assert links == {
        "integration-monitor": "https://external.example.com/monitors/crm",
        "integration-monitor-b": "https://b.example.com/monitors/crm",
    }, log
    first = alerts["integration-monitor"]
    assert first["labels"] == {
        "alertname": "IntegrationMonitorError",
        "job": "integration-monitor",
        "integration_key": "crm",
        "team": "crm",
        "severity": "warning",
    }
    assert first["annotations"]["dashboard_url"] == (
        "https://grafana.example.com/d/integration-monitor-monitor"
        "?var-job=integration-monitor&var-integration_key=crm"
    )
    assert first["annotations"]["runbook_url"] == (
        "https://docs.example.com/im/alerting.md#integrationmonitorerror"
    )
    assert (
        'Integration monitor "CRM sync" (crm) is in error (last run failed).'
        in (first["annotations"]["description"])
    )
