"""The replicas scenario: the service on PostgreSQL, one replica and two behind HAProxy.

In one run, with the ingest scenario's load (same tool, clients and monitors): SQLite, then
PostgreSQL (a durable cluster of its own) with one replica at each pool size, then two
replicas behind the shipped proxy config; how long a report on one replica takes to show on
the other; and a failover run where one of the two is killed with SIGKILL under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace

import asyncpg

from bench.load import Load, LoadResult, background, drive, loadgen
from bench.postgres import Cluster, bin_dir, cluster
from bench.processes import Running, haproxy, haproxy_binary, service
from bench.results import at_least, at_most
from bench.scenarios import REPORT, Bench

SCENARIO = "replicas"
KEY_FORMAT = "m{:05d}"  # bench.plan.key, as post.lua and the seed name monitors
RATE = 3000.0  # one replica on PostgreSQL, reports/s (issue 12)
P99_MS = 50.0
PROPAGATION_P99_MS = 1000.0
DEFAULT_POOL = 10  # database.pool_size's default: the one the targets apply to


def available() -> str | None:
    """Why the scenario cannot run here, or None when it can."""
    if bin_dir() is None:
        return "PostgreSQL (Debian's postgresql) is not installed"
    if haproxy_binary() is None:
        return "haproxy is not installed"
    return None


def replicas(b: Bench) -> None:
    """SQLite, one PostgreSQL replica per pool size, two behind HAProxy, propagation and
    failover, all in this run."""
    binaries = bin_dir()
    if binaries is None:
        raise RuntimeError(available())
    n = b.sizes.ingest_monitors
    with b.service("replicas-sqlite", n, 0) as (running, _):
        r = b.ingest(running, n)
    _load_rows(b, f"SQLite, {n:,} monitors", r, None, None)
    with cluster(binaries) as pg:
        template = _seeded(b, pg, n)
        for pool in b.sizes.pool_sizes:
            url = pg.url(pg.database(template))
            with service(b.workdir, url, b.options, pool_size=pool) as one:
                before = pg.cpu_seconds()
                r = b.ingest(one, n)
                used = pg.cpu_seconds() - before
            label = f"PostgreSQL, 1 replica, pool_size {pool}"
            targeted = pool == DEFAULT_POOL
            _load_rows(b, label, r, RATE if targeted else None, P99_MS if targeted else None)
            b.row(SCENARIO, f"PostgreSQL CPU per report, {label}", _per(used, r), "µs", None)
        with _pair(b, pg.url(pg.database(template))) as (pair, proxy):
            before = pg.cpu_seconds()
            r, proxy_cpu = _through(b, pair, proxy, n)
            used = pg.cpu_seconds() - before
            label = "PostgreSQL, 2 replicas behind HAProxy"
            _load_rows(b, label, r, None, None)
            b.row(SCENARIO, f"PostgreSQL CPU per report, {label}", _per(used, r), "µs", None)
            b.row(SCENARIO, f"HAProxy CPU per report, {label}", proxy_cpu, "µs", None)
            _propagation(b, pair, n)
        _failover(b, pg.url(pg.database(template)), n)


def _seeded(b: Bench, pg: Cluster, monitors: int) -> str:
    """A database with the benchmark's monitors, created through the API of a replica that is
    stopped afterwards: the template of each measured database."""
    name = pg.database()
    with service(b.workdir, pg.url(name), b.options) as running:
        args = {"url": running.url, "keys": monitors, "key_format": KEY_FORMAT}
        loadgen("put_monitors", args, b.timeout(monitors))
    return name


@contextlib.contextmanager
def _pair(b: Bench, url: str) -> Iterator[tuple[tuple[Running, Running], Running]]:
    """Two replicas on `url` and the proxy in front of them."""
    with (
        service(b.workdir, url, b.options) as first,
        service(b.workdir, url, b.options) as second,
        haproxy(b.workdir, [first, second]) as proxy,
    ):
        yield (first, second), proxy


def _ingest_load(url: str, monitors: int) -> Load:
    return Load(url, "POST", "/api/v1/monitors/", "/batches", monitors, REPORT, "application/json")


def _through(
    b: Bench, pair: Sequence[Running], proxy: Running, monitors: int
) -> tuple[LoadResult, float]:
    """The ingest load through the proxy; CPU per report of the replicas together (in the
    result) and of the proxy."""
    before = [r.cpu_seconds() for r in pair]
    proxy_before = proxy.cpu_seconds()
    result = drive(_ingest_load(proxy.url, monitors), b.sizes.clients, b.sizes.duration, b.tool)
    used = sum(r.cpu_seconds() - x for r, x in zip(pair, before, strict=True))
    result = replace(result, cpu_seconds=used)
    return result, _per(proxy.cpu_seconds() - proxy_before, result)


def _per(cpu_seconds: float, r: LoadResult) -> float:
    """CPU microseconds per acknowledged report."""
    return cpu_seconds / r.ok * 1e6 if r.ok else math.nan


def _load_rows(b: Bench, label: str, r: LoadResult, rate: float | None, p99: float | None) -> None:
    b.row(SCENARIO, f"reports/s, {label}", r.rate, "reports/s", at_least(rate) if rate else None)
    b.row(SCENARIO, f"p50 latency, {label}", r.p50_ms, "ms", None)
    b.row(SCENARIO, f"p99 latency, {label}", r.p99_ms, "ms", at_most(p99) if p99 else None)
    b.row(SCENARIO, f"service CPU per report, {label}", r.cpu_us_per_report, "µs", None)
    if r.failed:
        b.row(SCENARIO, f"failed requests, {label}", r.failed, "", at_most(0))


def _propagation(b: Bench, pair: Sequence[Running], monitors: int) -> None:
    """Reports on the first replica until the second one's state (its API, its /metrics)
    shows them, one after another, polled every 2 ms."""
    samples = b.sizes.propagation_samples
    args = {
        "a": pair[0].url,
        "b": pair[1].url,
        "samples": samples,
        "keys": monitors,
        "key_format": KEY_FORMAT,
        "interval": 0.002,
        "timeout": 5.0,
    }
    r = loadgen("propagation", args, b.timeout(samples * 3))
    label = f"{samples} reports"
    b.row(SCENARIO, f"report on replica A to replica B, p50, {label}", r["p50_ms"], "ms", None)
    b.row(SCENARIO, f"report on replica A to replica B, p99, {label}", r["p99_ms"], "ms",
          at_most(PROPAGATION_P99_MS))  # fmt: skip
    b.row(SCENARIO, "report on replica A to replica B, max", r["max_ms"], "ms", None)
    b.row(SCENARIO, "reports not on replica B within 5 s", r["missed"], "", at_most(0))


def _failover(b: Bench, url: str, monitors: int) -> None:
    """Two replicas behind the proxy under the report load (Idempotency-Key on each report,
    sent again on 502/503/504 or a cut connection); the second is killed with SIGKILL halfway.
    Then: acknowledged reports missing from the database, and the errors clients saw."""
    s = b.sizes
    with _pair(b, url) as (pair, proxy):
        args = {
            "url": proxy.url,
            "clients": s.clients,
            "duration": s.duration,
            "keys": monitors,
            "key_format": KEY_FORMAT,
            "run": uuid.uuid4().hex[:12],
            "retry_seconds": 0.05,
            "give_up": 60.0,
            "request_timeout": 10,
        }
        with background("failover", args, s.duration + 300) as finished:
            time.sleep(0.5 + s.duration / 2)  # the load process takes ~0.5 s to start
            pair[1].process.kill()
            pair[1].process.wait(timeout=10)
            r = finished()
    acknowledged = r.pop("acknowledged")
    found, stored = asyncio.run(_stored(url, acknowledged))
    label = "2 replicas, one killed halfway"
    b.row(SCENARIO, f"acknowledged reports, {label}", len(acknowledged), "", None)
    b.row(SCENARIO, "acknowledged reports missing from the database", len(acknowledged) - found,
          "", at_most(0))  # fmt: skip
    b.row(SCENARIO, "stored reports beyond the acknowledged ones", stored - len(acknowledged), "",
          None)  # fmt: skip
    b.row(SCENARIO, "client errors (502/503/504, cut connections), sent again", r["errors"], "",
          None)  # fmt: skip
    b.row(SCENARIO, "from first to last client error", r["error_window_s"], "s", None)
    b.row(SCENARIO, "reports given up after 60 s or refused", r["gave_up"] + r["unexpected"], "",
          at_most(0))  # fmt: skip
    b.row(SCENARIO, f"reports/s, {label}", r["ok"] / r["seconds"], "reports/s", None)
    b.row(SCENARIO, f"p99 latency (first send to ack), {label}", r["p99_ms"], "ms", None)
    b.row(SCENARIO, f"slowest report (first send to ack), {label}", r["max_ms"], "ms", None)


async def _stored(url: str, ids: list[int]) -> tuple[int, int]:
    """How many of `ids` are stored batches, and how many batches are stored."""
    conn = await asyncpg.connect(url)
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM integration_monitor_batch WHERE id = ANY($1::bigint[])", ids
        )
        stored = await conn.fetchval("SELECT count(*) FROM integration_monitor_batch")
    finally:
        await conn.close()
    return int(found), int(stored)
