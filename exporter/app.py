"""The app factory: assembles config, store, state, reports, evaluation and HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from exporter.config import Config
from exporter.core.records import MonitorSettings
from exporter.http import appkeys
from exporter.http.api import READ, add_routes
from exporter.http.auth import Auth
from exporter.http.errors import ApiError
from exporter.http.guards import BodyReader, request_guard
from exporter.http.handling import check_roles, errors_middleware, json_response
from exporter.http.openapi import openapi_document
from exporter.http.ping import add_ping_routes
from exporter.http.sessions import Sessions
from exporter.metrics.exposition import Exposition
from exporter.metrics.families import MonitorCollector, build_registry, service_registry
from exporter.service.evaluator import Evaluator
from exporter.service.reports import Reports
from exporter.service.state import DurationBuckets, State
from exporter.service.stats import ServiceStats
from exporter.statuspage.pages import setup_status_page
from exporter.storage.sqlite.store import Store

log = logging.getLogger(__name__)
DAY = 86400.0
OPENMETRICS = "application/openmetrics-text"


async def metrics(request: web.Request) -> web.StreamResponse:
    config = request.app[appkeys.CONFIG]
    if config.metrics.require_auth and request.app[appkeys.AUTH].enabled:
        caller = await check_roles(request, READ, allow_session=True)
        if caller.scoped:
            raise ApiError(
                403,
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


async def openapi(request: web.Request) -> web.Response:
    await check_roles(request, READ, allow_session=True)
    return json_response(openapi_document())


async def _retention_loop(app: web.Application) -> None:
    config, store, clock = app[appkeys.CONFIG], app[appkeys.STORE], app[appkeys.CLOCK]
    while True:
        await asyncio.sleep(config.retention.interval_seconds)
        try:
            now = clock()
            deleted = await store.prune(
                now - config.retention.max_age_days * DAY,
                now - DAY,
                config.reports.max_clock_skew_seconds,
                config.retention.transitions_per_monitor,
            )
            log.info("retention: pruned %d batches and logs", deleted)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention pass failed")


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Open the store, load the state, upsert configured monitors, run the loops; then close."""
    config, store, state = app[appkeys.CONFIG], app[appkeys.STORE], app[appkeys.STATE]
    await store.open()
    severities, skew = config.severities(), config.reports.max_clock_skew_seconds
    now = app[appkeys.CLOCK]()
    ok = [s for s, sev in severities.items() if sev == "ok"]
    if repaired := await store.repair_success_times(now + skew, ok):
        log.warning("database %s: %d last-success times lay in the future", store.path, repaired)
    finished = [s for s, sev in severities.items() if sev != "running"]
    state.load(await store.load_runs(finished, skew))
    for declared in config.monitors:
        values = declared.model_dump()
        key = values.pop("integration_key")
        monitor, _ = await store.put_monitor(key, MonitorSettings(**values), now)
        state.put_monitor(monitor)
    log.info("database %s: %d monitors loaded", store.path, len(state.monitors))
    # What start-up loaded lives as long as the process: keep the collector from scanning it
    # again at every full collection (those showed as 40-110 ms stalls at 10,000 monitors).
    gc.collect()
    gc.freeze()
    evaluator = app[appkeys.EVALUATOR]
    tasks = [
        asyncio.create_task(evaluator.loop(config.evaluation.interval_seconds), name="evaluation"),
        asyncio.create_task(_retention_loop(app), name="retention"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await evaluator.drain()
        await store.close()
        log.info("database %s: closed, every acknowledged report committed", store.path)


def create_app(config: Config, clock: Callable[[], float] = time.time) -> web.Application:
    """Build the service for `config`; the store opens when the app starts."""
    server = config.server
    bodies = BodyReader(server.read_timeout_seconds)
    hosts = (*server.allowed_hosts, urlsplit(server.base_url).hostname or "")
    app = web.Application(
        client_max_size=server.max_body_bytes,
        middlewares=[errors_middleware, request_guard(not config.auth.tokens, hosts, bodies)],
    )
    app.on_shutdown.append(bodies.on_shutdown)
    state = State(config.severities(), config.reports.max_clock_skew_seconds)
    stats = ServiceStats()
    store = Store(config.database.path, config.database.max_group_size, config.database.synchronous)
    buckets = DurationBuckets(config.metrics.duration_buckets)
    evaluator = Evaluator(state, store, clock, stats, config.evaluation.chunk_size)
    app[appkeys.CONFIG] = config
    app[appkeys.CLOCK] = clock
    app[appkeys.STORE] = store
    app[appkeys.STATE] = state
    app[appkeys.STATS] = stats
    auth = app[appkeys.AUTH] = Auth(config.auth.tokens)
    app[appkeys.SESSIONS] = Sessions(store, auth, clock)
    app[appkeys.EVALUATOR] = evaluator
    app[appkeys.REPORTS] = Reports(store, state, buckets, clock, stats, evaluator.after_report)
    monitors = MonitorCollector(state, buckets)
    service = service_registry(state, stats, config.evaluation.interval_seconds, store)
    app[appkeys.REGISTRY] = build_registry(monitors, service)
    app[appkeys.EXPOSITION] = Exposition(state, monitors, service)
    add_routes(app)
    add_ping_routes(app)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/openapi.json", openapi)
    setup_status_page(app)
    app.cleanup_ctx.append(_lifecycle)
    return app
