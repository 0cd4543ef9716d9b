"""HTTP plumbing shared by every endpoint: errors as JSON, bodies, roles, idempotency."""

from __future__ import annotations

import hashlib
import logging
import math
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from exporter import appkeys
from exporter.auth import bearer
from exporter.config import Role
from exporter.errors import ApiError
from exporter.store import BatchOfOtherMonitor, Idempotency, IdempotencyConflict, NotFound
from exporter.writer import WriterClosed

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_ID = 2**63 - 1  # SQLite's largest integer
REPORT_KIND = web.RequestKey("report_kind", str)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(error.body(), error.status, headers)


_HTTP_CODES = {
    404: ("not_found", "No such route"),
    405: ("method_not_allowed", "Method not allowed on this route"),
    413: ("body_too_large", "The request body is over the configured limit"),
}


def _as_api_error(exc: Exception) -> ApiError | None:
    match exc:
        case ApiError():
            return exc
        case NotFound():
            return ApiError(404, exc.code, str(exc), exc.field)
        case IdempotencyConflict():
            return ApiError(
                409,
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request",
                "Idempotency-Key",
            )
        case BatchOfOtherMonitor():
            return ApiError(409, "batch_monitor_mismatch", str(exc), "batch_id")
        case WriterClosed():
            return ApiError(503, "unavailable", "The service is shutting down")
        case sqlite3.OperationalError():  # disk full, read-only file, I/O error: retry later
            return ApiError(503, "unavailable", f"The database did not take the write: {exc}")
        case web.HTTPException() if exc.status in _HTTP_CODES:
            code, message = _HTTP_CODES[exc.status]
            return ApiError(exc.status, code, message)
    return None


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as JSON with a stable code; a rejected report is counted."""
    try:
        return await handler(request)
    except Exception as exc:
        error = _as_api_error(exc)
        if error is None:
            if isinstance(exc, web.HTTPException):
                raise
            log.exception("unexpected error on %s %s", request.method, request.path)
            error = ApiError(500, "internal_error", "Unexpected error; see the service log")
        kind = request.get(REPORT_KIND)
        if kind is not None:
            request.app[appkeys.STATS].report(kind, "rejected")
        headers = (
            {"Allow": ",".join(sorted(exc.allowed_methods))}
            if isinstance(exc, web.HTTPMethodNotAllowed)
            else None
        )
        return error_response(error, headers)


def require(roles: frozenset[Role], report_kind: str | None = None) -> Callable[[Handler], Handler]:
    """Wrap a handler so it runs only for a bearer token holding one of `roles`."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if report_kind is not None:
                request[REPORT_KIND] = report_kind
            check_roles(request, roles)
            return await handler(request)

        guarded.__name__ = handler.__name__
        guarded.__doc__ = handler.__doc__
        return guarded

    return wrap


def check_roles(request: web.Request, roles: frozenset[Role], secret: str | None = None) -> None:
    """401 unless the token (the bearer header's, or `secret`) is known; 403 without a role."""
    if secret is None:
        secret = bearer(request.headers.get("Authorization"))
    found = request.app[appkeys.AUTH].identify(secret)
    if found is None:
        raise ApiError(401, "unauthorized", "A valid token is required")
    if not roles & found[1]:
        wanted = " or ".join(sorted(roles))
        raise ApiError(403, "forbidden", f"Token {found[0]!r} lacks the {wanted} role")


def _field(loc: tuple[int | str, ...]) -> str | None:
    return ".".join(str(p) for p in loc) or None


async def parse_body(request: web.Request, model: type[M]) -> tuple[M, bytes]:
    """Validate the JSON body (empty counts as {}); return the model and the raw bytes."""
    raw = await request.read()
    try:
        return model.model_validate_json(raw.strip() or b"{}"), raw
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] in ("json_invalid", "model_type"):
            raise ApiError(400, "invalid_json", "The body must be a JSON object") from None
        field = _field(first["loc"])
        raise ApiError(422, "validation_error", f"{field}: {first['msg']}", field) from None


def idempotency(request: web.Request, raw: bytes) -> Idempotency | None:
    """The request's Idempotency-Key with a fingerprint of what it asks for."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 128:
        raise ApiError(
            422,
            "validation_error",
            "Idempotency-Key must be 1 to 128 characters",
            "Idempotency-Key",
        )
    fingerprint = hashlib.sha256(
        request.method.encode() + b" " + request.path.encode() + b"\n" + raw
    ).hexdigest()
    return Idempotency(key, fingerprint)


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError(422, "validation_error", f"{name} must be an integer {low}..{high}", name)
    return value


def path_int(request: web.Request, name: str, code: str, what: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise ApiError(404, code, f"No {what} with id {raw!r}")
    return int(raw)


def encode_cursor(position: tuple[float, int]) -> str:
    return f"{position[0]!r}_{position[1]}"


def decode_cursor(request: web.Request) -> tuple[float, int] | None:
    raw = request.query.get("cursor")
    if not raw:
        return None
    ts, _, ident = raw.partition("_")
    try:
        position = float(ts), int(ident)
    except ValueError:
        position = (math.nan, 0)
    if not math.isfinite(position[0]) or not 0 <= position[1] <= MAX_ID:
        raise ApiError(422, "validation_error", "cursor is not one this API gave", "cursor")
    return position
