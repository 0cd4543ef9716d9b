"""The compose stack in deploy/: files exist, configs pass their tools' checks, wiring agrees.

No Docker engine is needed. Prometheus' config is checked in a temporary directory laid out
like the container's /etc/prometheus from the compose file's own mounts, so the check covers
the mounts as well as the config. The profile `replicas` (two replicas on PostgreSQL behind a
proxy, and a Prometheus scraping each) is checked the same way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections import Counter
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from exporter.config import load_config, parse_config
from tests.support import ROOT
from tests.support.processes import (
    SYSTEM_DEPS_HINT,
    Processes,
    binary,
    free_port,
    service_command,
    wait_for,
)

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
RECEIVER = DEPLOY / "alertmanager" / "webhook_logger.py"
SERVICE_PORT = 9812
REPLICAS = ("integration-monitor-1", "integration-monitor-2")
REPLICAS_CONFIG = "/etc/integration-monitor/config.replicas.yaml"
PROXY_CONFIG = "/usr/local/etc/haproxy/haproxy.cfg"


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


def env_files(spec: dict[str, Any]) -> list[Path]:
    """The env_file of a service spec, one file or a list, as host paths."""
    names = spec.get("env_file", [])
    return [DEPLOY / each for each in ([names] if isinstance(names, str) else names)]


def env_file(name: str) -> dict[str, str]:
    """The variables a service gets from its env files, later files winning as in Compose."""
    values = {}
    for path in env_files(service(name)):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


def prometheus_config(name: str = "prometheus") -> dict[str, Any]:
    """The config that the Prometheus service `name` runs with, through its mounts."""
    path = container_file(name, "/etc/prometheus/prometheus.yml")
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def published(name: str) -> dict[int, int]:
    """Container port -> host port of each port a service publishes."""
    ports = {}
    for entry in service(name).get("ports", []):
        host, container = entry.rsplit(":", 2)[-2:]
        ports[int(container)] = int(host)
    return ports


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
        for path in env_files(spec):
            assert path.is_file(), f"{name}: env_file {path} missing"


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


@pytest.mark.parametrize("name", ["prometheus", "prometheus-replicas"])
def test_promtool_checks_the_prometheus_config_as_mounted(tmp_path: Path, name: str) -> None:
    """Lay out /etc/prometheus from the compose mounts, then `promtool check config` it."""
    etc = tmp_path / "etc" / "prometheus"
    etc.mkdir(parents=True)
    for host, target in bind_mounts(name):
        if not target.startswith("/etc/prometheus/"):
            continue
        local = etc / os.path.relpath(target, "/etc/prometheus")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.symlink_to(host, target_is_directory=host.is_dir())
    command = service(name)["command"]
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


# The profile `replicas`: PostgreSQL, two replicas behind a proxy, a Prometheus scraping each.


def profile(name: str) -> set[str]:
    return {s for s, spec in compose()["services"].items() if name in spec.get("profiles", [])}


def replicas_config() -> dict[str, Any]:
    path = container_file(REPLICAS[0], REPLICAS_CONFIG)
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def haproxy() -> str:
    """Debian's haproxy is in /usr/sbin, which a user's PATH may lack."""
    found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(found).exists():
        pytest.fail(f"haproxy is not installed: {SYSTEM_DEPS_HINT}", pytrace=False)
    return found


def haproxy_sections() -> dict[str, list[str]]:
    """'backend NAME' (etc.) -> its directives, one stripped line each, comments left out."""
    path = container_file("proxy", PROXY_CONFIG)
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].rstrip()
        if not text:
            continue
        if not text[0].isspace():
            current = sections.setdefault(" ".join(text.split()), [])
        else:
            current.append(" ".join(text.split()))
    return sections


def test_the_default_stack_has_no_profile_and_the_replicas_profile_the_rest() -> None:
    """`docker compose up` starts what it did; `--profile replicas` adds five services."""
    everything = set(compose()["services"])
    assert profile("replicas") == {"postgres", *REPLICAS, "proxy", "prometheus-replicas"}
    default = {s for s, spec in compose()["services"].items() if not spec.get("profiles")}
    assert default == everything - profile("replicas")
    assert default == {
        "integration-monitor",
        "prometheus",
        "alertmanager",
        "alert-receiver",
        "grafana",
    }


def test_published_ports_differ_so_the_profile_runs_beside_the_default_stack() -> None:
    """Services without a profile start with any profile, so no host port may be taken twice."""
    hosts = [port for name in compose()["services"] for port in published(name).values()]
    assert len(hosts) == len(set(hosts)), sorted(hosts)
    for name, spec in compose()["services"].items():
        for entry in spec.get("ports", []):
            assert entry.startswith("127.0.0.1:"), f"{name} publishes {entry} beyond loopback"


def test_postgres_has_a_volume_a_password_and_a_pg_isready_healthcheck() -> None:
    spec = service("postgres")
    assert spec["image"].startswith("postgres:")
    assert "ports" not in spec, "only the replicas reach PostgreSQL"
    env = env_file("postgres")
    assert set(env) >= {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD"}
    assert ("pg-data", "/var/lib/postgresql/data") in [
        tuple(v.split(":")[:2]) for v in spec["volumes"]
    ]
    check = spec["healthcheck"]["test"]
    assert check[:2] == ["CMD", "pg_isready"]
    assert check[check.index("-U") + 1] == env["POSTGRES_USER"]
    assert check[check.index("-d") + 1] == env["POSTGRES_DB"]


def test_replicas_run_the_service_image_with_the_replicas_config() -> None:
    single = service("integration-monitor")
    for name in REPLICAS:
        spec = service(name)
        assert spec["image"] == single["image"] and spec["build"] == single["build"]
        # The image's CMD names an SQLite file with --database, which would win over the URL.
        assert "--database" not in spec["command"]
        assert spec["command"][spec["command"].index("--config") + 1] == REPLICAS_CONFIG
        assert container_file(name, REPLICAS_CONFIG) == DEPLOY / "config.replicas.yaml"
        assert spec["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "ports" not in spec, "reports come through the proxy, scrapes from Prometheus"
        env = env_file(name)
        assert set(env) >= {"IM_PUSH_TOKEN", "IM_READ_TOKEN", "IM_ADMIN_TOKEN", "IM_DB_PASSWORD"}
        assert env["IM_DB_PASSWORD"] == env_file("postgres")["POSTGRES_PASSWORD"]


def test_the_replicas_config_names_the_postgres_service_with_the_password_from_env() -> None:
    database = replicas_config()["database"]
    assert "path" not in database, "database.path is ignored when database.url is set"
    url = urlsplit(database["url"])
    postgres = env_file("postgres")
    assert url.scheme == "postgresql"
    assert url.password == "${IM_DB_PASSWORD}", "the password is not written in the file"
    assert url.username == postgres["POSTGRES_USER"]
    assert url.path == "/" + postgres["POSTGRES_DB"]
    assert (url.hostname, url.port) == ("postgres", 5432)


def test_the_replicas_config_is_the_image_config_but_for_the_database() -> None:
    """Outside `database` it is config.docker.yaml, and valid with the stack's tokens."""
    image = yaml.safe_load((DEPLOY / "config.docker.yaml").read_text(encoding="utf-8"))
    replicas = {k: v for k, v in replicas_config().items() if k != "database"}
    assert replicas == {k: v for k, v in image.items() if k != "database"}
    config = parse_config(replicas, env=env_file(REPLICAS[0]))
    assert config.metrics.require_auth is True


