"""From a failed report to a notification: the service, Prometheus and Alertmanager, for real.

The service runs as `python -m exporter serve` on a temporary database and evaluates every
second; Prometheus scrapes it every second and evaluates the shipped rules file; Alertmanager
sends to a webhook receiver run by this test. A failed batch must reach the receiver as a firing
IntegrationMonitorError, and a good batch after it as the same alert resolved.

The timings are printed (`pytest -s` shows them), not asserted: they depend on the machine and
on the rule's `for:` (1m in the shipped rules), which dominates the time to fire.
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
JOB = "integration-monitor"
KEY = "crm-sync"
NAME = "CRM sync"
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
                    and labels.get("key") == KEY
                    and alert.get("status") == status
                ):
                    return notification.received, alert
        seen = json.dumps([n.payload for n in self.seen], indent=1)[-3000:]
        raise AssertionError(f"no {status} {ALERT} for {KEY} yet; notifications so far: {seen}")


# --- the stack ------------------------------------------------------------------------------


@dataclass
class Stack:
    service: str
    prometheus: Prometheus
    processes: Processes

    def rule_states(self) -> set[str]:
        """States (pending, firing) of ALERT for KEY in Prometheus now."""
        return {
            a["state"]
            for a in self.prometheus.alerts()
            if a["labels"].get("alertname") == ALERT and a["labels"].get("key") == KEY
        }

    def report(self, **batch: Any) -> None:
        http("POST", f"{self.service}/api/v1/monitors/{KEY}/batches", batch)


def service_config() -> dict[str, Any]:
    return {
        "evaluation": {"interval_seconds": 1},
        "monitors": [{"integration_key": KEY, "name": NAME, "type": "batch"}],
    }


def prometheus_config(service_port: int, alertmanager_port: int) -> dict[str, Any]:
    return {
        "global": {
            "scrape_interval": "1s",
            "scrape_timeout": "1s",
            "evaluation_interval": "1s",
            "external_labels": {"integration_monitor_url": f"http://127.0.0.1:{service_port}/"},
        },
        "rule_files": [str(RULES)],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{service_port}"]}]}
        ],
    }


def alertmanager_config(receiver_url: str) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "test",
            "group_by": ["alertname", "job", "key"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "test", "webhook_configs": [{"url": receiver_url, "send_resolved": True}]}
        ],
    }


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


@pytest.fixture
def stack(tmp_path: Path, receiver: Receiver) -> Iterator[Stack]:
    assert RULES.exists(), f"{RULES} is missing"
    processes = Processes()
    try:
        service = Service(
            tmp_path, yaml.safe_dump(service_config(), sort_keys=False), processes=processes
        )
        alertmanager_port = start_alertmanager(processes, tmp_path, receiver.url)
        prometheus = start_prometheus(
            processes, tmp_path, prometheus_config(service.port, alertmanager_port)
        )
        stack = Stack(service.url, prometheus, processes)
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
            "a scrape of the monitor's alert status",
            lambda: prometheus.query(f'integration_monitor_alert_status{{key="{KEY}"}}'),
            START_TIMEOUT,
            processes,
        )
        yield stack
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
    assert labels["key"] == KEY
    assert labels["name"] == NAME
    assert labels["severity"] == "critical"
    assert labels["job"] == JOB
    description = " ".join(annotations["description"].split())
    assert f'"{NAME}" ({KEY}) is in error' in description
    assert annotations["link"] == f"{stack.service}/monitors/{KEY}"
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
