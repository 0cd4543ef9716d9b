"""`integration-monitor run` against the real service, started as a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.client import wrapper
from tests.support import ROOT
from tests.support.processes import Processes, wait_for
from tests.support.service import Service

pytestmark = pytest.mark.system  # the service runs as a subprocess for these tests

COMMAND_SECONDS = 60.0
PUSH_TOKEN = "push-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"
SECURED_CONFIG = f"""\
auth:
  tokens:
    - {{name: job, token: {PUSH_TOKEN}, roles: [push]}}
    - {{name: ops, token: {ADMIN_TOKEN}, roles: [admin, read]}}
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, service_database: str) -> Iterator[Service]:
    running = Service(
        tmp_path_factory.mktemp("service"), key_prefix="w-", database=service_database
    )
    yield running
    running.stop()


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def run(service: Service, key: str, command: list[str], *options: str) -> int:
    return wrapper.main(["--key", key, "--url", service.url, *options, "--", *command])


def test_a_succeeding_command_is_an_ok_batch_and_its_output_passes_through(
    service: Service, capfd: pytest.CaptureFixture[str]
) -> None:
    key = service.new_monitor()
    code = "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"
    assert run(service, key, python(code)) == 0
    out, err = capfd.readouterr()
    assert "to stdout" in out
    assert "to stderr" in err
    batch = service.only_batch(key)
    assert batch["logstatus"] == "ok"
    assert batch["errormsg"] == ""
    assert batch["logtext"] == f"{sys.executable}: exit code 0"
    assert batch["endtime"] is not None


def test_a_failing_command_is_an_error_batch_with_its_exit_code_and_stderr(
    service: Service, capfd: pytest.CaptureFixture[str]
) -> None:
    key = service.new_monitor()
    code = "import sys; print('bad row 7', file=sys.stderr); sys.exit(3)"
    assert run(service, key, python(code)) == 3
    assert "bad row 7" in capfd.readouterr().err
    batch = service.only_batch(key)
    assert batch["logstatus"] == "error"
    assert batch["errormsg"] == "exit code 3: bad row 7"


def test_only_the_tail_of_a_long_stderr_is_kept(service: Service) -> None:
    key = service.new_monitor()
    code = "import sys; sys.stderr.write('x' * 5000 + 'THE END'); sys.exit(1)"
    assert run(service, key, python(code)) == 1
    errormsg = service.only_batch(key)["errormsg"]
    assert errormsg.startswith("exit code 1: xxx")
    assert errormsg.endswith("THE END")
    assert len(errormsg) <= 1024


def test_a_command_that_is_not_found_is_an_error_batch_and_127(service: Service) -> None:
    key = service.new_monitor()
    assert run(service, key, ["/nonexistent/job.sh", "--now"]) == 127
    batch = service.only_batch(key)
    assert batch["logstatus"] == "error"
    assert batch["errormsg"] == "command not found: /nonexistent/job.sh"


def test_a_command_killed_by_a_signal(service: Service) -> None:
    key = service.new_monitor()
    code = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    assert run(service, key, python(code)) == 128 + 15
    assert service.only_batch(key)["errormsg"] == "killed by signal SIGTERM"


@pytest.mark.parametrize("prefix", ["", "no_"])
def test_counts_from_json(service: Service, tmp_path: Path, prefix: str) -> None:
    key = service.new_monitor()
    counts_file = tmp_path / "counts.json"
    counts = {f"{prefix}created": 3, f"{prefix}updated": 2, f"{prefix}deleted": 1}
    code = f"import json, sys; json.dump({counts!r}, open(sys.argv[1], 'w'))"
    command = [*python(code), str(counts_file)]
    assert run(service, key, command, "--counts-from-json", str(counts_file)) == 0
    batch = service.only_batch(key)
    assert (batch["no_created"], batch["no_updated"], batch["no_deleted"]) == (3, 2, 1)
    assert batch["logstatus"] == "ok"


def test_counts_left_from_an_earlier_run_are_not_reported(service: Service, tmp_path: Path) -> None:
    key = service.new_monitor()
    counts_file = tmp_path / "counts.json"
    counts_file.write_text('{"created": 99}')
    assert run(service, key, python("pass"), "--counts-from-json", str(counts_file)) == 0
    batch = service.only_batch(key)
    assert batch["no_created"] == 0
    assert batch["logstatus"] == "ok"
    assert "not written by this run" in batch["logtext"]


def test_an_invalid_counts_file_is_noted_not_fatal(service: Service, tmp_path: Path) -> None:
    key = service.new_monitor()
    counts_file = tmp_path / "counts.json"
    code = "import sys; open(sys.argv[1], 'w').write('{\"created\": -1}')"
    command = [*python(code), str(counts_file)]
    assert run(service, key, command, "--counts-from-json", str(counts_file)) == 0
    batch = service.only_batch(key)
    assert (batch["logstatus"], batch["no_created"]) == ("ok", 0)
    assert "counts not read" in batch["logtext"]


