"""``integration-monitor run``: run a command and report it as one batch.

The batch starts ``running``, and ends ``ok`` when the command exits 0, else ``error`` with
the exit code and the tail of the command's stderr. The command's stdout and stderr pass
through live; its exit code is the wrapper's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from exporter.client import DEFAULT_URL, ERRORMSG_LIMIT, BatchRun, Client, IntegrationMonitorError

STDERR_TAIL_CHARS = 1000
LOGTEXT_LIMIT = 256
EXIT_NOT_STARTED = 2
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
_FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_COUNT_FIELDS = ("created", "updated", "deleted")

USAGE = "integration-monitor run --key KEY [options] -- COMMAND [ARGS...]"
EPILOG = """\
exit status: the command's; 127 when it is not found, 126 when it cannot be executed,
128+N when signal N killed it, and 2 when the start of the batch could not be reported
(the command then does not run; with --fail-quietly an unreachable service does not stop it).
The command sees IM_INTEGRATION_KEY, IM_URL, IM_TOKEN (when a token was given) and
IM_BATCH_ID (when the batch was created), so a Python job can add logs to the batch.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="integration-monitor run",
        usage=USAGE,
        description="Run a command and report it to integration-monitor as one batch.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--key", required=True, help="the monitor's integration_key")
    parser.add_argument(
        "--url",
        default=os.environ.get("IM_URL") or DEFAULT_URL,
        help=f"the service's base URL (default: $IM_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("IM_TOKEN") or None,
        help="a bearer token with the push role (default: $IM_TOKEN; prefer the variable)",
    )
    parser.add_argument(
        "--integration-id", default="", help="the batch's integrationid (default: empty)"
    )
    parser.add_argument(
        "--counts-from-json",
        metavar="FILE",
        type=Path,
        help='read {"created": n, "updated": n, "deleted": n} that the command wrote to FILE',
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per request (default: 10)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        help="retries of a report on connection errors and 503, with backoff (default: 3)",
    )
    parser.add_argument(
        "--fail-quietly",
        action="store_true",
        help="when the service is unreachable or failing, warn and run the command anyway",
    )
    parser.add_argument("command", nargs="*", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str]) -> int:
    """Run ``integration-monitor run`` with ``argv`` (the arguments after ``run``)."""
    if "--" in argv:
        split = argv.index("--")
        options, command = argv[:split], argv[split + 1 :]
    else:
        options, command = argv, []
    parser = _parser()
    try:
        args = parser.parse_args(options)
        command = command or args.command
        if not command:
            parser.error("no command to run: put it after --")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_NOT_STARTED
    try:
        client = Client(
            args.url,
            token=args.token,
            timeout=args.timeout,
            retries=args.retries,
            fail_quietly=args.fail_quietly,
        )
    except ValueError as exc:
        _say(str(exc))
        return EXIT_NOT_STARTED
    job = _Job(command, args.counts_from_json)
    try:
        with client.batch(args.key, args.integration_id, f"running {command[0]}") as run:
            job.run(run, args.url, args.token)
    except IntegrationMonitorError as exc:
        if job.exit_code is None:
            _say(f"not running {command[0]!r}: could not report the start of the batch: {exc}")
            return EXIT_NOT_STARTED
        _say(f"could not report the end of the batch: {exc}")
    assert job.exit_code is not None
    return job.exit_code


