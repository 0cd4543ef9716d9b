"""Test plumbing shared by the tests that run the real service as a subprocess.

A free port, one JSON request over urllib, and `Service`: `python -m exporter serve` on a
temporary database, waited for on /healthz, with what the tests ask it directly.

A plain module, not a test file: pytest does not rewrite its asserts, so each one names the
status and the answer itself.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

STARTUP_SECONDS = 30.0


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(
    url: str, method: str = "GET", body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """One JSON request: (status, decoded body or None); an HTTP error status is returned."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        try:
            status, raw = exc.code, exc.read()
        finally:
            exc.close()
    return status, json.loads(raw) if raw else None


class Service:
    """The real service in a subprocess, and what the tests ask it directly.

    Monitors made by `new_monitor` get keys starting with `key_prefix`.
    """

    def __init__(
        self,
        directory: Path,
        config_text: str = "{}\n",
        token: str | None = None,
        key_prefix: str = "t-",
        log_level: str = "INFO",
    ) -> None:
        self._token = token
        self._key_prefix = key_prefix
        config = directory / "config.yaml"
        config.write_text(config_text)
        self.port = port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log_path = directory / "service.log"
        self._log = self._log_path.open("wb")
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--database",
                str(directory / "im.db"),
                "--log-level",
                log_level,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self.stop()
                pytest.fail(f"the service exited at start:\n{self.output()}")
            try:
                if call(self.url + "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"the service did not answer /healthz in {STARTUP_SECONDS}s:\n{self.output()}")

    def output(self, tail: int = 4000) -> str:
        """The tail of the service's log."""
        return self._log_path.read_text(errors="replace")[-tail:]

    def terminate(self) -> None:
        """Send SIGTERM, as an orchestrator stopping the service does; `stop` waits for it."""
        self._proc.terminate()

    def wait(self, timeout: float = 30.0) -> int:
        """The exit status, once the process has ended."""
        return self._proc.wait(timeout=timeout)

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._log.close()

    def new_monitor(self, type_: str = "batch") -> str:
        key = f"{self._key_prefix}{uuid.uuid4().hex[:16]}"
        status, body = call(
            f"{self.url}/api/v1/monitors/{key}",
            "PUT",
            {"name": key[:32], "type": type_},
            self._token,
        )
        assert status == 201, f"{status}: {body}"
        return key

    def get(self, path: str) -> Any:
        status, body = call(self.url + path, token=self._token)
        assert status == 200, f"{status}: {body}"
        return body

    def batches(self, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(f"/api/v1/monitors/{key}/batches")["items"]
        return items

    def logs(self, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(f"/api/v1/monitors/{key}/logs")["items"]
        return items

    def batch(self, batch_id: int) -> dict[str, Any]:
        body: dict[str, Any] = self.get(f"/api/v1/batches/{batch_id}")
        return body

    def only_batch(self, key: str) -> dict[str, Any]:
        """The monitor's one and only batch, as stored."""
        [batch] = self.batches(key)
        stored: dict[str, Any] = self.batch(batch["id"])["batch"]
        return stored
