"""What every request passes before its handler: its Host, its origin, its body's type and time.

One middleware (each layer costs every request), cheap on the common path:
- `request_guard` keeps web pages in a browser from driving the service: without tokens the
  Host must be a loopback name or a configured one (DNS rebinding), a browser's cross-site
  request may not change anything or ping, and the JSON API takes only JSON bodies, so a
  cross-site "simple" form post cannot reach it. Then it has the body read:
- `BodyReader` reads each body before the handler within a deadline: one that trickles in is
  cut with 408; a client that goes away mid-body is a debug line; at shutdown, bodies still
  arriving are answered 503 with Retry-After instead of a cut connection.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
from collections.abc import Iterable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from exporter.http.errors import ApiError
from exporter.http.handling import RETRY_AFTER, Handler, error_response

log = logging.getLogger(__name__)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON_METHODS = frozenset({"POST", "PUT", "PATCH"})


def host_name(host: str) -> str:
    """The name of a Host header, without its port, in lower case: `[::1]:9812` -> `::1`."""
    if host.startswith("["):
        return host[1:].partition("]")[0].lower()
    name, _, port = host.rpartition(":")
    if not name or not port.isdigit() or ":" in name:  # no port, or a bare IPv6 address
        name = host
    return name.lower().rstrip(".")


@functools.lru_cache(maxsize=256)
def is_loopback_name(name: str) -> bool:
    """localhost, *.localhost (RFC 6761) or a loopback address: names no DNS can rebind."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class BodyReader:
    """Reads request bodies before their handlers, within `timeout` seconds each."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._reading: set[asyncio.Timeout] = set()
        self._closing = False

    async def on_shutdown(self, app: web.Application) -> None:
        """The service stops: answer every body still arriving now, not after the grace."""
        self._closing = True
        now = asyncio.get_running_loop().time()
        for deadline in self._reading:
            deadline.reschedule(now)

    async def read(self, request: web.Request) -> web.StreamResponse | None:
        """Read the body (aiohttp keeps it for the handler); an answer when it cannot be."""
        try:
            if self._closing:
                raise TimeoutError
            async with asyncio.timeout(self._timeout) as deadline:
                self._reading.add(deadline)
                try:
                    await request.read()
                finally:
                    self._reading.discard(deadline)
        except TimeoutError:
            if self._closing:
                error = ApiError("unavailable", "The service is shutting down; retry")
                answer = error_response(error, RETRY_AFTER)
            else:
                log.info(
                    "%s %s: the body did not arrive within %g s", request.method, request.path,
                    self._timeout,
                )  # fmt: skip
                message = f"The request body did not arrive within {self._timeout:g} s"
                answer = error_response(ApiError("request_timeout", message))
            answer.force_close()  # the rest of the body is not read
            return answer
        except ConnectionResetError:
            log.debug("%s %s: the client went away mid-body", request.method, request.path)
            return web.Response(status=400)  # nobody is left to read it
        return None


def request_guard(open_service: bool, hosts: Iterable[str], bodies: BodyReader) -> Middleware:
    """The middleware. `open_service`: no tokens, so only loopback names and `hosts` may be
    the Host; with tokens any Host may be, the token protects. `bodies` reads the body."""
    allowed = frozenset(host_name(h) for h in hosts if h)

    @functools.lru_cache(maxsize=256)
    def misdirected(host: str) -> str | None:
        """The name of a Host header this service does not answer to (cached: few differ)."""
        name = host_name(host)
        return None if name in allowed or is_loopback_name(name) else name

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if open_service:
            host = request.headers.get("Host")
            name = None if host is None else misdirected(host)
            if name is not None:
                raise ApiError(
                    "misdirected_request",
                    f"This service answers to loopback names only, not {name!r}; add it to "
                    "server.allowed_hosts or set server.base_url if it is meant",
                    "Host",
                )
        site = request.headers.get("Sec-Fetch-Site")
        if site not in (None, "same-origin", "none") and (
            request.method not in SAFE_METHODS or request.path.startswith("/ping/")
        ):
            raise ApiError(
                "cross_site_request",
                "A request from another site's page may not report or change anything",
                "Sec-Fetch-Site",
            )
        if (
            request.method in JSON_METHODS
            and request.path.startswith("/api/")
            and request.headers.get("Content-Type") != "application/json"  # as clients send it
            and request.content_type != "application/json"  # parameters, other spellings
        ):
            raise ApiError(
                "unsupported_media_type",
                "The API takes JSON: send Content-Type: application/json",
                "Content-Type",
            )
        # A body that has arrived whole (most do, in the headers' packet) needs no deadline.
        if request.body_exists and not request.content.is_eof():
            answer = await bodies.read(request)
            if answer is not None:
                return answer
        return await handler(request)

    return guard


class MalformedRequests(logging.Filter):
    """aiohttp logs every request it cannot parse (a NUL in a header, a broken request line)
    as an ERROR with a traceback: anyone could fill the log at will. The client got its 400;
    keep one debug line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.msg, record.args = "%s (request not parsed: %s)", (record.getMessage(), exc)
        record.exc_info = record.exc_text = None
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