@dataclass
class _Job:
    command: list[str]
    counts_file: Path | None
    exit_code: int | None = None

    def run(self, run: BatchRun, url: str, token: str | None) -> None:
        """Run the command and set the batch's status, error message and counts from it."""
        before = _stamp(self.counts_file)
        env = dict(os.environ, IM_INTEGRATION_KEY=run.integration_key, IM_URL=url)
        if token:
            env["IM_TOKEN"] = token
        if run.id is not None:
            env["IM_BATCH_ID"] = str(run.id)
        with _SignalForwarder() as forwarder:
            try:
                proc = subprocess.Popen(self.command, stderr=subprocess.PIPE, env=env)
            except FileNotFoundError:
                self._failed(run, EXIT_NOT_FOUND, f"command not found: {self.command[0]}")
                return
            except OSError as exc:
                message = f"cannot execute {self.command[0]}: {exc}"
                self._failed(run, EXIT_CANNOT_EXECUTE, message)
                return
            forwarder.attach(proc)
            assert proc.stderr is not None
            tail = _StderrTail(proc.stderr)
            returncode = proc.wait()
        stderr_tail = tail.finish()
        if returncode < 0:
            self.exit_code = 128 - returncode
            reason = f"killed by signal {_signal_name(-returncode)}"
        else:
            self.exit_code = returncode
            reason = f"exit code {returncode}"
        logtext = f"{self.command[0]}: {reason}"
        if self.exit_code != 0:
            run.logstatus = "error"
            run.errormsg = _errormsg(reason, stderr_tail)
        if self.counts_file is not None:
            note = self._read_counts(run, before)
            if note:
                logtext = f"{logtext}; {note}"
        run.logtext = _cut(logtext, LOGTEXT_LIMIT)

    def _failed(self, run: BatchRun, exit_code: int, message: str) -> None:
        _say(message)
        self.exit_code = exit_code
        run.logstatus = "error"
        run.logtext = _cut(message, LOGTEXT_LIMIT)
        run.errormsg = _cut(message, ERRORMSG_LIMIT)

    def _read_counts(self, run: BatchRun, before: tuple[int, int, int] | None) -> str:
        """Set the batch's counts from the counts file; say why not, if not."""
        assert self.counts_file is not None
        if before is not None and _stamp(self.counts_file) == before:
            problem = "not written by this run"
        else:
            try:
                counts = _parse_counts(self.counts_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                problem = str(exc)
            else:
                run.no_created, run.no_updated, run.no_deleted = counts
                return ""
        note = f"counts not read from {self.counts_file}: {problem}"
        _say(note)
        return note


class _StderrTail:
    """Copy a pipe to our stderr as it arrives, keeping its last characters."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe
        self._kept = bytearray()
        self._thread = threading.Thread(target=self._pump, name="stderr-tail", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        out = getattr(sys.stderr, "buffer", None)
        fd = self._pipe.fileno()
        while chunk := os.read(fd, 65536):
            if out is not None:
                out.write(chunk)
                out.flush()
            else:
                sys.stderr.write(chunk.decode(errors="replace"))
                sys.stderr.flush()
            self._kept += chunk
            # 4 bytes per character at most, so this always holds the wanted tail.
            del self._kept[: -4 * STDERR_TAIL_CHARS]

    def finish(self) -> str:
        # A background process the command left behind may hold the pipe open: don't wait
        # for it forever.
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._pipe.close()
        return bytes(self._kept).decode(errors="replace")[-STDERR_TAIL_CHARS:].strip()


class _SignalForwarder:
    """Pass SIGTERM and SIGHUP on to the command, so it ends and its end is reported.

    Installed before the command starts; a signal that comes before it is sent once it has.
    Signal handlers can only be set in the main thread: elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending: list[int] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _SignalForwarder:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._forward) for sig in _FORWARDED_SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    def attach(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        for signum in self._pending:
            proc.send_signal(signum)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        if self._proc is None:
            self._pending.append(signum)
        else:
            self._proc.send_signal(signum)


def _parse_counts(text: str) -> tuple[int, int, int]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    counts = []
    for name in _COUNT_FIELDS:
        value = data.get(name, data.get(f"no_{name}", 0))
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")
        counts.append(value)
    return counts[0], counts[1], counts[2]


def _stamp(path: Path | None) -> tuple[int, int, int] | None:
    """What tells a file the command wrote from one left over from an earlier run."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _errormsg(reason: str, stderr_tail: str) -> str:
    if not stderr_tail:
        return reason
    prefix = f"{reason}: "
    return prefix + stderr_tail[-(ERRORMSG_LIMIT - len(prefix)) :]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _say(message: str) -> None:
    print(f"integration-monitor run: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
