"""Ping URLs: one-line reports for curl and shell, mapped onto batches (or logs)."""

from __future__ import annotations

from aiohttp import web

from exporter import appkeys
from exporter.api import PUSH
from exporter.errors import ApiError
from exporter.handling import caller_of, json_response, require, visible_monitor
from exporter.models import TEXT_LIMITS, BatchCreate, BatchUpdate, LogCreate
from exporter.views import batch_json, log_json

# What each ping means: (status, text field for the body).
_OUTCOMES = {"": ("ok", "logtext"), "start": ("running", "logtext"), "fail": ("error", "errormsg")}


def _outcome(action: str) -> tuple[str, str, str]:
    """(status, body field, default text) of a ping action: '', start, fail or an exit code."""
    if action in _OUTCOMES:
        status, field = _OUTCOMES[action]
        return status, field, ""
    if action.isdigit() and len(action) <= 3 and int(action) <= 255:
        code = int(action)
        if code == 0:
            return "ok", "logtext", ""
        return "error", "errormsg", f"exit code {code}"
    raise ApiError(
        404, "not_found", "Ping actions are /start, /fail or an exit code 0-255", "action"
    )


async def _text(request: web.Request, default: str) -> str:
    raw = await request.read()
    body = raw.decode("utf-8", errors="replace").strip()
    if default and body:
        return f"{default}: {body}"
    return body or default


async def ping(request: web.Request) -> web.Response:
    """Record a ping.

    1. Map the action to a status: success, start (running), fail, or an exit code.
    2. Message monitors: store one log with that status and the body as its text.
    3. Batch monitors: start opens a running batch (integrationid = rid). A finish closes the
       running batch with the same rid, or else the monitor's latest run if it is running;
       with none to close, it stores a finished batch of its own.
    """
    key = request.match_info["key"]
    status, field, default = _outcome(request.match_info.get("action", ""))
    text = await _text(request, default)
    rid = request.query.get("rid", "")[: TEXT_LIMITS["integrationid"]]
    reports = request.app[appkeys.REPORTS]
    ms = visible_monitor(request, key)
    if ms.monitor.settings.type == "message":
        text_field = "message" if field == "logtext" else field
        log = LogCreate.model_validate(
            {"logstatus": status, "integrationid": rid, text_field: text}
        )
        stored_log = await reports.create_log(key, log, None, kind="ping")
        return json_response({"log": log_json(stored_log.record)}, 201)
    if status != "running":
        open_batch = await _running_batch(request, ms.monitor.id, rid)
        if open_batch is not None:
            update = BatchUpdate.model_validate({"logstatus": status, field: text})
            stored = await reports.update_batch(
                open_batch, update, None, kind="ping", token=caller_of(request).name
            )
            return json_response({"batch": batch_json(stored.record)})
    create = BatchCreate.model_validate({"logstatus": status, "integrationid": rid, field: text})
    stored = await reports.create_batch(key, create, None, kind="ping")
    return json_response({"batch": batch_json(stored.record)}, 201)


async def _running_batch(request: web.Request, monitor_id: int, rid: str) -> int | None:
    if rid:
        found = await request.app[appkeys.STORE].find_running_batch(monitor_id, rid)
        return None if found is None else found.id
    ms = request.app[appkeys.STATE].by_id(monitor_id)
    latest = None if ms is None else ms.latest
    if latest is not None and latest.kind == "batch" and latest.endtime is None:
        return latest.id
    return None


def add_ping_routes(app: web.Application) -> None:
    handler = require(PUSH, "ping")(ping)
    for path in ("/ping/{key}", "/ping/{key}/{action}"):
        app.router.add_route("GET", path, handler)
        app.router.add_route("POST", path, handler)
