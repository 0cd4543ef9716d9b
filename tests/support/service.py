"""The real service as a subprocess, for the tests that need one.

`Service`: `python -m exporter serve` on a temporary database (or the one it is given: an SQLite
file or a PostgreSQL URL, for replicas sharing one), started with `Processes` and
waited for on /readyz with `wait_for` (tests/support/processes.py), with what the tests ask it
directly.

A plain module, not a test file: pytest does not rewrite its asserts, so each one names the
status and the answer itself.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

from tests.support import ROOT
from tests.support.processes import Processes, answers, free_port, http, wait_for

STARTUP_SECONDS = 30.0
STARTUP_POLL_SECONDS = 0.05


class Service:
    """The real service in a subprocess, and what the tests ask it directly.

    It runs in `processes` when given (a test that runs Prometheus beside it, say), else in
    processes of its own; `stop` stops those. Monitors made by `new_monitor` get keys starting
    with `key_prefix`. `database` is what `serve --database` takes (a file or a PostgreSQL URL);
    by default a new SQLite file in `directory`.
    """

    def __init__(
        self,
        directory: Path,
        config_text: str = "{}\n",
        token: str | None = None,
        key_prefix: str = "t-",
        log_level: str = "INFO",
        processes: Processes | None = None,
        database: str | Path | None = None,
    ) -> None:
        self.token = token
        self._key_prefix = key_prefix
        self.processes = Processes() if processes is None else processes
        config = directory / "config.yaml"
        config.write_text(config_text)
        self.port = port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log_path = directory / "service.log"
        self.process = self.processes.start(
            "the service",
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
                str(directory / "im.db" if database is None else database),
                "--log-level",
                log_level,
            ],
            self._log_path,
            cwd=ROOT,
        )
        try:
            wait_for(
                "the service's /readyz",
                answers(self.url + "/readyz"),
                STARTUP_SECONDS,
                self.processes,
                poll=STARTUP_POLL_SECONDS,
            )
        except BaseException:
            self.stop()
            raise

    def output(self, tail: int = 4000) -> str:
        """The tail of the service's log."""
        return self._log_path.read_text(errors="replace")[-tail:]

    def terminate(self) -> None:
        """Send SIGTERM, as an orchestrator stopping the service does; `wait` waits for it."""
        self.process.terminate()

    def wait(self, timeout: float = 30.0) -> int:
        """The exit status, once the process has ended."""
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Stop the service and whatever else runs in its processes (terminate, then kill)."""
        self.processes.stop()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request with the service's token; a non-2xx answer fails the test."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return http(method, self.url + path, body, headers=headers)

    def new_monitor(self, type_: str = "batch") -> str:
        key = f"{self._key_prefix}{uuid.uuid4().hex[:16]}"
        self.call("PUT", f"/api/v1/monitors/{key}", {"name": key[:32], "type": type_})
        return key

    def get(self, path: str) -> Any:
        return self.call("GET", path)

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
