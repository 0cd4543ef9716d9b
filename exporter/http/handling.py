"""HTTP plumbing shared by every endpoint: errors as JSON, bodies, roles, idempotency."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from exporter.config import Role
from exporter.core.errors import DomainError, MonitorNotFound
from exporter.http import appkeys
from exporter.http.auth import Caller, bearer
from exporter.http.errors import ApiError
from exporter.service.state import MonitorState
from exporter.storage.interface import Idempotency

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_ID = 2**63 - 1  # SQLite's largest integer
REPORT_KIND = web.RequestKey("report_kind", str)
CALLER = web.RequestKey("caller", Caller)
SESSION_COOKIE = "im_session"
# No browser may guess another type, and no cache may keep an answer: they are live state.
JSON_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
RETRY_AFTER = {"Retry-After": "5"}  # 503s: shutting down or a database not writable for now


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers=JSON_HEADERS if headers is None else {**JSON_HEADERS, **headers},
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
        case DomainError():
            return ApiError.of(exc)
        case web.HTTPException() if exc.status in _HTTP_CODES:
            code, message = _HTTP_CODES[exc.status]
            return ApiError(code, message)
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
            error = ApiError("internal_error", "Unexpected error; see the service log")
        kind = request.get(REPORT_KIND)
        if kind is not None:
            request.app[appkeys.STATS].report(kind, "rejected")
        headers = None
        if isinstance(exc, web.HTTPMethodNotAllowed):
            headers = {"Allow": ",".join(sorted(exc.allowed_methods))}
        elif error.status == 503:
            headers = RETRY_AFTER
        return error_response(error, headers)


def require(roles: frozenset[Role], report_kind: str | None = None) -> Callable[[Handler], Handler]:
    """Wrap a handler so it runs only for a caller holding one of `roles`."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if report_kind is not None:
                request[REPORT_KIND] = report_kind
            await check_roles(request, roles)
            return await handler(request)

        guarded.__name__ = handler.__name__
        guarded.__doc__ = handler.__doc__
        return guarded

    return wrap


async def authenticate(request: web.Request, allow_session: bool = False) -> Caller | None:
    """Who sent the request: its bearer token, or (where `allow_session`: the status page and
    its nav links) the sign-in session of its cookie."""
    auth = request.app[appkeys.AUTH]
    header = request.headers.get("Authorization")
    if header is None and allow_session and auth.enabled:
        session = request.cookies.get(SESSION_COOKIE)
        if session:
            return await request.app[appkeys.SESSIONS].caller(session)
    return auth.identify(bearer(header))


async def check_roles(
    request: web.Request, roles: frozenset[Role], allow_session: bool = False
) -> Caller:
    """The caller; 401 unless its token is known, 403 without one of `roles`."""
    caller = await authenticate(request, allow_session)
    if caller is None:
        raise ApiError("unauthorized", "A valid token is required")
    if not roles & caller.roles:
        wanted = " or ".join(sorted(roles))
        raise ApiError("forbidden", f"Token {caller.name!r} lacks the {wanted} role")
    request[CALLER] = caller
    return caller


def caller_of(request: web.Request) -> Caller:
    """The caller that `require` (or `check_roles`) let through."""
    return request[CALLER]


def check_covered(request: web.Request, key: str) -> None:
    """404, as if the monitor did not exist, unless the caller's token covers `key`: a token
    scoped to some monitors learns nothing of the others."""
    if not caller_of(request).covers(key):
        raise MonitorNotFound(key)


def visible_monitor(request: web.Request, key: str) -> MonitorState:
    """The monitor, if the caller's token covers it (see `check_covered`)."""
    ms = request.app[appkeys.MONITORS].get(key)
    check_covered(request, key)
    return ms


def _field(loc: tuple[int | str, ...]) -> str | None:
    return ".".join(str(p) for p in loc) or None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen = dict(pairs)
    if len(seen) != len(pairs):
        names = [name for name, _ in pairs]
        twice = next(name for name in names if names.count(name) > 1)
        raise ApiError("invalid_json", f"The key {twice!r} appears twice", twice)
    return seen


_DUPLICATES = json.JSONDecoder(object_pairs_hook=_unique_keys)


async def parse_body(request: web.Request, model: type[M]) -> tuple[M, bytes]:
    """Validate the JSON body (empty counts as {}); return the model and the raw bytes.

    A key given twice is refused rather than read as its last value: two parsers (or a
    proxy and the service) could disagree on which one counts.
    """
    raw = await request.read()
    try:
        body = model.model_validate_json(raw.strip() or b"{}")
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] in ("json_invalid", "model_type"):
            raise ApiError("invalid_json", "The body must be a JSON object") from None
        field = _field(first["loc"])
        raise ApiError("validation_error", f"{field}: {first['msg']}", field) from None
    if raw:
        with contextlib.suppress(ValueError):  # what the validator took is JSON; be safe
            _DUPLICATES.decode(raw.decode())
    return body, raw


MAX_IDEMPOTENCY_KEY = 255


def idempotency(request: web.Request, raw: bytes) -> Idempotency | None:
    """The request's Idempotency-Key with a fingerprint of what it asks for, scoped to its
    caller: visible ASCII, 1 to 255 characters, else 400."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not (1 <= len(key) <= MAX_IDEMPOTENCY_KEY and key.isascii() and key.isprintable()) or (
        " " in key
    ):
        raise ApiError(
            "invalid_header",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters "
            "(a UUID is usual)",
            "Idempotency-Key",
        )
    fingerprint = hashlib.sha256(
        request.method.encode() + b" " + request.rel_url.raw_path.encode() + b"\n" + raw
    ).hexdigest()
    return Idempotency(key, fingerprint, caller_of(request).name)


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError("validation_error", f"{name} must be an integer {low}..{high}", name)
    return value


def path_int(request: web.Request, name: str, code: str, what: str) -> int:
    raw = request.match_info[name]
    # ASCII digits only: str.isdigit alone takes '٣' (Arabic-Indic three) for 3
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= MAX_ID:
        raise ApiError(code, f"No {what} with id {raw!r}")
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
        raise ApiError("validation_error", "cursor is not one this API gave", "cursor")
    return position
