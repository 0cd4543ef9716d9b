"""The app factory: builds the store, the state, the services and the HTTP routes from the
config, and opens and closes them with the app. The one place where the layers meet."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

from aiohttp import web

from exporter.config import Config, DatabaseConfig
from exporter.core.counters import CounterRules, DurationBuckets
from exporter.core.records import MonitorSettings
from exporter.http import appkeys
from exporter.http.api import add_routes
from exporter.http.auth import Auth
from exporter.http.guards import BodyReader, request_guard
from exporter.http.handling import errors_middleware
from exporter.http.openapi import add_openapi_route
from exporter.http.ping import add_ping_routes
from exporter.http.scrape import add_metrics_route
from exporter.http.sessions import Sessions
from exporter.metrics.exposition import Exposition
from exporter.metrics.families import Shape
from exporter.metrics.service import service_registry
from exporter.service.evaluator import Evaluator
from exporter.service.follower import Follower
from exporter.service.lease import Lease
from exporter.service.monitors import Monitors
from exporter.service.reports import Reports
from exporter.service.retention import retention_loop
from exporter.service.state import State
from exporter.service.stats import ServiceStats
from exporter.statuspage.pages import setup_status_page
from exporter.storage.interface import Store
from exporter.storage.postgres.store import PostgresStore
from exporter.storage.sqlite.store import SqliteStore

log = logging.getLogger(__name__)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Open the store, load the state and the configured monitors, run the loops; then close."""
    config, store = app[appkeys.CONFIG], app[appkeys.STORE]
    await store.open()
    # Listen to the other replicas before loading: nothing written meanwhile is missed.
    feed = store.changes()
    shared = await anext(feed, "alone") is None
    declared = []
    for monitor in config.monitors:
        values = monitor.model_dump()
        declared.append((values.pop("integration_key"), MonitorSettings(**values)))
    skew = config.reports.max_clock_skew_seconds
    count = await app[appkeys.MONITORS].load(declared, skew)
    log.info("database %s: %d monitors loaded", store.description, count)
    # What start-up loaded lives as long as the process: keep the collector from scanning it
    # again at every full collection (those showed as 40-110 ms stalls at 10,000 monitors).
    gc.collect()
    gc.freeze()
    evaluator, retention, lease = app[appkeys.EVALUATOR], config.retention, app[appkeys.LEASE]
    if shared:
        log.info(
            "database %s: shared with other replicas; following their writes", store.description
        )
    await lease.renew()
    lease.on_taken = evaluator.wake
    tasks = [
        asyncio.create_task(evaluator.loop(config.evaluation.interval_seconds), name="evaluation"),
        asyncio.create_task(lease.loop(), name="lease"),
        asyncio.create_task(
            retention_loop(
                store,
                app[appkeys.CLOCK],
                retention.interval_seconds,
                retention.max_age_days,
                skew,
                retention.transitions_per_monitor,
                lambda: lease.held,
            ),
            name="retention",
        ),
    ]
    if shared:
        tasks.append(asyncio.create_task(app[appkeys.FOLLOWER].run(feed), name="follower"))
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
        log.info("database %s: closed, every acknowledged report committed", store.description)


def open_store(database: DatabaseConfig) -> Store:
    """The store the config names: PostgreSQL for a URL, else the SQLite file."""
    if database.url:
        return PostgresStore(
            database.url, database.location, database.pool_size, database.max_group_size
        )
    return SqliteStore(database.path, database.max_group_size, database.synchronous)


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
    severities = config.severities()
    state = State(severities, config.reports.max_clock_skew_seconds)
    stats = ServiceStats()
    store = open_store(config.database)
    rules = CounterRules(severities, DurationBuckets(config.metrics.duration_buckets))
    lease = Lease(store, config.database.lease_seconds)
    evaluator = Evaluator(
        state, store, clock, stats, config.evaluation.chunk_size, lambda: lease.held
    )
    monitors = Monitors(store, state, clock, evaluator.after_report)
    app[appkeys.FOLLOWER] = Follower(store, state, evaluator.after_report)
    app[appkeys.LEASE] = lease
    auth = Auth(config.auth.tokens)
    interval = config.evaluation.interval_seconds
    app[appkeys.CONFIG] = config
    app[appkeys.CLOCK] = clock
    app[appkeys.STORE] = store
    app[appkeys.STATE] = state
    app[appkeys.STATS] = stats
    app[appkeys.RULES] = rules
    app[appkeys.AUTH] = auth
    app[appkeys.SESSIONS] = Sessions(store, auth, clock)
    app[appkeys.EVALUATOR] = evaluator
    app[appkeys.MONITORS] = monitors
    app[appkeys.REPORTS] = Reports(
        store, state, monitors, rules, clock, stats, evaluator.after_report
    )
    service = service_registry(state, stats, interval, store.stats, lambda: lease.held)
    shape = Shape.of(state, rules.buckets, config.metrics.duration_histogram)
    app[appkeys.EXPOSITION] = Exposition(state, shape, service)
    add_routes(app)
    add_ping_routes(app)
    add_metrics_route(app)
    add_openapi_route(app)
    setup_status_page(app)
    app.cleanup_ctx.append(_lifecycle)
    return app
