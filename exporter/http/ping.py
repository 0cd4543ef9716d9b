"""Ping URLs: one-line reports for curl and shell, mapped onto batches (or logs).

The paths and the answers are Healthchecks' (`/ping/{key}`, `/start`, `/fail`, `/log`, `/{exit
code}`; `200` with the text `OK`), so its clients and wrappers (runitor, hchk, a shell line
that checks for `OK`) work unchanged. The answer never repeats the job's text: a client that
reads "not found" in it must not take a job's "file not found" for a missing check.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from exporter.core.reports import TEXT_LIMITS
from exporter.http import appkeys
from exporter.http.auth import PUSH
from exporter.http.errors import ApiError
from exporter.http.handling import caller_of, json_response, require, visible_monitor
from exporter.http.models import BatchCreate, BatchUpdate, LogCreate

LOG = "log"
MAX_EXIT_CODE = 255


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a ping action means: the run's status, where its body goes, a text of its own."""

    status: str
    field: str  # logtext or errormsg
    text: str = ""


_ACTIONS = {
    "": Outcome("ok", "logtext"),
    "start": Outcome("running", "logtext"),
    "fail": Outcome("error", "errormsg"),
    LOG: Outcome("ok", "message"),
}


def outcome(action: str) -> Outcome:
    """The outcome of a ping action: '', start, fail, log, or an exit code of ASCII digits.

    `str.isdigit` alone would take '٣' (Arabic-Indic three) or '³' for a digit.
    """
    if action in _ACTIONS:
        return _ACTIONS[action]
    if action.isascii() and action.isdigit() and len(action) <= 3 and int(action) <= MAX_EXIT_CODE:
        code = int(action)
        if code == 0:
            return _ACTIONS[""]
        return Outcome("error", "errormsg", f"exit code {code}")
    raise ApiError(
        "invalid_ping_action",
        f"A ping ends in /start, /fail, /log or an exit code 0-{MAX_EXIT_CODE}, not {action!r}",
        "action",
    )


async def _text(request: web.Request, default: str) -> str:
    raw = await request.read()
    body = raw.decode("utf-8", errors="replace").strip()
    if default and body:
        return f"{default}: {body}"
    return body or default


def _answer(request: web.Request, stored: dict[str, object]) -> web.Response:
    """Healthchecks' answer, `OK`; JSON (ids and status, no text) when the client asks for it."""
    if "application/json" in request.headers.get("Accept", ""):
        return json_response(stored)
    return web.Response(text="OK", content_type="text/plain")


async def ping(request: web.Request) -> web.Response:
    """Record a ping.

    1. Map the action to a status: success, start (running), fail, log, or an exit code.
    2. Message monitors: store one log with that status and the body as its text.
    3. Batch monitors: start opens a running batch (integrationid = rid). A finish closes the
       running batch with the same rid, or else the monitor's latest run if it is running;
       with none to close, it stores a finished batch of its own. A log is stored in the
       batch a finish would close (or outside batches), and changes no run's status.
    """
    key = request.match_info["key"]
    action = request.match_info.get("action", "")
    meant = outcome(action)
    text = await _text(request, meant.text)
    rid = request.query.get("rid", "")[: TEXT_LIMITS["integrationid"]]
    reports = request.app[appkeys.REPORTS]
    ms = visible_monitor(request, key)
    if ms.monitor.settings.type == "message":
        if action == LOG:
            raise ApiError(
                "monitor_type_mismatch",
                f"Every log of message monitor {key!r} is a run: report it with /ping/{key} "
                "or /fail; /log adds a message to a batch monitor's run",
            )
        text_field = "message" if meant.field == "logtext" else meant.field
        log = LogCreate.model_validate(
            {"logstatus": meant.status, "integrationid": rid, text_field: text}
        )
        stored_log = (await reports.create_log(key, log, None, kind="ping")).record
        return _answer(request, {"log_id": stored_log.id, "logstatus": stored_log.logstatus})
    monitors = request.app[appkeys.MONITORS]
    open_batch = None if meant.status == "running" else await monitors.running_batch(ms, rid)
    if action == LOG:
        note = LogCreate.model_validate(
            {
                "logstatus": meant.status,
                "integrationid": rid,
                meant.field: text,
                "batch_id": open_batch,
            }
        )
        stored_note = (await reports.create_log(key, note, None, kind="ping")).record
        return _answer(request, {"log_id": stored_note.id, "batch_id": stored_note.batch_id})
    if open_batch is not None:
        update = BatchUpdate.model_validate({"logstatus": meant.status, meant.field: text})
        stored = (
            await reports.update_batch(
                open_batch, update, None, kind="ping", token=caller_of(request).name
            )
        ).record
    else:
        create = BatchCreate.model_validate(
            {"logstatus": meant.status, "integrationid": rid, meant.field: text}
        )
        stored = (await reports.create_batch(key, create, None, kind="ping")).record
    return _answer(request, {"batch_id": stored.id, "logstatus": stored.logstatus})


def add_ping_routes(app: web.Application) -> None:
    """GET, HEAD and POST alike, as Healthchecks takes them (uptime tools send HEAD)."""
    handler = require(PUSH, "ping")(ping)
    for path in ("/ping/{key}", "/ping/{key}/{action}"):
        for method in ("GET", "HEAD", "POST"):
            app.router.add_route(method, path, handler)
