"""The compose stack in deploy/: files exist, configs pass promtool and amtool, wiring agrees.

No Docker engine is needed. Prometheus' config is checked in a temporary directory laid out
like the container's /etc/prometheus from the compose file's own mounts, so the check covers
the mounts as well as the config.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.support import ROOT
from tests.support.processes import Processes, binary, free_port, service_command, wait_for

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
RECEIVER = DEPLOY / "alertmanager" / "webhook_logger.py"
SERVICE_PORT = 9812


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def service(name: str) -> dict[str, Any]:
    services: dict[str, Any] = compose()["services"]
    assert name in services, f"no service {name} in deploy/compose.yaml"
    found: dict[str, Any] = services[name]
    return found


def bind_mounts(name: str) -> list[tuple[Path, str]]:
    """(host path, container path) of each bind mount of a service; named volumes left out."""
    mounts = []
    for volume in service(name).get("volumes", []):
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume["target"]
        else:
            source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append(((DEPLOY / source).resolve(), target))
    return mounts


def container_file(name: str, container_path: str) -> Path:
    """The host file that a service sees at `container_path`, through its bind mounts."""
    for host, target in sorted(bind_mounts(name), key=lambda m: -len(m[1])):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return host / os.path.relpath(container_path, target)
    raise AssertionError(f"{name}: nothing is mounted at {container_path}")


def env_file(name: str) -> dict[str, str]:
    values = {}
    for line in (DEPLOY / service(name)["env_file"]).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def prometheus_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        (DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    )
    return data


def test_compose_has_the_stack() -> None:
    data = compose()
    assert set(data["services"]) >= {"integration-monitor", "prometheus", "alertmanager", "grafana"}
    build = service("integration-monitor")["build"]
    assert (DEPLOY / build["context"]).resolve() == ROOT
    assert (ROOT / build.get("dockerfile", "Dockerfile")).is_file()
    named = {
        v.split(":")[0]
        for s in data["services"].values()
        for v in s.get("volumes", [])
        if isinstance(v, str) and not v.startswith((".", "/"))
    }
    assert named <= set(data.get("volumes") or {}), "a named volume is not declared"


def test_every_mounted_host_path_exists() -> None:
    for name, spec in compose()["services"].items():
        for host, target in bind_mounts(name):
            assert host.exists(), f"{name}: {host} (mounted at {target}) does not exist"
        if "env_file" in spec:
            assert (DEPLOY / spec["env_file"]).is_file(), f"{name}: env_file missing"


def test_service_ports_and_tokens() -> None:
    spec = service("integration-monitor")
    assert f"127.0.0.1:{SERVICE_PORT}:{SERVICE_PORT}" in spec["ports"]
    tokens = env_file("integration-monitor")
    assert set(tokens) >= {"IM_PUSH_TOKEN", "IM_READ_TOKEN", "IM_ADMIN_TOKEN"}
    assert len(set(tokens.values())) == len(tokens), "two roles share a token"


def test_the_image_config_accepts_the_stack_tokens() -> None:
    """deploy/config.docker.yaml with the env file's tokens is a valid config."""
    result = subprocess.run(
        [*service_command(), "check-config", "--config", str(DEPLOY / "config.docker.yaml")],
        capture_output=True,
        text=True,
        env={**os.environ, **env_file("integration-monitor")},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    roles = {role for token in effective["auth"]["tokens"] for role in token["roles"]}
    assert roles == {"push", "read", "admin"}
    assert effective["metrics"]["require_auth"] is True


def test_promtool_checks_the_prometheus_config_as_mounted(tmp_path: Path) -> None:
    """Lay out /etc/prometheus from the compose mounts, then `promtool check config` it."""
    etc = tmp_path / "etc" / "prometheus"
    etc.mkdir(parents=True)
    for host, target in bind_mounts("prometheus"):
        if not target.startswith("/etc/prometheus/"):
            continue
        local = etc / os.path.relpath(target, "/etc/prometheus")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.symlink_to(host, target_is_directory=host.is_dir())
    command = service("prometheus")["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    result = subprocess.run(
        [binary("promtool"), "check", "config", str(etc / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # The rule_files glob must find the shipped rules, not silently match nothing.
    shipped = sorted((ROOT / "rules").glob("*.rules.yml"))
    assert shipped, "no rules/*.rules.yml"
    for rules in shipped:
        assert rules.name in output, output


def test_prometheus_scrapes_the_service_with_the_read_token() -> None:
    config = prometheus_config()
    assert config["global"]["external_labels"]["integration_monitor_url"] == (
        f"http://localhost:{SERVICE_PORT}"
    )
    [job] = [j for j in config["scrape_configs"] if j["job_name"].startswith("integration-monitor")]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets == [f"integration-monitor:{SERVICE_PORT}"]
    authorization = job["authorization"]
    assert authorization.get("type", "Bearer") == "Bearer"
    in_container = "/etc/prometheus/" + authorization["credentials_file"]
    token = container_file("prometheus", in_container).read_text(encoding="utf-8").strip()
    assert token == env_file("integration-monitor")["IM_READ_TOKEN"]


def test_prometheus_alerts_to_the_alertmanager_service() -> None:
    [manager] = prometheus_config()["alerting"]["alertmanagers"]
    targets = [t for group in manager["static_configs"] for t in group["targets"]]
    assert targets == ["alertmanager:9093"]
    assert "127.0.0.1:9093:9093" in service("alertmanager")["ports"]


def test_amtool_checks_the_alertmanager_config() -> None:
    command = service("alertmanager")["command"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in command
    path = container_file("alertmanager", "/etc/alertmanager/alertmanager.yml")
    assert path == DEPLOY / "alertmanager" / "alertmanager.yml"
    result = subprocess.run(
        [binary("amtool"), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def alertmanager_config() -> dict[str, Any]:
    path = container_file("alertmanager", "/etc/alertmanager/alertmanager.yml")
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def test_alertmanager_groups_per_alert_job_and_team_not_per_monitor() -> None:
    route = alertmanager_config()["route"]
    assert route["group_by"] == ["alertname", "job", "team"]
    for each in [route, *route.get("routes", [])]:
        if "repeat_interval" in each:
            assert each["repeat_interval"].endswith("h"), each
        assert "integration_key" not in each.get("group_by", []), each


def test_inhibit_rules_stay_within_this_exporters_alerts() -> None:
    """Both sides match only IntegrationMonitor alerts; `equal` only on labels both carry."""
    per_monitor = {"job", "integration_key"}
    service = {"job"}
    service_alerts = ("ExporterDown", "ExporterAbsent", "CrashLooping", "Evaluation", "Reports")
    rules = alertmanager_config()["inhibit_rules"]
    assert rules
    for rule in rules:
        for side in ("source_matchers", "target_matchers"):
            matchers = " ".join(rule[side])
            assert 'alertname=~"IntegrationMonitor' in matchers or (
                'alertname="IntegrationMonitor' in matchers
            ), f"{side} not scoped to this exporter: {rule}"
        sides = " ".join(rule["source_matchers"] + rule["target_matchers"])
        carried = service if any(name in sides for name in service_alerts) else per_monitor
        assert set(rule["equal"]) <= carried, rule


def test_alerting_doc_shows_the_shipped_route_and_inhibit_rules() -> None:
    """docs/alerting.md documents the inhibit rules and grouping that are shipped, word for word."""
    text = (ROOT / "docs" / "alerting.md").read_text(encoding="utf-8")
    section = text.split("\n## Alertmanager\n", 1)[1]
    documented = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    shipped = alertmanager_config()
    assert documented["inhibit_rules"] == shipped["inhibit_rules"]
    assert documented["route"] == shipped["route"]


def test_prometheus_scrape_fits_ten_thousand_monitors() -> None:
    """About 20 series per monitor: 200,000 samples a scrape, with headroom, in time."""
    config = prometheus_config()
    [job] = [j for j in config["scrape_configs"] if j["job_name"].startswith("integration-monitor")]
    assert 200_000 * 1.2 <= job["sample_limit"] <= 200_000 * 3
    seconds = {"s": 1, "m": 60}

    def duration(text: str) -> int:
        return int(text[:-1]) * seconds[text[-1]]

    interval = duration(job.get("scrape_interval", config["global"]["scrape_interval"]))
    timeout = duration(job.get("scrape_timeout", config["global"].get("scrape_timeout", "10s")))
    assert 15 <= interval <= 60
    assert 10 <= timeout < interval


def test_alertmanager_webhook_reaches_the_example_receiver() -> None:
    config = yaml.safe_load(
        container_file("alertmanager", "/etc/alertmanager/alertmanager.yml").read_text(
            encoding="utf-8"
        )
    )
    urls = [w["url"] for r in config["receivers"] for w in r.get("webhook_configs", [])]
    assert urls
    receiver = service("alert-receiver")
    for url in urls:
        parts = urlsplit(url)
        assert parts.hostname == "alert-receiver"
        assert str(parts.port) in receiver["command"]


def test_grafana_gets_the_provisioning_and_dashboards() -> None:
    provisioning = container_file("grafana", "/etc/grafana/provisioning")
    assert provisioning == ROOT / "grafana" / "provisioning"
    providers = yaml.safe_load(
        (provisioning / "dashboards" / "integration-monitor.yaml").read_text(encoding="utf-8")
    )
    [provider] = providers["providers"]
    dashboards = container_file("grafana", provider["options"]["path"])
    assert dashboards == ROOT / "grafana" / "dashboards"
    assert sorted(dashboards.glob("*.json")), "no dashboards mounted"
    home = service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert container_file("grafana", home).is_file()
    datasources = yaml.safe_load(
        (provisioning / "datasources" / "prometheus.yaml").read_text(encoding="utf-8")
    )
    url = urlsplit(datasources["datasources"][0]["url"])
    assert url.hostname in compose()["services"] and url.port == 9090
    assert "127.0.0.1:3000:3000" in service("grafana")["ports"]


def test_example_receiver_prints_each_alert(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "receiver.log"
    payload = {
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "IntegrationMonitorError",
                    "severity": "critical",
                    "job": "integration-monitor",
                    "integration_key": "crm-sync",
                    "team": "crm",
                },
                "annotations": {
                    "summary": "An integration monitor is in error.",
                    "link": "http://localhost:9812/monitors/crm-sync",
                },
            }
        ],
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/alerts",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )

    def delivered() -> bool:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(response.status == 200)

    processes = Processes()
    try:
        process = processes.start(
            "the example receiver",
            [sys.executable, str(RECEIVER), "--port", str(port)],
            log,
            cwd=tmp_path,
        )
        wait_for("the receiver to take the alert", delivered, 20, processes)
        process.terminate()
        assert process.wait(timeout=15) == 0
    finally:
        processes.stop()
    assert (
        "FIRING IntegrationMonitorError [critical] job=integration-monitor "
        "integration_key=crm-sync team=crm "
        "An integration monitor is in error. http://localhost:9812/monitors/crm-sync"
    ) in log.read_text()
