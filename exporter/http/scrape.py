"""GET /metrics: the exposition, in the format the scraper asks for."""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from exporter.http import appkeys
from exporter.http.auth import READ
from exporter.http.errors import ApiError
from exporter.http.handling import check_roles

OPENMETRICS = "application/openmetrics-text"


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (`gzip`, `*`; not with q=0)."""
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        name, _, value = params.strip().partition("=")
        if name.strip().lower() != "q":
            return True
        try:
            return float(value) > 0
        except ValueError:
            return False
    return False


async def metrics(request: web.Request) -> web.StreamResponse:
    config = request.app[appkeys.CONFIG]
    if config.metrics.require_auth and request.app[appkeys.AUTH].enabled:
        caller = await check_roles(request, READ, allow_session=True)
        if caller.scoped:
            raise ApiError(
                "forbidden",
                f"Token {caller.name!r} covers some monitors only; /metrics needs one that "
                "covers every monitor",
            )
    _, content_type = choose_encoder(request.headers.get("Accept", ""))
    exposition = request.app[appkeys.EXPOSITION]
    gzip = accepts_gzip(request.headers.get("Accept-Encoding", ""))
    chunks = await exposition.chunks_yielding(content_type.startswith(OPENMETRICS), gzip)
    # Sent chunk by chunk: at 10,000 monitors the text is megabytes, never joined in memory.
    headers = {"Content-Type": content_type, "Vary": "Accept-Encoding"}
    if gzip:
        headers["Content-Encoding"] = "gzip"
    response = web.StreamResponse(headers=headers)
    response.content_length = sum(len(chunk) for chunk in chunks)
    await response.prepare(request)
    for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


def add_metrics_route(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
