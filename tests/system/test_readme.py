"""The README's quick start as a newcomer runs it: `make run`, then its examples, twice."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.service import Service

README = (ROOT / "README.md").read_text()
README_URL = "http://127.0.0.1:9812"


def _shell_blocks() -> list[str]:
    """The README's ```sh examples that talk to the running service."""
    blocks = re.findall(r"```sh\n(.*?)```", README, re.DOTALL)
    return [b for b in blocks if b.startswith(("curl", "BATCH_ID"))]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """The service with the shipped config.yaml, as `make run` starts it."""
    running = Service(tmp_path, (ROOT / "config.yaml").read_text())
    yield running
    running.stop()


def _dry_run(target: str) -> str:
    """What `make TARGET` would run in a fresh clone (no virtual environment yet)."""
    return subprocess.run(
        ["make", "-n", target, "VENV=/nonexistent/venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_make_run_installs_only_what_running_needs() -> None:
    run = _dry_run("run")
    installs = [line for line in run.splitlines() if "pip install" in line]
    assert any(line.endswith("pip install --quiet -e '.[server]'") for line in installs), run
    assert not any("[test]" in line for line in installs), run
    assert "-e '.[test]'" in _dry_run("test")


def test_the_examples_run_twice_leave_no_batch_running(service: Service) -> None:
    """Run every example twice: each start is finished by its own PATCH, never batch 1's."""
    assert shutil.which("curl"), "curl is needed (Debian package curl)"
    blocks = _shell_blocks()
    assert len(blocks) == 2 and "$BATCH_ID" in blocks[0]
    for round_ in (1, 2):
        for block in blocks:
            script = block.replace(README_URL, service.url)
            done = subprocess.run(
                ["sh", "-ec", script], capture_output=True, text=True, timeout=60, check=False
            )
            assert done.returncode == 0, done.stderr
        batches = service.batches("example-sync")
        assert len(batches) == 2 * round_
        assert [b["logstatus"] for b in batches if b["logstatus"] == "running"] == []
        finished = [b for b in batches if b["integrationid"] == "run-42"]
        assert [(b["no_created"], b["no_updated"]) for b in finished] == [(12, 3)] * round_
        monitor = service.get("/api/v1/monitors/example-sync")
        assert monitor["alertstatus"] == "error"
        assert "CRM API returned 503" in monitor["alerttext"]
    metrics_line = re.search(r"^integration_monitor_alert_status\{.*$", README, re.MULTILINE)
    assert metrics_line is not None
    with subprocess.Popen(["curl", "-s", service.url + "/metrics"], stdout=subprocess.PIPE) as curl:
        exposition = curl.communicate(timeout=30)[0].decode()
    assert metrics_line.group(0) in exposition.splitlines()
