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
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT
from tests.support.processes import Processes, binary, wait_for
from tests.support.processes import http as shared_http
from tests.support.service import free_port

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


def http(method: str, url: str, body: Any = None) -> Any:
    """This test's requests: a 5 s timeout, and a non-JSON answer (the /-/ready pages) as text."""
    return shared_http(method, url, body, timeout=5.0, allow_text=True)


# --- the webhook receiver -------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    received: float  # time.monotonic()
    payload: dict[str, Any]


class Receiver:
    """An Alertmanager webhook receiver on 127.0.0.1: every notification goes into a queue."""

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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def wait_for_alert(
        self, status: str, timeout: float, processes: Processes, poll: Callable[[], None]
    ) -> tuple[float, dict[str, Any]]:
        """The first alert ALERT for KEY with `status`: (time received, the alert)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            processes.check_alive()
            poll()
            try:
                notification = self.notifications.get(timeout=0.2)
            except queue.Empty:
                continue
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
        pytest.fail(
            f"timed out after {timeout:.0f}s waiting for a {status} {ALERT} for {KEY} at the "
            f"receiver; notifications so far: {seen}\n{processes.tails()}"
        )


# --- the stack ------------------------------------------------------------------------------


@dataclass
class Stack:
    service: str
    prometheus: str
    alertmanager: str
    processes: Processes

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        answer = http("GET", url)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def rule_states(self) -> set[str]:
        """States (pending, firing) of ALERT for KEY in Prometheus now."""
        alerts = http("GET", f"{self.prometheus}/api/v1/alerts")["data"]["alerts"]
        return {
            a["state"]
            for a in alerts
            if a["labels"].get("alertname") == ALERT and a["labels"].get("key") == KEY
        }

    def report(self, **batch: Any) -> None:
        http("POST", f"{self.service}/api/v1/monitors/{KEY}/batches", batch)


def write_configs(tmp: Path, ports: dict[str, int], receiver_url: str) -> None:
    service = {
        "evaluation": {"interval_seconds": 1},
        "monitors": [{"integration_key": KEY, "name": NAME, "type": "batch"}],
    }
    prometheus = {
        "global": {
            "scrape_interval": "1s",
            "scrape_timeout": "1s",
            "evaluation_interval": "1s",
            "external_labels": {"integration_monitor_url": f"http://127.0.0.1:{ports['service']}/"},
        },
        "rule_files": [str(RULES)],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}]}
            ]
        },
        "scrape_configs": [
            {
                "job_name": JOB,
                "static_configs": [{"targets": [f"127.0.0.1:{ports['service']}"]}],
            }
        ],
    }
    alertmanager = {
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
    for name, data in (
        ("config.yaml", service),
        ("prometheus.yml", prometheus),
        ("alertmanager.yml", alertmanager),
    ):
        (tmp / name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def stack(tmp_path: Path, receiver: Receiver) -> Iterator[Stack]:
    prometheus_bin = binary("prometheus")
    alertmanager_bin = binary("prometheus-alertmanager")
    assert RULES.exists(), f"{RULES} is missing"
    ports = {"service": free_port(), "prometheus": free_port(), "alertmanager": free_port()}
    write_configs(tmp_path, ports, receiver.url)
    processes = Processes()
    try:
        processes.start(
            "the service",
            [
                sys.executable,
                "-m",
                "exporter",
                "serve",
                "--config",
                str(tmp_path / "config.yaml"),
                "--port",
                str(ports["service"]),
                "--database",
                str(tmp_path / "im.db"),
            ],
            tmp_path / "service.log",
            cwd=ROOT,
        )
        processes.start(
            "alertmanager",
            [
                alertmanager_bin,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'alertmanager'}",
                f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            tmp_path / "alertmanager.log",
            cwd=tmp_path,
        )
        processes.start(
            "prometheus",
            [
                prometheus_bin,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                "--log.level=warn",
            ],
            tmp_path / "prometheus.log",
            cwd=tmp_path,
        )
        stack = Stack(
            f"http://127.0.0.1:{ports['service']}",
            f"http://127.0.0.1:{ports['prometheus']}",
            f"http://127.0.0.1:{ports['alertmanager']}",
            processes,
        )
        wait_for(
            "the service's /healthz",
            lambda: http("GET", f"{stack.service}/healthz")["status"] == "ok",
            START_TIMEOUT,
            processes,
        )
        wait_for(
            "Alertmanager to be ready",
            lambda: http("GET", f"{stack.alertmanager}/-/ready") is not None,
            START_TIMEOUT,
            processes,
        )
        wait_for(
            "Prometheus to be ready",
            lambda: http("GET", f"{stack.prometheus}/-/ready") is not None,
            START_TIMEOUT,
            processes,
        )
        wait_for(
            "Prometheus to load the rules",
            lambda: ALERT in json.dumps(http("GET", f"{stack.prometheus}/api/v1/rules")),
            START_TIMEOUT,
            processes,
        )
        wait_for(
            "Prometheus to find Alertmanager",
            lambda: http("GET", f"{stack.prometheus}/api/v1/alertmanagers")["data"][
                "activeAlertmanagers"
            ],
            START_TIMEOUT,
            processes,
        )
        wait_for(
            "a scrape of the monitor's alert status",
            lambda: stack.query(f'integration_monitor_alert_status{{key="{KEY}"}}'),
            START_TIMEOUT,
            processes,
        )
        yield stack
    finally:
        processes.stop()


def test_failed_report_fires_and_good_report_resolves(stack: Stack, receiver: Receiver) -> None:
    moments: dict[str, float] = {}

    def note_prometheus_states() -> None:
        for state in stack.rule_states():
            moments.setdefault(f"prometheus {state}", time.monotonic())

    assert stack.rule_states() == set()
    failed_at = time.monotonic()
    stack.report(logstatus="error", errormsg=ERRORMSG)
    fired_at, firing = receiver.wait_for_alert(
        "firing", FIRE_TIMEOUT, stack.processes, note_prometheus_states
    )

    labels, annotations = firing["labels"], firing["annotations"]
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
    resolved_at, resolved = receiver.wait_for_alert(
        "resolved", RESOLVE_TIMEOUT, stack.processes, lambda: None
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
