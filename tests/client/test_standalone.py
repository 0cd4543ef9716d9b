"""The client and `integration-monitor run` installed alone, as on a job host.

The project's wheel is built offline from the files the Dockerfile's builder copies, and
installed with `--no-index` into a bare virtual environment (only what `venv` puts there). That
install succeeding is the proof that the base distribution requires nothing; the tests then run
the bare environment's `integration-monitor run` against the real service started from the
test environment, and its `serve`, which must say how to install the server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.service import Service

pytestmark = pytest.mark.system  # builds a wheel, a bare venv, and runs the service
PACKAGE = ROOT / "exporter"
COMMAND_SECONDS = 120
SERVER_DISTRIBUTIONS = {
    "aiohttp",
    "aiosqlite",
    "prometheus-client",
    "pyyaml",
    "pydantic",
    "jinja2",
    "aiohttp-jinja2",
    "orjson",
    "uvloop",
}
# What the client side may load of this package; everything else of it is the server.
CLIENT_MODULES = {"exporter", "exporter.cli", "exporter.client", "exporter.client.wrapper"}
IMPORT_CLIENT = """\
import json, sys
before = set(sys.modules)
import exporter.cli, exporter.client, exporter.client.wrapper
print(json.dumps({"file": exporter.__file__, "new": sorted(set(sys.modules) - before)}))
"""


@dataclass(frozen=True)
class BareInstall:
    wheel: Path
    bin: Path
    before: set[str]
    after: set[str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A command of the bare environment's bin/, in a directory with no project files."""
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.bin,
            env=bare_env(),
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
            check=False,
        )


def bare_env() -> dict[str, str]:
    """This environment without its Python path and pip settings (find-links, indexes)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PIP_", "PYTHON")) and name != "VIRTUAL_ENV"
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def checked(command: list[str], what: str) -> str:
    done = subprocess.run(
        command,
        env=bare_env(),
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def installed(python: Path) -> set[str]:
    listed = checked([str(python), "-m", "pip", "list", "--format=json"], "pip list")
    return {item["name"].lower().replace("_", "-") for item in json.loads(listed)}


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> BareInstall:
    """The project's wheel, built offline, installed with --no-index into a bare venv."""
    work = tmp_path_factory.mktemp("standalone")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        PACKAGE, source / "exporter", ignore=shutil.ignore_patterns("__pycache__", "*.py[co]")
    )
    dist = work / "dist"
    offline = ["--no-deps", "--no-build-isolation", "--no-index", "--quiet"]
    checked(
        [sys.executable, "-m", "pip", "wheel", *offline, "--wheel-dir", str(dist), str(source)],
        "building the wheel (the test extra installs setuptools>=77 and wheel)",
    )
    [wheel] = dist.glob("integration_monitor-*.whl")
    venv = work / "bare"
    checked([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    python = venv / "bin" / "python"
    before = installed(python)
    checked([str(python), "-m", "pip", "install", "--no-index", "--quiet", str(wheel)], "install")
    return BareInstall(wheel=wheel, bin=venv / "bin", before=before, after=installed(python))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = Service(tmp_path_factory.mktemp("service"), key_prefix="standalone-")
    yield running
    running.stop()


def test_the_wheel_holds_the_package_and_its_data_files(bare: BareInstall) -> None:
    with zipfile.ZipFile(bare.wheel) as wheel:
        names = set(wheel.namelist())
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [
            line
            for line in wheel.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    on_disk = {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert on_disk - names == set(), "files of the package missing from the wheel"
    for data in ("exporter/py.typed", "exporter/statuspage/templates/base.html"):
        assert data in names
    assert any(n.startswith("exporter/statuspage/static/") for n in names)
    assert any(n.startswith("exporter/storage/sqlite/migrations/0001") for n in names)
    assert {n.split("/")[0] for n in names} == {"exporter", metadata.split("/")[0]}
    unconditional = [line for line in requires if "extra ==" not in line]
    assert unconditional == [], "the base distribution must require nothing"
    assert any('extra == "server"' in line and "aiohttp" in line for line in requires)


def test_the_install_brings_no_other_package(bare: BareInstall) -> None:
    assert bare.after - bare.before == {"integration-monitor"}
    assert bare.after & SERVER_DISTRIBUTIONS == set()


@pytest.mark.parametrize("where", ["bare", "test"])
def test_the_client_and_the_command_import_only_the_standard_library(
    bare: BareInstall, where: str
) -> None:
    """In the bare venv, and where the server is installed too (nothing loads it anyway)."""
    if where == "bare":
        done = bare.run("python", "-I", "-c", IMPORT_CLIENT)
        package_dir = bare.bin.parent
    else:
        done = subprocess.run(
            [sys.executable, "-c", IMPORT_CLIENT],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
            check=False,
        )
        package_dir = PACKAGE
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert Path(loaded["file"]).is_relative_to(package_dir)
    new = set(loaded["new"])
    ours = {name for name in new if name.partition(".")[0] == "exporter"}
    assert ours - CLIENT_MODULES == set()
    others = {name for name in new - ours if name.partition(".")[0] not in sys.stdlib_module_names}
    assert others == set()


def test_run_reports_a_succeeding_and_a_failing_command(
    bare: BareInstall, service: Service
) -> None:
    ok_key, failing_key = service.new_monitor(), service.new_monitor()

    done = bare.run("integration-monitor", "run", "--key", ok_key, "--url", service.url, "--")
    assert done.returncode == 2, "no command: a usage error"
    done = bare.run(
        "integration-monitor", "run", "--key", ok_key, "--url", service.url,
        "--", "sh", "-c", "echo all good",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "all good\n"
    batch = service.only_batch(ok_key)
    assert (batch["logstatus"], batch["logtext"]) == ("ok", "sh: exit code 0")

    done = bare.run(
        "integration-monitor", "run", "--key", failing_key, "--url", service.url,
        "--", "sh", "-c", "echo row 7 broke >&2; exit 3",
    )  # fmt: skip
    assert done.returncode == 3
    assert "row 7 broke" in done.stderr
    batch = service.only_batch(failing_key)
    assert (batch["logstatus"], batch["errormsg"]) == ("error", "exit code 3: row 7 broke")


def test_a_python_job_logs_to_the_wrappers_batch_with_the_client(
    bare: BareInstall, service: Service
) -> None:
    key = service.new_monitor()
    job = (
        "import os, exporter.client as im; "
        "client = im.Client(os.environ['IM_URL']); "
        "im.create_integration_monitor_log(client, os.environ['IM_BATCH_ID'], message='step 2')"
    )
    done = bare.run(
        "integration-monitor", "run", "--key", key, "--url", service.url,
        "--", str(bare.bin / "python"), "-I", "-c", job,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    batch = service.only_batch(key)
    assert batch["logstatus"] == "ok"
    assert [log["message"] for log in service.logs(key)] == ["step 2"]


@pytest.mark.parametrize("command", ["serve", "check-config"])
def test_the_server_commands_say_to_install_the_server_extra(
    bare: BareInstall, command: str
) -> None:
    done = bare.run("integration-monitor", command)
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"integration-monitor {command}: the server is not installed")
    assert line.endswith("pip install 'integration-monitor[server]'")