def test_the_replicas_config_loads_and_check_config_hides_the_password() -> None:
    env = env_file(REPLICAS[0])
    password = env["IM_DB_PASSWORD"]
    database = load_config(DEPLOY / "config.replicas.yaml", env=env).database.model_dump()
    # The backend may keep the URL as a secret type; either way it holds the expanded password.
    url = database["url"]
    url = url.get_secret_value() if hasattr(url, "get_secret_value") else str(url)
    assert url.startswith("postgresql://") and f":{password}@postgres:5432/" in url
    assert (database["pool_size"], database["lease_seconds"]) == (10, 15)
    result = subprocess.run(
        [*service_command(), "check-config", "--config", str(DEPLOY / "config.replicas.yaml")],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert password not in result.stdout + result.stderr


def test_haproxy_checks_the_proxy_config_as_mounted() -> None:
    path = container_file("proxy", PROXY_CONFIG)
    assert path == DEPLOY / "proxy" / "haproxy.cfg"
    assert service("proxy")["image"].startswith("haproxy:")
    result = subprocess.run(
        [haproxy(), "-c", "-f", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Configuration file is valid" in output


def test_the_proxy_sends_round_robin_to_the_replicas_that_answer_readyz() -> None:
    sections = haproxy_sections()
    [frontend] = [v for k, v in sections.items() if k.startswith("frontend ")]
    [port] = published("proxy")
    assert f"bind :{port}" in frontend
    [default] = [d.split()[1] for d in frontend if d.startswith("default_backend ")]
    backend = sections[f"backend {default}"]
    assert "balance roundrobin" in backend
    assert "option httpchk" in backend
    assert "http-check send meth GET uri /readyz" in backend
    assert "http-check expect status 200" in backend
    defaults = [d.split()[1:] for d in backend if d.startswith("default-server ")]
    servers = [d.split()[1:] for d in backend if d.startswith("server ")]
    assert {address for _, address, *_ in servers} == {f"{r}:{SERVICE_PORT}" for r in REPLICAS}
    for server in servers:
        assert "check" in server or any("check" in d for d in defaults), server


def start_proxy(processes: Processes, directory: Path, replicas: dict[str, FakeReplica]) -> int:
    """Run the shipped haproxy.cfg on a free port, its servers pointed at `replicas`."""
    port = free_port()
    text = container_file("proxy", PROXY_CONFIG).read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(\s*bind) :\d+", rf"\1 127.0.0.1:{port}", text)
    for name, replica in replicas.items():
        text = text.replace(f"{name}:{SERVICE_PORT}", f"127.0.0.1:{replica.port}")
    config = directory / "haproxy.cfg"
    config.write_text(text, encoding="utf-8")
    processes.start(
        "haproxy", [haproxy(), "-db", "-f", str(config)], directory / "haproxy.log", directory
    )
    wait_for("the proxy to listen", lambda: listening(port), 30, processes)
    return port


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def send_report(port: int, **headers: str) -> tuple[int, Message, bytes]:
    """POST one report through the proxy (headers as keywords, `_` for `-`).

    Returns the answer's status, headers (names in any case) and body.
    """
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/monitors/crm-sync/batches",
        data=b"{}",
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


class FakeReplica:
    """Answers /readyz with 200 while `ready`, else 503, and 202 to any report; counts both.

    With `drops`, it reads each report and closes the connection unanswered, as a replica
    killed in the middle of a request would.
    """

    def __init__(self, ready: bool, drops: bool = False) -> None:
        self.ready = ready
        self.seen: Counter[str] = Counter()  # "ready", "not ready", "report", "dropped"
        lock = threading.Lock()
        replica = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer = "ready" if replica.ready else "not ready"
                with lock:
                    replica.seen[answer] += 1
                self.send_response(200 if replica.ready else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    replica.seen["dropped" if drops else "report"] += 1
                if drops:
                    self.close_connection = True
                    return
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_proxy_sends_no_report_to_a_replica_that_is_not_ready(tmp_path: Path) -> None:
    """The shipped haproxy.cfg, run with the replicas' addresses pointed at two fake replicas.

    1. Neither is ready (/readyz 503): once both are checked down, the proxy answers 503 with
       Retry-After and the API's error body, as a replica would.
    2. One turns ready: once checked up, every report goes to it.
    3. The other turns ready: once checked up, reports alternate between the two.
    """
    replicas = {name: FakeReplica(ready=False) for name in REPLICAS}
    first, second = replicas.values()
    processes = Processes()
    try:
        port = start_proxy(processes, tmp_path, replicas)
        # Down after `fall` (2) failed checks: a third one comes only once it is down.
        for replica in replicas.values():
            wait_for("checked down", lambda r=replica: r.seen["not ready"] >= 3, 30, processes)
        status, headers, body = send_report(port)
        assert (status, headers.get("Retry-After")) == (503, "5")
        assert json.loads(body)["error"]["code"] == "unavailable"
        first.ready = True
        wait_for("checked up", lambda: first.seen["ready"] >= 3, 30, processes)
        assert [send_report(port)[0] for _ in range(10)] == [202] * 10
        assert (first.seen["report"], second.seen["report"]) == (10, 0)
        second.ready = True
        wait_for("checked up", lambda: second.seen["ready"] >= 3, 30, processes)
        assert [send_report(port)[0] for _ in range(10)] == [202] * 10
        assert (first.seen["report"], second.seen["report"]) == (15, 5)
    finally:
        processes.stop()
        for replica in replicas.values():
            replica.close()


def test_the_proxy_sends_a_dropped_report_again_only_with_an_idempotency_key(
    tmp_path: Path,
) -> None:
    """A replica that dies mid-request: a report with a key reaches the other, one without fails.

    Without a key the dropped report may have been stored already, so the proxy answers 502 and
    leaves the decision to the client.
    """
    replicas = {REPLICAS[0]: FakeReplica(ready=True), REPLICAS[1]: FakeReplica(True, drops=True)}
    alive, dying = replicas.values()
    processes = Processes()
    try:
        port = start_proxy(processes, tmp_path, replicas)
        keyed = [send_report(port, Idempotency_Key=f"key-{n}")[0] for n in range(6)]
        assert keyed == [202] * 6
        assert alive.seen["report"] == 6 and dying.seen["dropped"] >= 1
        assert sorted(send_report(port)[0] for _ in range(2)) == [202, 502]
    finally:
        processes.stop()
        for replica in replicas.values():
            replica.close()


def test_prometheus_replicas_scrapes_each_replica_not_the_proxy() -> None:
    config = prometheus_config("prometheus-replicas")
    [job] = [j for j in config["scrape_configs"] if j["job_name"].startswith("integration-monitor")]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert sorted(targets) == [f"{r}:{SERVICE_PORT}" for r in REPLICAS]
    in_container = "/etc/prometheus/" + job["authorization"]["credentials_file"]
    token = container_file("prometheus-replicas", in_container).read_text(encoding="utf-8")
    assert token.strip() == env_file(REPLICAS[0])["IM_READ_TOKEN"]
    # Links in the alerts go to the proxy, which any replica behind it answers.
    proxy = published("proxy")[SERVICE_PORT]
    assert config["global"]["external_labels"]["integration_monitor_url"] == (
        f"http://localhost:{proxy}"
    )
    depends = service("prometheus-replicas")["depends_on"]
    assert {r: depends[r]["condition"] for r in REPLICAS} == dict.fromkeys(
        REPLICAS, "service_healthy"
    )


def test_prometheus_replicas_is_the_default_prometheus_but_for_the_targets() -> None:
    """Scrape settings, token, rules and alerting cannot drift apart between the two."""
    default, replicas = prometheus_config(), prometheus_config("prometheus-replicas")
    for config in (default, replicas):
        config["global"]["external_labels"].pop("integration_monitor_url")
        for job in config["scrape_configs"]:
            if job["job_name"].startswith("integration-monitor"):
                job.pop("job_name"), job.pop("static_configs")
    assert replicas == default


def test_the_deploy_doc_names_each_service_and_port_of_the_replicas_profile() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = text.split("\n## Several replicas on PostgreSQL\n", 1)[1].split("\n## ", 1)[0]
    assert "docker compose -f deploy/compose.yaml --profile replicas up" in section
    for name in profile("replicas") - set(REPLICAS):
        assert f"`{name}`" in section, name
    assert f"`{REPLICAS[0]}`" in section
    for name in profile("replicas"):
        for port in published(name).values():
            assert f"http://localhost:{port}" in section, (name, port)
    for path in ("config.replicas.yaml", "postgres.env", "haproxy.cfg", "prometheus.replicas.yml"):
        assert path in section, path
