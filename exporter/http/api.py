"""The JSON API under /api/v1: thin handlers that validate at the edge and delegate."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from exporter.config import Role
from exporter.config.settings import MonitorBody, MonitorPatch
from exporter.core.errors import BatchNotFound, Unavailable
from exporter.core.records import KEY_PATTERN, Batch, MonitorSettings
from exporter.http import appkeys
from exporter.http.auth import ADMIN, PUSH, READ
from exporter.http.errors import ApiError
from exporter.http.handling import (
    Handler,
    caller_of,
    check_covered,
    decode_cursor,
    encode_cursor,
    idempotency,
    json_response,
    parse_body,
    path_int,
    query_int,
    require,
    visible_monitor,
)
from exporter.http.models import (
    BatchCreate,
    BatchLogCreate,
    BatchPage,
    BatchStored,
    BatchUpdate,
    BatchWithLogs,
    EvaluateBody,
    EvaluationList,
    LogCreate,
    LogPage,
    LogStored,
    MonitorList,
    MonitorOut,
    TransitionList,
)
from exporter.http.views import batch_json, evaluation_json, log_json, monitor_json, transition_json
from exporter.storage.interface import Stored

KEY_PATH = "/api/v1/monitors/{key}"
_KEY = re.compile(KEY_PATTERN)


@dataclass(frozen=True)
class Route:
    """One endpoint: registered from here and described in the OpenAPI document from here."""

    method: str
    path: str
    handler: Handler
    roles: frozenset[Role]
    summary: str
    status: int = 200
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    report_kind: str | None = None


def _key(request: web.Request) -> str:
    return request.match_info["key"]


async def list_monitors(request: web.Request) -> web.Response:
    covers = caller_of(request).covers
    items = [
        monitor_json(ms.monitor, ms.latest)
        for ms in request.app[appkeys.MONITORS].all()
        if covers(ms.monitor.integration_key)
    ]
    return json_response({"items": items})


async def get_monitor(request: web.Request) -> web.Response:
    ms = visible_monitor(request, _key(request))
    return json_response(monitor_json(ms.monitor, ms.latest))


async def put_monitor(request: web.Request) -> web.Response:
    key = _key(request)
    _check_key(key)
    caller = caller_of(request)
    if not caller.covers(key):  # the same answer whether the monitor exists or not
        raise ApiError("forbidden", f"Token {caller.name!r} does not cover {key!r}")
    body, _ = await parse_body(request, MonitorBody)
    settings = MonitorSettings(**body.model_dump())
    ms, created = await request.app[appkeys.MONITORS].put(key, settings)
    return json_response(monitor_json(ms.monitor, ms.latest), 201 if created else 200)


async def patch_monitor(request: web.Request) -> web.Response:
    key = _key(request)
    visible_monitor(request, key)
    body, _ = await parse_body(request, MonitorPatch)
    ms = await request.app[appkeys.MONITORS].patch(key, body.model_dump(exclude_none=True))
    return json_response(monitor_json(ms.monitor, ms.latest))


async def delete_monitor(request: web.Request) -> web.Response:
    key = _key(request)
    visible_monitor(request, key)
    await request.app[appkeys.MONITORS].delete(key)
    return web.Response(status=204)


async def list_transitions(request: web.Request) -> web.Response:
    ms = visible_monitor(request, _key(request))
    limit = query_int(request, "limit", 100, 1, 1000)
    rows = await request.app[appkeys.MONITORS].transitions(ms, limit)
    return json_response({"items": [transition_json(t) for t in rows]})


def _stored(name: str, record: dict[str, Any], stored: Stored[Any], status: int) -> web.Response:
    """A stored report's answer: the record, the truncated fields, whether it was a replay."""
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else None
    return json_response({name: record, "truncated": list(stored.truncated)}, status, headers)


async def create_batch(request: web.Request) -> web.Response:
    key = _key(request)
    check_covered(request, key)  # the report finds the monitor itself
    body, raw = await parse_body(request, BatchCreate)
    stored = await request.app[appkeys.REPORTS].create_batch(key, body, idempotency(request, raw))
    return _stored("batch", batch_json(stored.record), stored, 201)


async def _visible_batch(request: web.Request, batch_id: int) -> Batch:
    """The batch, if the caller's token covers its monitor; else 404 as if it did not exist."""
    batch = await request.app[appkeys.MONITORS].batch(batch_id)
    if batch is None or not caller_of(request).covers(batch.integration_key):
        raise BatchNotFound(batch_id)
    return batch


async def update_batch(request: web.Request) -> web.Response:
    batch_id = path_int(request, "id", "batch_not_found", "batch")
    caller = caller_of(request)
    if caller.scoped:  # a batch's monitor never changes: checked before the write is enough
        await _visible_batch(request, batch_id)
    body, raw = await parse_body(request, BatchUpdate)
    stored = await request.app[appkeys.REPORTS].update_batch(
        batch_id, body, idempotency(request, raw), token=caller.name
    )
    return _stored("batch", batch_json(stored.record), stored, 200)


async def get_batch(request: web.Request) -> web.Response:
    batch_id = path_int(request, "id", "batch_not_found", "batch")
    batch = await _visible_batch(request, batch_id)
    logs = await request.app[appkeys.MONITORS].batch_logs(batch_id, 1000)
    return json_response({"batch": batch_json(batch), "logs": [log_json(x) for x in logs]})


