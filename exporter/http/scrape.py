"""GET /metrics: the exposition, in the format the scraper asks for."""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from exporter.http import appkeys
from exporter.http.auth import READ
from exporter.http.errors import ApiError
from exporter.http.handling import check_roles

OPENMETRICS = "application/openmetrics-text"


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
    chunks = await exposition.chunks_yielding(content_type.startswith(OPENMETRICS))
    # Sent chunk by chunk: at 10,000 monitors the text is tens of MB, never joined in memory.
    response = web.StreamResponse(headers={"Content-Type": content_type})
    response.content_length = sum(len(chunk) for chunk in chunks)
    await response.prepare(request)
    for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


def add_metrics_route(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
