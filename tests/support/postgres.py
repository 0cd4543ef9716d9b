"""A throwaway PostgreSQL cluster for the tests: Debian's own binaries, a temporary directory,
a free port on 127.0.0.1, and gone at the end.

`Cluster.start` runs initdb and pg_ctl (as the `postgres` user when the tests run as root:
PostgreSQL refuses to run as root), `database` creates an empty database and returns its URL,
`stop`, `start_again` and `kill` are for the fault tests. The binaries are missing only on a
machine that skipped `make system-deps`: the test fails, never skips.

A plain module, not a test file: pytest does not rewrite its asserts.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.processes import SYSTEM_DEPS_HINT, free_port

USER = "postgres"  # the Debian package's account
PASSWORD = "test-secret-pw"  # trust auth ignores it; the tests check it is never printed
START_SECONDS = 60.0

# Durability off: a test cluster need not survive a power cut, and fsync per test is slow.
# (The benchmarks run their own cluster with fsync on.)
FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")


def bin_dir() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    if not found:
        pytest.fail(f"PostgreSQL is not installed: {SYSTEM_DEPS_HINT}", pytrace=False)
    return found[-1].parent


def _as_owner(command: list[str]) -> list[str]:
    """Run as the `postgres` user when this is root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", USER, "--", *command]


class Cluster:
    """One PostgreSQL server on its own data directory and port."""

    def __init__(self, durable: bool = False) -> None:
        # Its own directory, not pytest's tmp_path: the postgres user cannot enter root's 0700
        # temporary directories.
        self.directory = Path(tempfile.mkdtemp(prefix="integration-monitor-pg-"))
        self.directory.chmod(0o755)
        self.data = self.directory / "data"
        self.socket_dir = self.directory / "run"
        self.log = self.directory / "postgres.log"
        self.port = free_port()
        self._options = () if durable else FAST
        self._bin = bin_dir()
        self._names = itertools.count(1)

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            _as_owner([str(self._bin / command[0]), *command[1:]]),
            capture_output=True,
            text=True,
            timeout=START_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"{' '.join(command[:2])} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                f"\n{self.log_tail()}"
            )

    def start(self) -> Cluster:
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, USER)
            shutil.chown(self.socket_dir, USER)
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8",
                  "--no-instructions")  # fmt: skip
        self.start_again()
        return self

    def start_again(self) -> None:
        """Start the server (again, after `stop` or `kill`) on the same port and data."""
        options = " ".join(
            ["-p", str(self.port), "-k", str(self.socket_dir), "-c", "listen_addresses=127.0.0.1",
             "-c", "max_connections=200", *self._options]
        )  # fmt: skip
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", str(int(START_SECONDS)), "start")  # fmt: skip

    def stop(self) -> None:
        """A fast shutdown: sessions are cut, as when PostgreSQL restarts."""
        with contextlib.suppress(AssertionError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def kill(self) -> None:
        """SIGKILL the postmaster (and so its sessions): a crash, not a shutdown."""
        pid_file = self.data / "postmaster.pid"
        pid = int(pid_file.read_text().split()[0])
        family = [pid, *_children(pid)]
        os.kill(pid, signal.SIGKILL)
        # The sessions notice their postmaster's death by themselves and exit: wait for them,
        # or the next start finds their shared memory still attached.
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and any(_alive(p) for p in family):
            time.sleep(0.05)
        # Nobody may reap the dead postmaster here (a container's PID 1 often does not): its
        # zombie would make the next start believe it still runs. It is dead; say so.
        pid_file.unlink()
        for lock in self.socket_dir.glob(".s.PGSQL.*.lock"):
            lock.unlink()

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new empty database; its URL."""
        name = f"t{next(self._names)}"
        self.sql(f"CREATE DATABASE {name}")
        return self.url(name)

    def sql(self, statement: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [str(self._bin / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", USER, "-d", database, "-c", statement],
            capture_output=True, text=True, timeout=START_SECONDS, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"psql {statement!r} failed: {done.stderr}")
        return done.stdout

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return "postgres.log:\n" + self.log.read_text(errors="replace")[-chars:]
        return ""


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie, already dead but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
