"""The `integration-monitor` command: serve, check-config, migrate-db, run.

At import this module loads only the standard library: a job host that installed the base
distribution (the client, no `server` extra) runs `integration-monitor run` with it. `serve`,
`check-config` and `migrate-db` import the server when they start, and say how to install it
if it is not.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from exporter import __version__

if TYPE_CHECKING:
    from exporter.config import Config

log = logging.getLogger("exporter")

SERVER_EXTRA = "integration-monitor[server]"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="integration-monitor",
        description="Watches integrations and scheduled jobs and speaks Prometheus.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the service", description="Run the service.")
    serve.add_argument("--config", default="config.yaml", help="YAML config (default: %(default)s)")
    serve.add_argument("--host", help="listen address (overrides server.host)")
    serve.add_argument("--port", type=int, help="listen port (overrides server.port)")
    serve.add_argument(
        "--database",
        help="SQLite file, or postgresql://user:password@host:5432/dbname "
        "(overrides database.path and database.url)",
    )
    serve.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default: INFO)")

    check = commands.add_parser(
        "check-config",
        help="validate a config file and print the effective config",
        description="Validate a config file; print the effective config, or each error.",
    )
    check.add_argument("--config", default="config.yaml", help="YAML config (default: %(default)s)")

    migrate = commands.add_parser(
        "migrate-db",
        help="copy an SQLite database into an empty PostgreSQL database",
        description="Copy an SQLite database (monitors, runs, counters, status changes, "
        "idempotency keys, corrections, sessions) into an empty PostgreSQL database, in one "
        "transaction, and verify the counts. Stop the service first.",
    )
    migrate.add_argument(
        "--from", dest="source", required=True, metavar="PATH", help="the SQLite file"
    )
    migrate.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="URL",
        help="postgresql://user:password@host:5432/dbname (an empty database)",
    )

    commands.add_parser(
        "run",
        help="run a job and report it as a batch (see: integration-monitor run --help)",
        add_help=False,
    )
    return parser


def _load(path: str, **overrides: object) -> Config | None:
    """The config `serve` would run with, or None after printing each problem to stderr.

    `check-config` and `serve` both come here, so both refuse the same files in the same words.
    """
    from exporter.config import ConfigError, check_serving, load_config

    try:
        config = load_config(path).with_overrides(**overrides)
        check_serving(config)
    except ConfigError as exc:
        print(f"{path}: invalid configuration:", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return None
    return config


def _redacted(config: Config) -> dict[str, object]:
    from exporter.config import redact_url

    data = config.model_dump(mode="json")
    for token in data["auth"]["tokens"]:
        token["token"] = "<redacted>"
    data["database"]["url"] = redact_url(data["database"]["url"])
    return data


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from exporter.app import create_app
    from exporter.http.guards import MalformedRequests

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.server").addFilter(MalformedRequests())
    config = _load(args.config, host=args.host, port=args.port, database=args.database)
    if config is None:
        log.error("refusing to start: the configuration is invalid")
        return 2
    if not config.auth.tokens:
        log.warning("no auth.tokens configured: the API is open, listening on loopback only")
    web.run_app(
        create_app(config),
        loop=_event_loop(),
        host=config.server.host,
        port=config.server.port,
        shutdown_timeout=config.server.shutdown_timeout_seconds,
        access_log=None,
        print=lambda msg: log.info(
            "listening on http://%s:%d", config.server.host, config.server.port
        ),
    )
    return 0


def _migrate_db(source: str, url: str) -> int:
    """Copy, print rows per table and "verified"; one line on stderr and exit 2 when refused
    (exit 1 when a started copy failed and was rolled back). The password is never printed."""
    from exporter.config import is_database_url, redact_url
    from exporter.storage.common import without_password
    from exporter.storage.postgres.from_sqlite import MigrationFailed, MigrationRefused, migrate

    shown = redact_url(url)

    def fail(message: str, status: int) -> int:
        message = without_password(message, url)  # a driver's message should not hold it
        print(f"integration-monitor migrate-db: {message}", file=sys.stderr)
        return status

    if not is_database_url(url):
        return fail(f"--to must be a postgresql:// URL, not {shown!r}", 2)
    try:
        copied = asyncio.run(migrate(source, url))
    except MigrationRefused as exc:
        return fail(f"{exc} ({shown})", 2)
    except MigrationFailed as exc:
        return fail(f"{exc} ({shown})", 1)
    width = max(len(name) for name in copied.rows)
    lines = [f"copied {source} into {shown} in {copied.seconds:.1f} s:"]
    lines += [f"  {name:<{width}}  {count:>10} rows" for name, count in copied.rows.items()]
    lines.append(
        "verified: every table has as many rows as in the SQLite file, and the counters "
        "sum to the same per kind"
    )
    return _print("\n".join(lines))


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (it serves about 15% more reports per CPU second here)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        from exporter.client import wrapper

        return wrapper.main(argv[1:])
    args = _parser().parse_args(argv)
    missing = _missing_server_module()
    if missing is not None:
        print(
            f"integration-monitor {args.command}: the server is not installed (no module"
            f" named {missing!r}); install it with: pip install '{SERVER_EXTRA}'",
            file=sys.stderr,
        )
        return 2
    if args.command == "serve":
        return _serve(args)
    if args.command == "migrate-db":
        return _migrate_db(args.source, args.target)
    config = _load(args.config)
    if config is None:
        return 2
    return _print(json.dumps(_redacted(config), indent=2))


def _missing_server_module() -> str | None:
    """The third-party module the server needs that cannot be imported, if one cannot.

    Importing the app imports the whole server. A module of this package that is missing is a
    broken install, not a missing extra: that raises as usual.
    """
    try:
        importlib.import_module("exporter.app")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] == "exporter":
            raise
        return exc.name
    return None


def _print(text: str) -> int:
    """Print to stdout; a reader that went away (`check-config | head -1`) is no error to show.

    As the Python docs advise for SIGPIPE: point stdout at devnull so the interpreter's own
    flush at exit finds nothing to complain about, and exit 1 as Python does on EPIPE.
    """
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
