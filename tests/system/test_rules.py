"""The shipped alerting rules: promtool checks and unit tests, conventions, a real Prometheus."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT
from tests.support.processes import Processes, binary, serve_in_thread, start_prometheus, wait_for

RULES_DIR = ROOT / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
TEST_FILES = sorted(RULES_DIR.glob("*.test.yml"))
METRICS_DOC = ROOT / "docs" / "metrics.md"
# A label (target or external), not a metric: the base URL of the service for links.
URL_LABEL = "integration_monitor_url"


def _run(args: list[str]) -> None:
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    print(output)
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{output}"


def _alerts() -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            alerts.extend(rule for rule in group["rules"] if "alert" in rule)
    return alerts


def _alert_rule_tests() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            cases.extend(test.get("alert_rule_test") or [])
    return cases


ALERTS = _alerts()


def test_rule_and_test_files_exist() -> None:
    assert RULE_FILES, f"no *.rules.yml in {RULES_DIR}"
    assert TEST_FILES, f"no *.test.yml in {RULES_DIR}"
    assert ALERTS, "the rule files define no alerts"


def test_promtool_check_rules() -> None:
    _run([binary("promtool"), "check", "rules", *map(str, RULE_FILES)])


def test_promtool_test_rules() -> None:
    _run([binary("promtool"), "test", "rules", *map(str, TEST_FILES)])


@pytest.mark.parametrize("alert", ALERTS, ids=[a["alert"] for a in ALERTS])
def test_alert_follows_mixin_conventions(alert: dict[str, Any]) -> None:
    assert re.fullmatch(r"IntegrationMonitor(?:[A-Z][a-z0-9]+)+", alert["alert"])
    assert alert.get("for"), "every alert states its for: duration"
    assert alert.get("labels", {}).get("severity") in {"critical", "warning"}
    annotations = alert.get("annotations", {})
    for name in ("summary", "description", "link"):
        assert str(annotations.get(name, "")).strip(), f"annotation {name} missing or empty"
    assert "{{" not in annotations["summary"], "summary is static; details go in description"


def test_every_alert_is_tested_firing_and_quiet() -> None:
    names = {alert["alert"] for alert in ALERTS}
    firing = {case["alertname"] for case in _alert_rule_tests() if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in _alert_rule_tests() if not case.get("exp_alerts")}
    assert names - firing == set(), "alerts never expected to fire in a test"
    assert names - quiet == set(), "alerts never expected to stay quiet in a test"
    # promtool accepts any alertname, so a typo would pass as "not firing".
    assert (firing | quiet) - names == set(), "tests name alerts that the rules do not define"


def test_rules_use_only_documented_metrics() -> None:
    documented = set(re.findall(r"`(integration_monitor_[a-z0-9_]+)`", METRICS_DOC.read_text()))
    used: set[str] = set()
    for alert in ALERTS:
        text = alert["expr"] + "".join(alert.get("annotations", {}).values())
        used |= set(re.findall(r"\bintegration_monitor_[a-z0-9_]+", text))
    assert used - {URL_LABEL} - documented == set(), f"not in {METRICS_DOC.name}"


# --- A real Prometheus: the external label path that promtool 2.42 cannot test -------------

EXPOSITION = b"""\
# TYPE integration_monitor_info gauge
integration_monitor_info{key="crm",name="CRM sync",type="batch"} 1
# TYPE integration_monitor_active gauge
integration_monitor_active{key="crm"} 1
# TYPE integration_monitor_alert_status gauge
integration_monitor_alert_status{key="crm",status="notcalculated"} 0
integration_monitor_alert_status{key="crm",status="ok"} 0
integration_monitor_alert_status{key="crm",status="error"} 1
"""


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
    """The external label gives the base URL; a target label overrides it per target."""
    config = {
        "global": {
            "scrape_interval": "1s",
            "evaluation_interval": "1s",
            "external_labels": {URL_LABEL: "https://external.example.com/"},
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
                    {"targets": [metrics_server], "labels": {URL_LABEL: "https://b.example.com"}}
                ],
            },
        ],
    }
    processes = Processes()
    try:
        prometheus = start_prometheus(processes, tmp_path, config)

        def links_of_both_jobs() -> dict[str, str]:
            links = {
                alert["labels"]["job"]: alert["annotations"]["link"]
                for alert in prometheus.alerts()
                if alert["labels"]["alertname"] == "IntegrationMonitorError"
            }
            assert len(links) >= 2, f"links so far: {links}"
            return links

        links = wait_for(
            "pending IntegrationMonitorError of both jobs", links_of_both_jobs, 60, processes
        )
    finally:
        processes.stop()
    assert links == {
        "integration-monitor": "https://external.example.com/monitors/crm",
        "integration-monitor-b": "https://b.example.com/monitors/crm",
    }, (tmp_path / "prometheus.log").read_text()