def test_the_url_comes_from_the_environment_and_the_command_gets_the_batch_id(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = service.new_monitor()
    monkeypatch.setenv("IM_URL", service.url)
    seen = tmp_path / "env.json"
    code = (
        "import json, os, sys; "
        "json.dump({k: os.environ.get(k) for k in ('IM_BATCH_ID', 'IM_INTEGRATION_KEY')}, "
        "open(sys.argv[1], 'w'))"
    )
    assert wrapper.main(["--key", key, "--", *python(code), str(seen)]) == 0
    batch = service.only_batch(key)
    assert json.loads(seen.read_text()) == {
        "IM_BATCH_ID": str(batch["id"]),
        "IM_INTEGRATION_KEY": key,
    }


def _documented_recipe() -> str:
    """docs/client.md's two-line recipe for logs from a wrapped Python job."""
    docs = (ROOT / "docs" / "client.md").read_text()
    section = docs.split("### Logs from a Python job to the wrapper's batch", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("secured", [False, True], ids=["open", "with-token"])
def test_the_documented_recipe_logs_into_the_wrappers_batch(
    service: Service, tmp_path: Path, secured: bool
) -> None:
    """The wrapper exports IM_BATCH_ID; the helpers take it as it is, with no key."""
    target, options = service, []
    if secured:
        target = Service(tmp_path, SECURED_CONFIG, ADMIN_TOKEN, key_prefix="s-")
        options = ["--token", PUSH_TOKEN]
    try:
        key = target.new_monitor()
        assert run(target, key, python(_documented_recipe()), *options) == 0
        stored = target.batch(target.only_batch(key)["id"])
    finally:
        if secured:
            target.stop()
    assert stored["batch"]["logstatus"] == "ok"
    assert [x["message"] for x in stored["logs"]] == ["row 7 skipped"]


def test_the_command_does_not_run_when_the_start_cannot_be_reported(
    service: Service, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "ran"
    command = [*python("import sys; open(sys.argv[1], 'w')"), str(marker)]
    assert run(service, "no-such-monitor", command) == 2
    assert "could not report the start" in capfd.readouterr().err
    assert not marker.exists()


def test_fail_quietly_runs_the_command_when_the_service_is_unreachable(
    closed_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    command = [*python("import sys; open(sys.argv[1], 'w'); sys.exit(4)"), str(marker)]
    options = ["--key", "crm-sync", "--url", closed_url, "--retries", "0"]
    assert wrapper.main([*options, "--fail-quietly", "--", *command]) == 4
    assert marker.exists()

    marker.unlink()
    assert wrapper.main([*options, "--", *command]) == 2
    assert not marker.exists()


def test_help_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert wrapper.main(["--help"]) == 0
    assert "integration-monitor run --key KEY" in capsys.readouterr().out
    assert wrapper.main(["--key", "crm-sync"]) == 2
    assert "no command to run" in capsys.readouterr().err
    assert wrapper.main(["--", "true"]) == 2
    assert "--key" in capsys.readouterr().err


def test_the_token_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("IM_TOKEN", raising=False)
    secured = Service(tmp_path, SECURED_CONFIG, ADMIN_TOKEN, key_prefix="w-")
    try:
        key = secured.new_monitor()
        assert run(secured, key, python("pass")) == 2
        assert "(401 unauthorized)" in capfd.readouterr().err
        monkeypatch.setenv("IM_TOKEN", PUSH_TOKEN)
        assert run(secured, key, python("pass")) == 0
        assert secured.only_batch(key)["logstatus"] == "ok"
    finally:
        secured.stop()


def test_the_cli_dispatches_run_to_the_wrapper(service: Service) -> None:
    key = service.new_monitor()
    code = "import sys; print('from the job'); sys.exit(5)"
    command = [sys.executable, "-m", "exporter", "run", "--key", key, "--url", service.url]
    done = subprocess.run(
        [*command, "--", *python(code)], capture_output=True, text=True, timeout=COMMAND_SECONDS
    )
    assert done.returncode == 5
    assert "from the job" in done.stdout
    batch = service.only_batch(key)
    assert (batch["logstatus"], batch["errormsg"]) == ("error", "exit code 5")


def test_sigterm_is_passed_on_to_the_command_and_its_end_reported(
    service: Service, tmp_path: Path
) -> None:
    key = service.new_monitor()
    started = tmp_path / "started"
    code = "import sys, time; open(sys.argv[1], 'w').close(); time.sleep(60)"
    command = [sys.executable, "-m", "exporter", "run", "--key", key, "--url", service.url]
    processes = Processes()
    try:
        proc = processes.start(
            "the wrapper", [*command, "--", *python(code), str(started)], tmp_path / "run.log", ROOT
        )
        wait_for("the command to start", started.exists, COMMAND_SECONDS, processes, poll=0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=COMMAND_SECONDS) == 128 + signal.SIGTERM
    finally:
        processes.stop()
    batch = service.only_batch(key)
    assert (batch["logstatus"], batch["errormsg"]) == ("error", "killed by signal SIGTERM")
