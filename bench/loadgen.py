"""The load process: an asyncio aiohttp client, run as `python -m bench.loadgen MODE JSON_ARGS`.

It prints one JSON object on stdout. Every mode is bounded both in requests and in time. Modes:
post (N clients posting reports), scrapes (back-to-back GET /metrics), scrape_every (one GET
/metrics per interval), alert (time from a failed report's 2xx to its alert on /metrics),
evaluate (POST /api/v1/evaluate while a /healthz probe measures event-loop stalls).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

Args = dict[str, Any]
TIMEOUT = aiohttp.ClientTimeout(total=60)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "count": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms, default=math.nan),
    }


def metric_value(text: str, name: str) -> float | None:
    """The value of an unlabelled sample in the Prometheus text format."""
    prefix = name + " "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


async def post(session: aiohttp.ClientSession, a: Args) -> Args:
    """`clients` workers post `body` to prefix + key + suffix, keys round robin, until deadline."""
    body = a["body"].encode()
    headers = {"Content-Type": a["content_type"]}
    keys = [a["key_format"].format(i) for i in range(a["keys"])]
    counter = itertools.count()
    latencies: list[float] = []
    failed = 0
    deadline = time.perf_counter() + a["duration"]

    async def worker() -> None:
        nonlocal failed
        while time.perf_counter() < deadline:
            n = next(counter)
            if n >= a["max_requests"]:
                return
            url = a["url"] + a["prefix"] + keys[n % len(keys)] + a["suffix"]
            started = time.perf_counter()
            async with session.request(a["method"], url, data=body, headers=headers) as r:
                await r.read()
                if 200 <= r.status < 300:
                    latencies.append(time.perf_counter() - started)
                else:
                    failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(a["clients"])))
    seconds = time.perf_counter() - started
    return {**summary_ms(latencies), "seconds": seconds, "ok": len(latencies), "failed": failed}


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    async with session.get(url) as response:
        body = await response.read()
        response.raise_for_status()
    return time.perf_counter() - started, body


async def scrapes(session: aiohttp.ClientSession, a: Args) -> Args:
    """A first scrape of /metrics, then `count` more back to back (bounded by `timeout` s)."""
    first, body = await _get(session, a["url"] + "/metrics")
    latencies: list[float] = []
    deadline = time.perf_counter() + a["timeout"]
    for _ in range(a["count"]):
        if time.perf_counter() > deadline:
            break
        seconds, body = await _get(session, a["url"] + "/metrics")
        latencies.append(seconds)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return {**summary_ms(latencies), "first_ms": first * 1000, "bytes": len(body), "series": series}


async def scrape_every(session: aiohttp.ClientSession, a: Args) -> Args:
    """One scrape of /metrics every `interval` seconds for `duration` seconds, as Prometheus."""
    latencies: list[float] = []
    started = time.perf_counter()
    for n in range(int(a["duration"] / a["interval"]) + 1):
        due = started + n * a["interval"]
        if due > started + a["duration"]:
            break
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        latencies.append((await _get(session, a["url"] + "/metrics"))[0])
    return summary_ms(latencies)


async def alert(session: aiohttp.ClientSession, a: Args) -> Args:
    """For each key: report a failed batch, then scrape until its error alert shows."""
    url = a["url"]
    latencies: list[float] = []
    missed, polls = 0, 0
    for key in a["keys"]:
        needle = f'integration_monitor_alert_status{{key="{key}",status="error"}} 1.0'.encode()
        _, before = await _get(session, url + "/metrics")
        if needle in before:
            raise RuntimeError(f"monitor {key} is in error before the failed report")
        body = {"logstatus": "error", "errormsg": "bench: failed run"}
        async with session.post(f"{url}/api/v1/monitors/{key}/batches", json=body) as r:
            await r.read()
            if r.status != 201:
                raise RuntimeError(f"report for {key}: HTTP {r.status}")
        acknowledged = time.perf_counter()
        for _ in range(a["max_polls"]):
            _, text = await _get(session, url + "/metrics")
            polls += 1
            if needle in text:
                latencies.append(time.perf_counter() - acknowledged)
                break
            if time.perf_counter() - acknowledged > a["timeout"]:
                missed += 1
                break
        else:
            missed += 1
    median = statistics.median(latencies) * 1000 if latencies else math.nan
    return {**summary_ms(latencies), "median_ms": median, "missed": missed, "polls": polls}


async def _probe(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> list[float]:
    """GET /healthz every ~2 ms until `stop`; a slow answer means the event loop stalled."""
    latencies: list[float] = []
    for _ in range(1_000_000):
        if stop.is_set():
            break
        latencies.append((await _get(session, url + "/healthz"))[0])
        await asyncio.sleep(0.002)
    return latencies


async def _probed(
    session: aiohttp.ClientSession, url: str, work: Callable[[], Awaitable[None]]
) -> list[float]:
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(session, url, stop))
    try:
        await work()
    finally:
        stop.set()
    return await probe


async def evaluate(session: aiohttp.ClientSession, a: Args) -> Args:
    """Full evaluation passes with a /healthz probe running beside each; an idle probe first."""
    url = a["url"]
    for _ in range(int(a["timeout"] / 0.05)):  # the pass the service runs at start must be done
        text = (await _get(session, url + "/metrics"))[1].decode()
        if (metric_value(text, "integration_monitor_evaluations_total") or 0) >= 1:
            break
        await asyncio.sleep(0.05)
    idle = await _probed(session, url, lambda: asyncio.sleep(a["idle_seconds"]))
    passes: list[float] = []
    reported: list[float] = []
    during: list[float] = []

    async def one_pass() -> None:
        started = time.perf_counter()
        async with session.post(url + "/api/v1/evaluate", json={}) as r:
            await r.read()
            r.raise_for_status()
        passes.append(time.perf_counter() - started)

    scrapes: list[float] = []
    errors = math.nan
    for _ in range(a["passes"]):
        during += await _probed(session, url, one_pass)
        seconds, body = await _get(session, url + "/metrics")
        scrapes.append(seconds)
        text = body.decode()
        value = metric_value(text, "integration_monitor_evaluation_duration_seconds")
        reported.append(math.nan if value is None else value)
        errors = metric_value(text, 'integration_monitor_monitors{status="error"}') or 0.0
    return {
        "request_median_s": statistics.median(passes),
        "request_max_s": max(passes),
        "metric_median_s": statistics.median(reported),
        "scrape_after_pass_median_ms": statistics.median(scrapes) * 1000,
        "probe_max_ms": max(during, default=math.nan) * 1000,
        "probe_count": len(during),
        "idle_probe_max_ms": max(idle, default=math.nan) * 1000,
        "errors_after_pass": errors,
    }


MODES: dict[str, Callable[[aiohttp.ClientSession, Args], Awaitable[Args]]] = {
    "post": post,
    "scrapes": scrapes,
    "scrape_every": scrape_every,
    "alert": alert,
    "evaluate": evaluate,
}


async def run(mode: str, a: Args) -> Args:
    connector = aiohttp.TCPConnector(limit=max(2, a.get("clients", 2)), force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        return await MODES[mode](session, a)


def main(argv: list[str]) -> int:
    mode, args = argv[0], json.loads(argv[1])
    result = asyncio.run(run(mode, args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
