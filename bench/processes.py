"""The processes under test: the service, Pushgateway and Prometheus, each on a free local port."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]
HAPROXY_CONFIG = ROOT / "deploy" / "proxy" / "haproxy.cfg"  # the replicas profile's proxy
PUSHGATEWAY = "prometheus-pushgateway"
PROMETHEUS = "prometheus"


@dataclass(frozen=True)
class ServiceOptions:
    """How the service is run: its interpreter and config overrides of the database section."""

    python: str
    exporter: Path | None = None  # a source tree to run instead of the installed package
    database: dict[str, Any] = field(default_factory=dict)
    startup_timeout: float = 600.0


@dataclass
class Running:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    started_in: float  # seconds from exec to the first healthy answer

    def _status_kb(self, field_name: str) -> float:
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in text.splitlines():
            if line.startswith(field_name + ":"):
                return float(line.split()[1])
        raise RuntimeError(f"{field_name} not in /proc/{self.process.pid}/status")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        """Resident memory now (VmRSS), in MiB."""
        return self._status_kb("VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        """The most resident memory so far (VmHWM), in MiB."""
        return self._status_kb("VmHWM") / 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> float:
    started = time.perf_counter()
    deadline = started + timeout
    for _ in range(int(timeout / 0.02) + 1):
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{url}: process exited with {process.returncode}:\n{tail}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=1) as response,
        ):
            if response.status == 200:
                return time.perf_counter() - started
        if time.perf_counter() > deadline:
            break
        time.sleep(0.02)
    raise RuntimeError(f"{url}: not healthy after {timeout:.0f} s; log in {log}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def _process(
    name: str,
    command: list[str],
    health_url: str,
    workdir: Path,
    timeout: float,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env or dict(os.environ)
        )
    try:
        started = time.perf_counter()
        _wait_healthy(health_url, process, log, timeout)
        yield process, time.perf_counter() - started
    finally:
        _stop(process)


def _service_env(options: ServiceOptions) -> dict[str, str]:
    env = dict(os.environ)
    if options.exporter is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(options.exporter), *filter(None, [env.get("PYTHONPATH")])]
        )
    return env


def schema_of(options: ServiceOptions) -> Callable[[Path], None] | None:
    """For a service run from another tree: a function creating that tree's schema in a file.

    The seed then fills the tables of the schema the measured code expects (an older tree must
    not find migrations it does not know). None: this tree's schema, created in-process.
    """
    if options.exporter is None:
        return None

    def create(path: Path) -> None:
        code = (
            "import sqlite3, sys\n"
            "from exporter.storage.sqlite.store import apply_migrations\n"
            "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "conn.execute('PRAGMA journal_mode=WAL')\n"
            "apply_migrations(conn)\n"
            "conn.close()\n"
        )
        subprocess.run(
            [options.python, "-c", code, str(path)],
            check=True,
            env=_service_env(options),
            cwd=path.parent,
            timeout=120,
        )

    return create


@contextlib.contextmanager
def service(
    workdir: Path, database: Path | str, options: ServiceOptions, **overrides: Any
) -> Iterator[Running]:
    """The service on `database` (an SQLite file, or a PostgreSQL URL), listening on a free
    loopback port, stopped on exit. `overrides` are more `database.NAME` settings."""
    port = free_port()
    config = workdir / f"service-{port}.yaml"
    where = {"url": database} if isinstance(database, str) else {"path": str(database)}
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"host": HOST, "port": port},
                "database": {**where, **options.database, **overrides},
            }
        )
    )
    command = [options.python, "-m", "exporter", "serve", "--config", str(config)]
    command += ["--log-level", "WARNING"]
    url = f"http://{HOST}:{port}"
    env = _service_env(options)
    with _process(
        f"service-{port}", command, url + "/healthz", workdir, options.startup_timeout, env
    ) as (process, started_in):
        yield Running("service", url, process, started_in)


def haproxy_binary() -> str | None:
    """Debian's haproxy is in /usr/sbin, which a user's PATH may lack."""
    found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    return found if Path(found).exists() else None


@contextlib.contextmanager
def haproxy(workdir: Path, replicas: Sequence[Running]) -> Iterator[Running]:
    """The shipped proxy config (deploy/proxy/haproxy.cfg) on a free loopback port, its servers
    pointed at `replicas`; ready once a request through it reaches a ready replica."""
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("haproxy is not installed")
    port = free_port()
    text = HAPROXY_CONFIG.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(\s*bind) :\d+", rf"\1 {HOST}:{port}", text)
    servers = re.findall(r"(?m)^\s*server \S+ (\S+)", text)
    if len(servers) < len(replicas):
        raise RuntimeError(f"{HAPROXY_CONFIG} names {len(servers)} servers, not {len(replicas)}")
    for address, replica in zip(servers, replicas, strict=False):
        text = text.replace(f" {address}", " " + replica.url.removeprefix("http://"), 1)
    config = workdir / f"haproxy-{port}.cfg"
    config.write_text(text, encoding="utf-8")
    url = f"http://{HOST}:{port}"
    command = [binary, "-db", "-f", str(config)]
    with _process(f"haproxy-{port}", command, url + "/readyz", workdir, 60) as (process, started):
        yield Running("haproxy", url, process, started)


def pushgateway_binary() -> str | None:
    return shutil.which(PUSHGATEWAY)


@contextlib.contextmanager
def pushgateway(workdir: Path, flags: Sequence[str] = ()) -> Iterator[Running]:
    """Prometheus Pushgateway (in memory, no persistence file) on a free loopback port."""
    binary = pushgateway_binary()
    if binary is None:
        raise RuntimeError(f"{PUSHGATEWAY} is not installed")
    port = free_port()
    url = f"http://{HOST}:{port}"
    # Debian's build persists to /var/lib/prometheus by default: start empty, leave no file.
    command = [
        binary,
        f"--web.listen-address={HOST}:{port}",
        "--persistence.file=",
        "--log.level=warn",
        *flags,
    ]
    with _process(f"pushgateway-{port}", command, url + "/-/ready", workdir, 60) as (
        process,
        started_in,
    ):
        yield Running("pushgateway", url, process, started_in)


def prometheus_binary() -> str | None:
    return shutil.which(PROMETHEUS)


@contextlib.contextmanager
def prometheus(workdir: Path, target: str, interval: float) -> Iterator[Running]:
    """Prometheus scraping `target` (host:port on the loopback) every `interval` seconds.

    Its config and TSDB live in a folder of `workdir` made for this run; it listens on a free
    loopback port and scrapes nothing else (not even itself).
    """
    binary = prometheus_binary()
    if binary is None:
        raise RuntimeError(f"{PROMETHEUS} is not installed")
    if not target.startswith(f"{HOST}:"):
        raise ValueError(f"{target}: the bench scrapes {HOST} only")
    port = free_port()
    url = f"http://{HOST}:{port}"
    home = workdir / f"prometheus-{port}"
    home.mkdir()
    config = home / "prometheus.yml"
    seconds = f"{interval:g}s"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": seconds, "scrape_timeout": seconds},
                "scrape_configs": [
                    {"job_name": "integration_monitor", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={home / 'data'}",
        "--storage.tsdb.retention.time=1h",
        f"--web.listen-address={HOST}:{port}",
        "--log.level=warn",
    ]
    with _process(f"prometheus-{port}", command, url + "/-/ready", home, 120) as (
        process,
        started_in,
    ):
        yield Running("prometheus", url, process, started_in)


def wait_first_scrape(url: str, timeout: float = 60.0) -> float:
    """Seconds until Prometheus at `url` has scraped its target once (it takes up to about 5 s:
    it hands discovered targets to its scrapers in batches)."""
    started = time.perf_counter()
    query = url + "/api/v1/query?" + urllib.parse.urlencode({"query": "count(up)"})
    for _ in range(int(timeout / 0.1) + 1):
        with (
            contextlib.suppress(OSError, urllib.error.URLError, ValueError),
            urllib.request.urlopen(query, timeout=5) as response,
        ):
            if json.loads(response.read())["data"]["result"]:
                return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{url}: no scrape within {timeout:.0f} s")
