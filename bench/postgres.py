"""A throwaway PostgreSQL cluster for the replicas scenario, durable (fsync on).

The few lines of `tests/support/postgres.py` the benchmark needs, without pytest: Debian's
binaries, a temporary directory, a free port on 127.0.0.1, run as the `postgres` user when
this is root (PostgreSQL refuses root). Unlike the tests' cluster it keeps fsync,
`synchronous_commit` and full page writes on, so a report is acknowledged after a real flush.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.processes import HOST, free_port

USER = "postgres"  # the Debian package's account
SECONDS = 60.0


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    return found[-1].parent if found else None


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", USER, "--", *command] if os.geteuid() == 0 else command


class Cluster:
    """One PostgreSQL server on its own data directory and port."""

    def __init__(self, binaries: Path) -> None:
        # Not under the bench's workdir: the postgres user cannot enter root's 0700 folders.
        self.directory = Path(tempfile.mkdtemp(prefix="im-bench-pg-"))
        self.directory.chmod(0o755)
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self.port = free_port()
        self._bin = binaries
        self._names = itertools.count(1)

    def _run(self, *command: str) -> str:
        done = subprocess.run(
            _as_owner([str(self._bin / command[0]), *command[1:]]),
            capture_output=True,
            text=True,
            timeout=SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:2])} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> None:
        run = self.directory / "run"
        run.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.directory, USER)
            shutil.chown(run, USER)
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8",
                  "--no-instructions")  # fmt: skip
        options = f"-p {self.port} -k {run} -c listen_addresses={HOST} -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", str(int(SECONDS)), "start")  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server and its live processes (the pool's
        sessions live as long as the replicas, so a difference over a load is theirs)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        total = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rpartition(")")[2].split()
                if int(stat.parent.name) == postmaster or int(fields[1]) == postmaster:
                    total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@{HOST}:{self.port}/{database}"

    def database(self, template: str | None = None) -> str:
        """A new database, empty or a copy of `template` (which nobody may be connected to)."""
        name = f"bench{next(self._names)}"
        self.sql(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return name

    def sql(self, statement: str, database: str = "postgres") -> str:
        return self._run("psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", HOST,
                         "-p", str(self.port), "-U", USER, "-d", database,
                         "-c", statement)  # fmt: skip


@contextlib.contextmanager
def cluster(binaries: Path) -> Iterator[Cluster]:
    """A started cluster, stopped and deleted on exit."""
    running = Cluster(binaries)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        shutil.rmtree(running.directory, ignore_errors=True)
