"""From a failed report to a notification: the service, Prometheus and Alertmanager, for real.

The service runs as `python -m exporter serve` on a temporary database and evaluates every
second; Prometheus scrapes it every second and evaluates the shipped rules; Alertmanager runs
the shipped deploy/alertmanager/alertmanager.yml (its receiver pointed at a webhook run by this
test, its group timers shortened) and sends there. A failed batch must reach the receiver as a
firing IntegrationMonitorError, and a good batch after it as the same alert resolved; five
monitors that fail together must make one notification, not five. With two replicas on one
PostgreSQL database, both scraped, they still make one notification listing each monitor once
(the rules aggregate `instance` away), not one per replica.

Two changes to the shipped files, for time only: the rules' `keep_firing_for: 10m` becomes 5s
(the promtool tests cover what it does), and Alertmanager's group_wait and group_interval are
seconds instead of minutes. The timings are printed (`pytest -s` shows them), not asserted:
they depend on the machine and on the rule's `for:` (1m), which dominates the time to fire.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT
from tests.support.postgres import Cluster
from tests.support.processes import (
    Processes,
    Prometheus,
    answers,
    binary,
    free_port,
    http,
    serve_in_thread,
    start_prometheus,
    wait_for,
)
from tests.support.service import Service

RULES = ROOT / "rules" / "integration-monitor.rules.yml"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
JOB = "integration-monitor"
KEY = "crm-sync"
NAME = "CRM sync"
# Five monitors of one team that fail together (a shared dependency is down).
TEAM = "erp"
TEAM_KEYS = [f"erp-{n}" for n in range(1, 6)]
# After the first notification of a group, how long no second one may come: several
# group_intervals, so a straggler would have been sent.
QUIET_AFTER = 10.0
ALERT = "IntegrationMonitorError"
ERRORMSG = "CRM API answered 502 Bad Gateway"
START_TIMEOUT = 60.0
# The rule waits `for: 1m`; scrape, rule evaluation and Alertmanager's group_wait come on top.
FIRE_TIMEOUT = 60.0 + 60.0
RESOLVE_TIMEOUT = 60.0


# --- the webhook receiver -------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    received: float  # time.monotonic()
    payload: dict[str, Any]


class Receiver:
    """What an Alertmanager webhook receiver got: every notification goes into a queue."""

    def __init__(self) -> None:
        self.notifications: queue.Queue[Notification] = queue.Queue()
        self.seen: list[Notification] = []
        notifications = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length))
                notifications.put(Notification(time.monotonic(), payload))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.handler = Handler
        self.url = ""  # set once it serves

    def alert(self, status: str) -> tuple[float, dict[str, Any]]:
        """The first alert ALERT for KEY with `status` that came since the last call:
        (time received, the alert). None came: AssertionError, with what came so far."""
        while not self.notifications.empty():
            notification = self.notifications.get_nowait()
            self.seen.append(notification)
            for alert in notification.payload.get("alerts", []):
                labels = alert.get("labels", {})
                if (
                    labels.get("alertname") == ALERT
                    and labels.get("integration_key") == KEY
                    and alert.get("status") == status
                ):
                    return notification.received, alert
        seen = json.dumps([n.payload for n in self.seen], indent=1)[-3000:]
        raise AssertionError(f"no {status} {ALERT} for {KEY} yet; notifications so far: {seen}")


# --- the stack ------------------------------------------------------------------------------


@dataclass
class Stack:
    service: str  # the first replica (the only one but in the two-replica tests)
    prometheus: Prometheus
    processes: Processes
    replicas: tuple[str, ...] = ()  # every replica's URL

    def rule_states(self) -> set[str]:
        """States (pending, firing) of ALERT for KEY in Prometheus now."""
        return {
            a["state"]
            for a in self.prometheus.alerts()
            if a["labels"].get("alertname") == ALERT and a["labels"].get("integration_key") == KEY
        }

    def report(self, key: str = KEY, **batch: Any) -> None:
        http("POST", f"{self.service}/api/v1/monitors/{key}/batches", batch)


def service_config() -> dict[str, Any]:
    team = [
        {"integration_key": key, "name": f"ERP import {key[-1]}", "type": "batch", "team": TEAM}
        for key in TEAM_KEYS
    ]
    return {
        "evaluation": {"interval_seconds": 1},
        "monitors": [{"integration_key": KEY, "name": NAME, "type": "batch"}, *team],
    }


def rules_for_the_test(tmp: Path) -> Path:
    """The shipped rules with keep_firing_for in seconds, so a resolve arrives in time."""
    text = RULES.read_text(encoding="utf-8")
    assert "keep_firing_for: 10m" in text
    rules = tmp / RULES.name
    rules.write_text(text.replace("keep_firing_for: 10m", "keep_firing_for: 5s"), "utf-8")
    return rules


def prometheus_config(
    service_ports: list[int], alertmanager_port: int, rules: Path
) -> dict[str, Any]:
    """Scraping every replica; the external link goes to the first."""
    service_port = service_ports[0]
    return {
        "global": {
            "scrape_interval": "1s",
            "scrape_timeout": "1s",
            "evaluation_interval": "1s",
            "external_labels": {"integration_monitor_url": f"http://127.0.0.1:{service_port}/"},
        },
        "rule_files": [str(rules)],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": JOB,
                "static_configs": [{"targets": [f"127.0.0.1:{port}" for port in service_ports]}],
            }
        ],
    }


def alertmanager_config(receiver_url: str) -> dict[str, Any]:
    """The shipped config: its webhooks sent to `receiver_url`, its group timers in seconds."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = receiver_url
    config["route"].update(group_wait="5s", group_interval="2s")
    return config


