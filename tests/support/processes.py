"""Test plumbing shared by the tests that run real binaries as subprocesses.

Prometheus, Alertmanager, promtool and the service's own console scripts are looked up with
`binary` and `console_script`: a missing one is a broken test machine, so the test fails, never
skips. `Processes` starts them, each writing to its own log file, checks they are still alive
and stops them (terminate, then kill). `wait_for` polls a check until a deadline and fails with
the tails of those logs. `http` is one JSON request to 127.0.0.1, `free_port` a port to listen
on, `serve_in_thread` an HTTP server in this process (a stand-in or a receiver), and
`start_prometheus` the one way the tests run Prometheus.

A plain module, not a test file: pytest does not rewrite its asserts, so every failure here
says itself what was expected and what came instead.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
import yaml

T = TypeVar("T")

SYSTEM_DEPS_HINT = "run `make system-deps` (scripts/install-system-deps.sh installs it)"
LOG_TAIL_CHARS = 3000
POLL_SECONDS = 0.2
STOP_SECONDS = 15.0
START_SECONDS = 60.0


def binary(name: str) -> str:
    """A system binary a test needs (on PATH or in /usr/bin); missing: fail, never skip."""
    found = shutil.which(name) or f"/usr/bin/{name}"
    if not Path(found).exists():
        pytest.fail(f"{name} is not installed: {SYSTEM_DEPS_HINT}", pytrace=False)
    return found


def console_script(name: str, install_hint: str) -> str:
    """A console script of the environment running the tests (its bin/ first, then PATH)."""
    script = Path(sys.executable).parent / name
    found = str(script) if script.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: {install_hint}", pytrace=False)
    return found


def service_command() -> list[str]:
    """The `integration-monitor` console script of the environment running the tests."""
    return [console_script("integration-monitor", "pip install -e '.[server]'")]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    allow_text: bool = False,
) -> Any:
    """One request to 127.0.0.1 with an optional JSON body; the decoded JSON answer.

    An empty answer is None. A non-JSON answer raises ValueError, or with `allow_text` comes
    back as text (as does an empty one then); only an answer starting with `{` or `[` is
    decoded. A non-2xx status raises AssertionError with the answer; so does a URL elsewhere.
    """
    if not url.startswith("http://127.0.0.1:"):
        raise AssertionError(f"only http://127.0.0.1: is asked, not {url}")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as exc:
        try:
            detail = exc.read().decode(errors="replace")
        finally:
            exc.close()
        raise AssertionError(f"{method} {url} -> {exc.code}: {detail}") from None
    if allow_text:
        return json.loads(text) if text.strip().startswith(("{", "[")) else text
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{method} {url}: not JSON ({exc}): {text[:500]!r}") from None


class Processes:
    """The processes a test started, each writing its output to its own log file."""

    def __init__(self) -> None:
        self.running: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []
        self.logs: list[Path] = []

    def start(
        self,
        name: str,
        args: list[str],
        log: Path,
        cwd: Path,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `args` in `cwd` as `name`, stdout and stderr appended to `log`, no stdin."""
        handle = log.open("ab")
        self.logs.append(log)
        try:
            process = subprocess.Popen(
                args,
                cwd=cwd,
                env=None if env is None else dict(env),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        except BaseException:
            handle.close()
            raise
        self.running.append((name, process, handle))
        return process

    def check_alive(self) -> None:
        """Fail, with the logs, if any of the processes has exited."""
        for name, process, _ in self.running:
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}\n{self.tails()}")

    def tails(self) -> str:
        """The end of every log, each under its file name."""
        return "\n".join(
            f"--- {path.name}:\n{path.read_text(errors='replace')[-LOG_TAIL_CHARS:]}"
            for path in self.logs
        )

    def stop(self) -> None:
        """Stop the processes, the last started first: terminate, then kill if need be."""
        for _, process, handle in reversed(self.running):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=STOP_SECONDS)
            handle.close()
        self.running.clear()


def wait_for(
    what: str,
    check: Callable[[], T],
    timeout: float,
    processes: Processes,
    poll: float = POLL_SECONDS,
) -> T:
    """Poll `check` every `poll` seconds until it returns something truthy, and return that.

    Before each try every one of `processes` must still be running. OSError, AssertionError and
    ValueError from `check` count as "not yet"; the last one is shown if `timeout` passes, with
    the tails of the processes' logs.
    """
    deadline = time.monotonic() + timeout
    error: Exception | None = None
    while time.monotonic() < deadline:
        processes.check_alive()
        try:
            result = check()
            if result:
                return result
            error = None
        except (OSError, AssertionError, ValueError) as exc:
            error = exc
        time.sleep(poll)
    pytest.fail(
        f"timed out after {timeout:.0f}s waiting for {what} (last error: {error})\n"
        f"{processes.tails()}"
    )


def answers(url: str) -> Callable[[], bool]:
    """A check for `wait_for`: a GET of `url` answers 2xx, whatever the body."""

    def check() -> bool:
        http("GET", url, timeout=2.0, allow_text=True)
        return True

    return check


@contextlib.contextmanager
def serve_in_thread(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """An HTTP server on a free 127.0.0.1 port, `handler` answering in threads; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=STOP_SECONDS)


@dataclass(frozen=True)
class Prometheus:
    """A Prometheus that `start_prometheus` started: its URL and what the tests ask it."""

    url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result of an instant query; a query Prometheus refuses fails the test."""
        answer = http("GET", f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        if answer.get("status") != "success":
            raise AssertionError(f"query {expr!r} -> {answer}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts of the rules Prometheus evaluates, pending and firing."""
        alerts: list[dict[str, Any]] = http("GET", f"{self.url}/api/v1/alerts", timeout=2.0)[
            "data"
        ]["alerts"]
        return alerts


def start_prometheus(
    processes: Processes, directory: Path, config: Mapping[str, Any]
) -> Prometheus:
    """Prometheus with `config` as its prometheus.yml, on a free port, once it is ready.

    Its config, data and log (prometheus.log) are in `directory`; `processes` stops it.
    """
    executable = binary("prometheus")
    port = free_port()
    config_file = directory / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    processes.start(
        "prometheus",
        [
            executable,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={directory / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        directory / "prometheus.log",
        cwd=directory,
    )
    prometheus = Prometheus(f"http://127.0.0.1:{port}")
    wait_for(
        "Prometheus to be ready", answers(f"{prometheus.url}/-/ready"), START_SECONDS, processes
    )
    return prometheus
