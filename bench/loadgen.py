"""The load process: an asyncio aiohttp client, run as `python -m bench.loadgen MODE JSON_ARGS`.

It prints one JSON object on stdout. Every mode is bounded both in requests and in time. Modes:
post (N clients posting reports), scrapes (back-to-back GET /metrics, plain or asking for
gzip), scrape_every (one GET /metrics per interval, asking for gzip as Prometheus does), alert
(time from a failed report's 2xx to its alert on /metrics), evaluate (POST /api/v1/evaluate
while a /healthz probe measures event-loop stalls), push_groups (the service's per-monitor
series pushed to Pushgateway, one group per monitor), prometheus (what a Prometheus server says
about itself and its scrapes), put_monitors (create the benchmark's monitors through the API),
propagation (a report on one replica until another shows it), failover (reports with an
Idempotency-Key through the proxy, sent again after 502/503/504 or a cut connection).

Answers are read as they come over the wire (no automatic decompression): a latency is the time
to the last byte of what was sent, and sizes are bytes on the wire. Requests that do not ask
for gzip say `Accept-Encoding: identity` (aiohttp would otherwise ask for gzip by itself).
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import math
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

Args = dict[str, Any]


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


PLAIN = {"Accept-Encoding": "identity"}
GZIP = {"Accept-Encoding": "gzip"}  # what Prometheus sends


async def _fetch(
    session: aiohttp.ClientSession, url: str, compressed: bool = False
) -> tuple[float, bytes, str]:
    """GET `url`: seconds to the last byte, the body as sent, its Content-Encoding."""
    started = time.perf_counter()
    async with session.get(url, headers=GZIP if compressed else PLAIN) as response:
        body = await response.read()
        response.raise_for_status()
        encoding = response.headers.get("Content-Encoding", "")
    return time.perf_counter() - started, body, encoding


def _decoded(body: bytes, encoding: str) -> bytes:
    return gzip.decompress(body) if encoding == "gzip" else body


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[float, bytes]:
    seconds, body, encoding = await _fetch(session, url)
    return seconds, _decoded(body, encoding)


def count_series(text: bytes) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))


async def scrapes(session: aiohttp.ClientSession, a: Args) -> Args:
    """A first scrape of /metrics, then `count` more back to back (bounded by `timeout` s).

    With `gzip`, each asks for gzip; `bytes` is what came over the wire, `gzipped` whether the
    server did compress, and the series are counted in the decompressed text.
    """
    compressed = bool(a.get("gzip"))
    url = a["url"] + a.get("path", "/metrics")
    first, body, encoding = await _fetch(session, url, compressed)
    latencies: list[float] = []
    deadline = time.perf_counter() + a["timeout"]
    for _ in range(a["count"]):
        if time.perf_counter() > deadline:
            break
        seconds, body, encoding = await _fetch(session, url, compressed)
        latencies.append(seconds)
    text = _decoded(body, encoding)
    return {
        **summary_ms(latencies),
        "first_ms": first * 1000,
        "bytes": len(body),
        "text_bytes": len(text),
        "gzipped": encoding == "gzip",
        "series": count_series(text),
    }


async def scrape_every(session: aiohttp.ClientSession, a: Args) -> Args:
    """One scrape of /metrics every `interval` seconds for `duration` seconds, as Prometheus
    (which asks for gzip); the answers are not decompressed (the load stays on the server)."""
    latencies: list[float] = []
    sizes: list[int] = []
    started = time.perf_counter()
    for n in range(int(a["duration"] / a["interval"]) + 1):
        due = started + n * a["interval"]
        if due > started + a["duration"]:
            break
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        seconds, body, _ = await _fetch(session, a["url"] + "/metrics", a.get("gzip", True))
        latencies.append(seconds)
        sizes.append(len(body))
    return {
        **summary_ms(latencies),
        "latencies_ms": [x * 1000 for x in latencies],
        "bytes": statistics.median(sizes) if sizes else math.nan,
    }


async def alert(session: aiohttp.ClientSession, a: Args) -> Args:
    """For each key: report a failed batch, then scrape until its error alert shows."""
    url = a["url"]
    latencies: list[float] = []
    missed, polls = 0, 0
    for key in a["keys"]:
        # `key` before issue 15, `integration_key` after; "1.0" or "1"
        needle = re.compile(
            rb'^integration_monitor_alert_status\{(?:[^}]*,)?(?:integration_)?key="'
            + re.escape(key.encode())
            + rb'"[^}]*status="error"[^}]*\} 1(?:\.0)?$',
            re.MULTILINE,
        )
        _, before = await _get(session, url + "/metrics")
        if needle.search(before):
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
            if needle.search(text):
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


_SAMPLE = re.compile(rb'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:integration_)?key)="([^"]*)",?(.*)$')


def monitor_groups(text: bytes) -> tuple[str, dict[str, bytes]]:
    """The per-monitor series of an exposition, as one Pushgateway push body per monitor.

    Each body has the HELP and TYPE lines of the families it uses and the monitor's samples
    without their key label (the group's label carries it). Returns the key label's name
    and the bodies by key. Service-level series (no key label) are left out.
    """
    label = "key"
    header = b""
    header_used: dict[str, bytes] = {}
    parts: dict[str, list[bytes]] = {}
    for line in text.splitlines():
        if line.startswith(b"# HELP"):
            header = line + b"\n"
            continue
        if line.startswith(b"# TYPE"):
            header += line + b"\n"
            continue
        if not line or line.startswith(b"#"):
            continue
        found = _SAMPLE.match(line)
        if found is None:
            continue
        name, label_name, key_value, rest = found.groups()
        label = label_name.decode()
        k = key_value.decode()
        # `name{key="k"} 1.0` -> `name 1.0`; `name{key="k",a="b"} 1.0` -> `name{a="b"} 1.0`
        sample = name + rest[1:] if rest.startswith(b"}") else name + b"{" + rest
        lines = parts.setdefault(k, [])
        if header_used.get(k) is not header:
            header_used[k] = header
            lines.append(header)
        lines.append(sample + b"\n")
    return label, {k: b"".join(lines) for k, lines in parts.items()}


async def push_groups(session: aiohttp.ClientSession, a: Args) -> Args:
    """Read the service's /metrics; PUT each monitor's series to Pushgateway as its own group
    (`/metrics/job/<job>/<key label>/<key>`), from `clients` connections (bounded by `timeout`)."""
    _, text = await _get(session, a["source"] + "/metrics")
    label, bodies = monitor_groups(text)
    items = list(bodies.items())
    counter = itertools.count()
    failed: list[str] = []
    deadline = time.perf_counter() + a["timeout"]
    headers = {"Content-Type": "text/plain; version=0.0.4"}

    async def worker() -> None:
        for n in counter:
            if n >= len(items) or time.perf_counter() > deadline:
                return
            k, body = items[n]
            url = f"{a['target']}/metrics/job/{a['job']}/{label}/{k}"
            async with session.put(url, data=body, headers=headers) as r:
                answer = await r.read()
                if not 200 <= r.status < 300:
                    failed.append(f"{k}: HTTP {r.status} {answer[:300]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(a["clients"])))
    return {
        "groups": len(items),
        "series": sum(count_series(b) for b in bodies.values()),
        "seconds": time.perf_counter() - started,
        "failed": len(failed),
        "first_failures": failed[:3],
        "label": label,
    }


async def prometheus(session: aiohttp.ClientSession, a: Args) -> Args:
    """A Prometheus server's view: its head series, and its scrapes of the job over `window`."""
    url = a["url"]
    _, own = await _get(session, url + "/metrics")
    text = own.decode()
    window = a["window"]
    out: Args = {"head_series": metric_value(text, "prometheus_tsdb_head_series")}
    queries = {
        "scrapes": f"sum(count_over_time(up[{window}]))",
        "failed_scrapes": f"sum(count_over_time(up[{window}]) - sum_over_time(up[{window}]))",
        "samples_per_scrape": "max(scrape_samples_scraped)",
        "scrape_seconds_avg": f"avg(avg_over_time(scrape_duration_seconds[{window}]))",
        "scrape_seconds_max": f"max(max_over_time(scrape_duration_seconds[{window}]))",
    }
    for name, query in queries.items():
        params = {"query": query}
        async with session.get(url + "/api/v1/query", params=params, headers=PLAIN) as r:
            answer = json.loads(await r.read())
        result = answer.get("data", {}).get("result", [])
        out[name] = float(result[0]["value"][1]) if result else math.nan
    return out


async def put_monitors(session: aiohttp.ClientSession, a: Args) -> Args:
    """Create `keys` batch monitors (`alert_interval` 60 min, as the seed's), 8 at a time."""
    keys = [a["key_format"].format(i) for i in range(a["keys"])]
    queue = iter(keys)

    async def worker() -> None:
        for key in queue:
            body = {"name": key, "type": "batch", "alert_interval": 60}
            async with session.put(f"{a['url']}/api/v1/monitors/{key}", json=body) as r:
                await r.read()
                if r.status not in (200, 201):
                    raise RuntimeError(f"PUT monitor {key}: HTTP {r.status}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(8)))
    return {"monitors": len(keys), "seconds": time.perf_counter() - started}


async def _last_run_id(session: aiohttp.ClientSession, url: str) -> int | None:
    async with session.get(url, headers=PLAIN) as r:
        body = await r.read()
        r.raise_for_status()
    last = json.loads(body)["last_run"]
    return None if last is None else int(last["id"])


async def propagation(session: aiohttp.ClientSession, a: Args) -> Args:
    """For each sample: report a batch on replica `a`, then poll replica `b`'s
    GET /api/v1/monitors/{key} (its in-memory state, what its /metrics renders) every
    `interval` seconds until that batch is its last run."""
    latencies: list[float] = []
    missed = polls = 0
    for i in range(a["samples"]):
        key = a["key_format"].format(i % a["keys"])
        async with session.post(f"{a['a']}/api/v1/monitors/{key}/batches", json=BATCH) as r:
            body = await r.read()
            if r.status != 201:
                raise RuntimeError(f"report for {key}: HTTP {r.status}")
        acknowledged = time.perf_counter()
        batch_id = int(json.loads(body)["batch"]["id"])
        while True:
            polls += 1
            seen = await _last_run_id(session, f"{a['b']}/api/v1/monitors/{key}")
            if seen is not None and seen >= batch_id:
                latencies.append(time.perf_counter() - acknowledged)
                break
            if time.perf_counter() - acknowledged > a["timeout"]:
                missed += 1
                break
            await asyncio.sleep(a["interval"])
    return {**summary_ms(latencies), "missed": missed, "polls": polls}


BATCH = {"logstatus": "ok", "no_created": 1}
RETRIED = (502, 503, 504)  # the proxy's answers while a replica dies, and "not ready"


async def failover(session: aiohttp.ClientSession, a: Args) -> Args:
    """`clients` workers report batches with an Idempotency-Key each, as the client library
    does, and send the same request again (same key) after a 502/503/504, a refused or cut
    connection or a timeout, for up to `give_up` seconds. Returns the ids of the acknowledged
    batches, the errors clients saw and when (seconds from the start)."""
    keys = [a["key_format"].format(i) for i in range(a["keys"])]
    counter = itertools.count()
    latencies: list[float] = []
    acknowledged: list[int] = []
    errors: list[float] = []  # when each error was seen
    unexpected: list[str] = []
    gave_up = 0
    started = time.perf_counter()
    deadline = started + a["duration"]

    async def worker() -> None:
        nonlocal gave_up
        while time.perf_counter() < deadline:
            n = next(counter)
            url = f"{a['url']}/api/v1/monitors/{keys[n % len(keys)]}/batches"
            headers = {"Idempotency-Key": f"{a['run']}-{n}"}
            first = time.perf_counter()
            while True:
                try:
                    async with session.post(url, json=BATCH, headers=headers) as r:
                        body = await r.read()
                        status = r.status
                except (TimeoutError, aiohttp.ClientError) as exc:
                    status, body = 0, repr(exc).encode()
                if status in (200, 201):
                    acknowledged.append(int(json.loads(body)["batch"]["id"]))
                    latencies.append(time.perf_counter() - first)
                    break
                if status and status not in RETRIED:
                    unexpected.append(f"HTTP {status}: {body[:200]!r}")
                    break
                errors.append(time.perf_counter() - started)
                if time.perf_counter() - first > a["give_up"]:
                    gave_up += 1
                    break
                await asyncio.sleep(a["retry_seconds"])

    await asyncio.gather(*(worker() for _ in range(a["clients"])))
    seconds = time.perf_counter() - started
    return {
        **summary_ms(latencies),
        "seconds": seconds,
        "ok": len(latencies),
        "acknowledged": acknowledged,
        "errors": len(errors),
        "error_window_s": (max(errors) - min(errors)) if errors else 0.0,
        "unexpected": len(unexpected),
        "first_unexpected": unexpected[:3],
        "gave_up": gave_up,
    }


MODES: dict[str, Callable[[aiohttp.ClientSession, Args], Awaitable[Args]]] = {
    "post": post,
    "scrapes": scrapes,
    "scrape_every": scrape_every,
    "alert": alert,
    "evaluate": evaluate,
    "push_groups": push_groups,
    "prometheus": prometheus,
    "put_monitors": put_monitors,
    "propagation": propagation,
    "failover": failover,
}


async def run(mode: str, a: Args) -> Args:
    connector = aiohttp.TCPConnector(limit=max(2, a.get("clients", 2)), force_close=False)
    timeout = aiohttp.ClientTimeout(total=a.get("request_timeout", 60))
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    ) as session:
        return await MODES[mode](session, a)


def main(argv: list[str]) -> int:
    mode, args = argv[0], json.loads(argv[1])
    result = asyncio.run(run(mode, args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