def start_alertmanager(processes: Processes, tmp: Path, receiver_url: str) -> int:
    """Alertmanager sending to `receiver_url`, once it is ready: its port."""
    port = free_port()
    config = tmp / "alertmanager.yml"
    config.write_text(yaml.safe_dump(alertmanager_config(receiver_url), sort_keys=False))
    processes.start(
        "alertmanager",
        [
            binary("prometheus-alertmanager"),
            f"--config.file={config}",
            f"--storage.path={tmp / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        tmp / "alertmanager.log",
        cwd=tmp,
    )
    url = f"http://127.0.0.1:{port}/-/ready"
    wait_for("Alertmanager to be ready", answers(url), START_TIMEOUT, processes)
    return port


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    with serve_in_thread(running.handler) as url:
        running.url = f"{url}/alerts"
        yield running


def start_stack(
    tmp_path: Path, receiver: Receiver, processes: Processes, replicas: list[Service]
) -> Stack:
    """Alertmanager, and Prometheus scraping `replicas`, once it evaluates the rules and has
    scraped the alert status of KEY from every replica."""
    alertmanager_port = start_alertmanager(processes, tmp_path, receiver.url)
    rules = rules_for_the_test(tmp_path)
    prometheus = start_prometheus(
        processes,
        tmp_path,
        prometheus_config([replica.port for replica in replicas], alertmanager_port, rules),
    )
    stack = Stack(replicas[0].url, prometheus, processes, tuple(r.url for r in replicas))
    wait_for(
        "Prometheus to load the rules",
        lambda: ALERT in json.dumps(http("GET", f"{prometheus.url}/api/v1/rules")),
        START_TIMEOUT,
        processes,
    )
    wait_for(
        "Prometheus to find Alertmanager",
        lambda: http("GET", f"{prometheus.url}/api/v1/alertmanagers")["data"][
            "activeAlertmanagers"
        ],
        START_TIMEOUT,
        processes,
    )
    wait_for(
        "a scrape of the monitor's alert status from every replica",
        lambda: (
            len(
                {
                    series["metric"]["instance"]
                    for series in prometheus.query(
                        f'integration_monitor_alert_status{{integration_key="{KEY}"}}'
                    )
                }
            )
            == len(replicas)
        ),
        START_TIMEOUT,
        processes,
    )
    return stack


@pytest.fixture
def stack(tmp_path: Path, receiver: Receiver) -> Iterator[Stack]:
    assert RULES.exists(), f"{RULES} is missing"
    processes = Processes()
    try:
        service = Service(
            tmp_path, yaml.safe_dump(service_config(), sort_keys=False), processes=processes
        )
        yield start_stack(tmp_path, receiver, processes, [service])
    finally:
        processes.stop()


@pytest.fixture
def two_replicas(tmp_path: Path, receiver: Receiver, postgres_cluster: Cluster) -> Iterator[Stack]:
    """The stack with two replicas of the service on one PostgreSQL database, both scraped."""
    database = postgres_cluster.database()
    processes = Processes()
    try:
        replicas = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            replicas.append(
                Service(
                    tmp_path / name,
                    yaml.safe_dump(service_config(), sort_keys=False),
                    processes=processes,
                    database=database,
                )
            )
        yield start_stack(tmp_path, receiver, processes, replicas)
    finally:
        processes.stop()


def test_failed_report_fires_and_good_report_resolves(stack: Stack, receiver: Receiver) -> None:
    moments: dict[str, float] = {}

    def firing() -> tuple[float, dict[str, Any]]:
        for state in stack.rule_states():
            moments.setdefault(f"prometheus {state}", time.monotonic())
        return receiver.alert("firing")

    assert stack.rule_states() == set()
    failed_at = time.monotonic()
    stack.report(logstatus="error", errormsg=ERRORMSG)
    fired_at, firing_alert = wait_for(
        f"a firing {ALERT} for {KEY} at the receiver", firing, FIRE_TIMEOUT, stack.processes
    )

    labels, annotations = firing_alert["labels"], firing_alert["annotations"]
    # Stable identity: no instance, no name (it is in the description); a single failed run
    # is a warning.
    assert labels == {
        "alertname": ALERT,
        "job": JOB,
        "integration_key": KEY,
        "severity": "warning",
        "integration_monitor_url": f"{stack.service}/",  # the external label, on every alert
    }
    description = " ".join(annotations["description"].split())
    assert f'"{NAME}" ({KEY}) is in error (last run failed).' in description
    assert annotations["link"] == f"{stack.service}/monitors/{KEY}"
    assert annotations["dashboard_url"].endswith(
        f"/d/integration-monitor-monitor?var-job={JOB}&var-integration_key={KEY}"
    )
    assert annotations["runbook_url"].endswith("/alerting.md#integrationmonitorerror")
    # The exact reason is the service's alert text, where the description and link point.
    monitor = http("GET", f"{stack.service}/api/v1/monitors/{KEY}")
    assert monitor["alertstatus"] == "error"
    assert monitor["alerttext"] == f"Last batch failed (error): {ERRORMSG}"

    good_at = time.monotonic()
    stack.report(logstatus="ok")
    resolved_at, resolved = wait_for(
        f"the {ALERT} for {KEY} resolved at the receiver",
        lambda: receiver.alert("resolved"),
        RESOLVE_TIMEOUT,
        stack.processes,
    )
    assert resolved["labels"] == labels
    assert http("GET", f"{stack.service}/api/v1/monitors/{KEY}")["alertstatus"] == "ok"

    timings = [
        *(
            (f"failed report -> {what}", moment - failed_at)
            for what, moment in sorted(moments.items(), key=lambda item: item[1])
        ),
        ("failed report -> firing at the receiver", fired_at - failed_at),
        ("good report -> resolved at the receiver", resolved_at - good_at),
    ]
    print(f"\n{ALERT} end to end (its for: is in {RULES.name}):")
    for what, seconds in timings:
        print(f"  {what:<42}{seconds:6.1f} s")


def one_team_notification(stack: Stack, receiver: Receiver) -> dict[str, Any]:
    """The one notification of TEAM's group, after QUIET_AFTER with no second one; checked to
    list each of TEAM_KEYS once, firing."""

    def team_notification() -> Notification:
        while not receiver.notifications.empty():
            receiver.seen.append(receiver.notifications.get_nowait())
        for notification in receiver.seen:
            if notification.payload.get("groupLabels", {}).get("team") == TEAM:
                return notification
        raise AssertionError(f"no notification for team {TEAM} yet")

    first = wait_for(
        f"the notification of team {TEAM}", team_notification, FIRE_TIMEOUT, stack.processes
    )
    time.sleep(QUIET_AFTER)
    while not receiver.notifications.empty():
        receiver.seen.append(receiver.notifications.get_nowait())
    ours = [n for n in receiver.seen if n.payload.get("groupLabels", {}).get("team") == TEAM]
    payloads = json.dumps([n.payload for n in ours], indent=1)[-3000:]
    assert len(ours) == 1, f"{len(ours)} notifications for one group: {payloads}"
    payload = first.payload
    assert payload["groupLabels"] == {"alertname": ALERT, "job": JOB, "team": TEAM}
    keys = sorted(alert["labels"]["integration_key"] for alert in payload["alerts"])
    assert keys == TEAM_KEYS, payloads
    assert {alert["status"] for alert in payload["alerts"]} == {"firing"}
    return payload


def test_five_failing_monitors_make_one_notification(stack: Stack, receiver: Receiver) -> None:
    """Grouped by alertname, job and team: one page for the team, listing the five monitors."""
    for key in TEAM_KEYS:
        stack.report(key, logstatus="error", errormsg="ERP database refuses connections")
    one_team_notification(stack, receiver)


def test_two_replicas_make_one_notification_not_one_per_replica(
    two_replicas: Stack, receiver: Receiver
) -> None:
    """The failed reports go to either replica; both replicas show all five monitors failing
    and Prometheus scrapes both, yet the team gets one page listing each monitor once."""
    stack = two_replicas
    for n, key in enumerate(TEAM_KEYS):
        replica = stack.replicas[n % len(stack.replicas)]
        http(
            "POST",
            f"{replica}/api/v1/monitors/{key}/batches",
            {"logstatus": "error", "errormsg": "ERP database refuses connections"},
        )
    payload = one_team_notification(stack, receiver)
    for alert in payload["alerts"]:
        assert "instance" not in alert["labels"], alert
    # Both replicas show the five failing to Prometheus: one page although two could page.
    failing = stack.prometheus.query(
        'integration_monitor_alert_status{integration_key=~"erp-.*", status="error"} == 1'
    )
    seen = sorted((s["metric"]["instance"], s["metric"]["integration_key"]) for s in failing)
    instances = sorted({instance for instance, _ in seen})
    assert len(instances) == len(stack.replicas), failing
    assert seen == [(i, key) for i in instances for key in TEAM_KEYS], seen


def test_shipped_inhibit_rules_in_a_real_alertmanager(tmp_path: Path, receiver: Receiver) -> None:
    """A stale monitor whose last run failed notifies once; other exporters are untouched.

    Alerts are posted straight to Alertmanager's API, as Prometheus would send them, so the
    shipped inhibit rules are checked in seconds instead of a stale interval.
    """
    monitor = {"job": JOB, "integration_key": KEY}
    sent = [
        {"alertname": "IntegrationMonitorNoRecentRun", "severity": "critical", **monitor},
        {"alertname": "IntegrationMonitorError", "severity": "warning", **monitor},
        # Another monitor's failed run: not stale, so not inhibited.
        {
            "alertname": "IntegrationMonitorError",
            "severity": "warning",
            "job": JOB,
            "integration_key": "other",
        },
        # Another exporter's warning with the same job label: outside the rules' scope.
        {"alertname": "DiskFilling", "severity": "warning", "job": JOB},
    ]
    processes = Processes()
    try:
        port = start_alertmanager(processes, tmp_path, receiver.url)
        api = f"http://127.0.0.1:{port}/api/v2/alerts"
        http("POST", api, [{"labels": labels} for labels in sent])

        def states() -> dict[tuple[str, str], str]:
            alerts = http("GET", api)
            found = {
                (a["labels"]["alertname"], a["labels"].get("integration_key", "")): a["status"][
                    "state"
                ]
                for a in alerts
            }
            assert len(found) == len(sent), found
            return found

        found = wait_for("Alertmanager to take the alerts", states, START_TIMEOUT, processes)
    finally:
        processes.stop()
    assert found == {
        ("IntegrationMonitorNoRecentRun", KEY): "active",
        ("IntegrationMonitorError", KEY): "suppressed",
        ("IntegrationMonitorError", "other"): "active",
        ("DiskFilling", ""): "active",
    }