async def list_batches(request: web.Request) -> web.Response:
    ms = visible_monitor(request, _key(request))
    limit = query_int(request, "limit", 50, 1, 500)
    rows = await request.app[appkeys.MONITORS].batches(ms, limit, decode_cursor(request))
    last = rows[-1] if len(rows) == limit else None
    cursor = encode_cursor((last.starttime, last.id)) if last else None
    return json_response({"items": [batch_json(b) for b in rows], "next_cursor": cursor})


async def create_log(request: web.Request) -> web.Response:
    key = _key(request)
    check_covered(request, key)
    body, raw = await parse_body(request, LogCreate)
    stored = await request.app[appkeys.REPORTS].create_log(key, body, idempotency(request, raw))
    return _stored("log", log_json(stored.record), stored, 201)


async def create_batch_log(request: web.Request) -> web.Response:
    """A log in a batch named by its id alone: what a job holding only IM_BATCH_ID can send."""
    batch_id = path_int(request, "id", "batch_not_found", "batch")
    body, raw = await parse_body(request, BatchLogCreate)
    batch = await _visible_batch(request, batch_id)
    log = LogCreate(**body.model_dump(), batch_id=batch_id)
    stored = await request.app[appkeys.REPORTS].create_log(
        batch.integration_key, log, idempotency(request, raw)
    )
    return _stored("log", log_json(stored.record), stored, 201)


async def list_logs(request: web.Request) -> web.Response:
    ms = visible_monitor(request, _key(request))
    limit = query_int(request, "limit", 50, 1, 500)
    rows = await request.app[appkeys.MONITORS].logs(ms, limit, decode_cursor(request))
    last = rows[-1] if len(rows) == limit else None
    cursor = encode_cursor((last.created_at, last.id)) if last else None
    return json_response({"items": [log_json(x) for x in rows], "next_cursor": cursor})


async def evaluate(request: web.Request) -> web.Response:
    body, _ = await parse_body(request, EvaluateBody)
    caller = caller_of(request)
    keys = None
    if body.integration_key is not None:
        visible_monitor(request, body.integration_key)
        keys = [body.integration_key]
    elif caller.scoped:  # a token for some monitors evaluates, and learns of, those only
        keys = [
            ms.monitor.integration_key
            for ms in request.app[appkeys.MONITORS].all()
            if caller.covers(ms.monitor.integration_key)
        ]
    results = await request.app[appkeys.EVALUATOR].run_pass(keys)
    return json_response({"items": [evaluation_json(ms.monitor, r) for ms, r in results]})


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[appkeys.STORE].check_writable()
    except Unavailable:
        raise
    except Exception as exc:
        raise Unavailable(f"The database does not take writes: {exc}") from None
    return json_response({"status": "ready"})


def _check_key(key: str) -> None:
    if len(key) > 32 or not _KEY.match(key):
        raise ApiError(
            "validation_error",
            "integration_key must be 1-32 letters, digits, '.', '_', '-' or '~', "
            "starting with a letter or digit",
            "integration_key",
        )


ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/v1/monitors", list_monitors, READ, "List monitors", response=MonitorList),
    Route("GET", KEY_PATH, get_monitor, READ, "Get a monitor", response=MonitorOut),
    Route(
        "PUT",
        KEY_PATH,
        put_monitor,
        ADMIN,
        "Create or replace a monitor",
        200,
        MonitorBody,
        MonitorOut,
    ),
    Route(
        "PATCH",
        KEY_PATH,
        patch_monitor,
        ADMIN,
        "Change some settings of a monitor",
        200,
        MonitorPatch,
        MonitorOut,
    ),
    Route("DELETE", KEY_PATH, delete_monitor, ADMIN, "Delete a monitor and its history", 204),
    Route(
        "GET",
        KEY_PATH + "/transitions",
        list_transitions,
        READ,
        "Alert status changes, newest first",
        response=TransitionList,
    ),
    Route(
        "POST",
        KEY_PATH + "/batches",
        create_batch,
        PUSH,
        "Start or report a batch",
        201,
        BatchCreate,
        BatchStored,
        report_kind="batch",
    ),
    Route(
        "GET",
        KEY_PATH + "/batches",
        list_batches,
        READ,
        "A monitor's batches, newest first",
        response=BatchPage,
    ),
    Route(
        "PATCH",
        "/api/v1/batches/{id}",
        update_batch,
        PUSH,
        "Finish or update a batch",
        200,
        BatchUpdate,
        BatchStored,
        report_kind="batch_update",
    ),
    Route(
        "GET",
        "/api/v1/batches/{id}",
        get_batch,
        READ,
        "A batch with its logs",
        response=BatchWithLogs,
    ),
    Route(
        "POST",
        KEY_PATH + "/logs",
        create_log,
        PUSH,
        "Report a log message",
        201,
        LogCreate,
        LogStored,
        report_kind="log",
    ),
    Route(
        "POST",
        "/api/v1/batches/{id}/logs",
        create_batch_log,
        PUSH,
        "Report a log message in a batch (its monitor is the batch's)",
        201,
        BatchLogCreate,
        LogStored,
        report_kind="log",
    ),
    Route(
        "GET",
        KEY_PATH + "/logs",
        list_logs,
        READ,
        "A monitor's logs, newest first",
        response=LogPage,
    ),
    Route(
        "POST",
        "/api/v1/evaluate",
        evaluate,
        PUSH | ADMIN,
        "Evaluate now (all or one)",
        200,
        EvaluateBody,
        EvaluationList,
    ),
)


def add_routes(app: web.Application) -> None:
    for route in ROUTES:
        handler = require(route.roles, route.report_kind)(route.handler)
        app.router.add_route(route.method, route.path, handler)
        if route.method == "GET":  # as add_get does: HEAD wherever GET works
            app.router.add_route("HEAD", route.path, handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
