"""Seven of the scenarios (the eighth is bench.replicas). Each starts its own service on a
freshly seeded database and adds rows."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.load import Load, LoadResult, background, drive, loadgen
from bench.loadgen import percentile
from bench.plan import Sizes, key
from bench.processes import (
    Running,
    ServiceOptions,
    prometheus,
    pushgateway,
    schema_of,
    service,
    wait_first_scrape,
)
from bench.results import Row, Target, at_least, at_most, below
from bench.seed import SHARED_SCHEDULES, distinct_schedules, failing, seed

REPORT = json.dumps({"logstatus": "ok", "no_created": 1})
# What a job would push to Pushgateway for the same run: its status, objects and end time.
PUSH = "".join(
    f"# TYPE integration_monitor_{name} gauge\n{lines}"
    for name, lines in (
        ("last_run_status", 'integration_monitor_last_run_status{status="ok"} 1\n'),
        (
            "last_run_objects",
            'integration_monitor_last_run_objects{operation="created"} 1\n'
            'integration_monitor_last_run_objects{operation="updated"} 0\n'
            'integration_monitor_last_run_objects{operation="deleted"} 0\n',
        ),
        (
            "last_run_end_timestamp_seconds",
            "integration_monitor_last_run_end_timestamp_seconds 1796000000\n",
        ),
    )
)
INGEST_P99_MS = 20.0
INGEST_RATE = 8000.0
SCRAPE_P99_MS = 20.0  # /metrics at 10,000 monitors, plain (issue 15; was 50 ms in issue 7)
PUSHGATEWAY_RATIO = 0.05  # our /metrics p99 against Pushgateway's with the same series
SCRAPE_ROUNDS = 3  # quiet and busy ingest alternate this many times (see _ingest_under_scrapes)
RSS_MIB = 120.0  # 10,000 monitors, 1,000,000 runs (issue 15; was 150 MiB in issue 7)


@dataclass
class Bench:
    sizes: Sizes
    workdir: Path
    options: ServiceOptions
    tool: str  # wrk or python
    profile: Path | None = None  # write a py-spy profile of each service process here
    rows: list[Row] = field(default_factory=list)
    memo: dict[str, LoadResult] = field(default_factory=dict)
    scraped: dict[int, dict[str, Any]] = field(default_factory=dict)  # plain /metrics by size

    def row(
        self, scenario: str, measurement: str, value: float | None, unit: str, target: Target | None
    ) -> None:
        self.rows.append(Row(scenario, measurement, value, unit, target))
        print(f"  {measurement}: {value if value is None else round(value, 3)} {unit}", flush=True)

    @contextlib.contextmanager
    def service(
        self,
        name: str,
        monitors: int,
        runs: int,
        schedules: tuple[tuple[str, str, int], ...] | list[tuple[str, str, int]] = (),
    ) -> Iterator[tuple[Running, float]]:
        """The service on a database seeded with `monitors` and `runs`; yields the seed time."""
        database = self.workdir / f"{name}.db"
        seconds = seed(
            database, monitors, runs, schedules=schedules, schema=schema_of(self.options)
        )
        with service(self.workdir, database, self.options) as running:
            if self.profile is None:
                yield running, seconds
            else:
                with profiled(running, self.profile / f"{name}.txt"):
                    yield running, seconds

    def drive(self, running: Running, load: Load) -> LoadResult:
        """`load` from `clients` connections for `duration`, with the server's CPU time."""
        cpu = running.cpu_seconds()
        result = drive(load, self.sizes.clients, self.sizes.duration, self.tool)
        return replace(result, cpu_seconds=running.cpu_seconds() - cpu)

    def ingest(self, running: Running, monitors: int) -> LoadResult:
        load = Load(
            running.url,
            "POST",
            "/api/v1/monitors/",
            "/batches",
            monitors,
            REPORT,
            "application/json",
        )
        return self.drive(running, load)

    def timeout(self, requests: int) -> float:
        return 120.0 + requests * 2.0


@contextlib.contextmanager
def profiled(running: Running, out: Path) -> Iterator[None]:
    """py-spy samples the service while the block runs; writes collapsed stacks to `out`."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [spy, "record", "--pid", str(running.process.pid), "--rate", "100"]
    command += ["--threads", "--format", "raw", "--output", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _ingest_rows(b: Bench, scenario: str, label: str, r: LoadResult) -> None:
    b.row(scenario, f"reports/s, {label}", r.rate, "reports/s", at_least(INGEST_RATE))
    b.row(scenario, f"p50 latency, {label}", r.p50_ms, "ms", None)
    b.row(scenario, f"p99 latency, {label}", r.p99_ms, "ms", at_most(INGEST_P99_MS))
    b.row(scenario, f"service CPU per report, {label}", r.cpu_us_per_report, "µs", None)
    if r.failed:
        b.row(scenario, f"failed requests, {label}", r.failed, "", at_most(0))


def ingest(b: Bench) -> None:
    """Durable batch reports per second with `clients` connections, fresh and with stored runs."""
    s = b.sizes
    with b.service("ingest-fresh", s.ingest_monitors, 0) as (running, _):
        r = b.memo["ingest_fresh"] = b.ingest(running, s.ingest_monitors)
    label = f"{s.ingest_monitors:,} monitors, fresh"
    _ingest_rows(b, "ingest", label, r)
    with b.service("ingest-stored", s.ingest_monitors, s.stored_runs) as (running, seeded):
        b.row("ingest", f"seed {s.stored_runs:,} runs with executemany", seeded, "s", None)
        b.row("ingest", f"start-up with {s.stored_runs:,} runs", running.started_in, "s", None)
        r = b.ingest(running, s.ingest_monitors)
    _ingest_rows(b, "ingest", f"{s.ingest_monitors:,} monitors, {s.stored_runs:,} runs", r)


def scrape(b: Bench) -> None:
    """/metrics latency by number of monitors, plain and gzipped; ingest with and without a
    gzip scrape every second."""
    s = b.sizes
    largest = max(s.scrape_monitors)
    for n in s.scrape_monitors:
        with b.service(f"scrape-{n}", n, n * s.runs_per_monitor) as (running, _):
            _scrape_latency(b, running, n, at_most(SCRAPE_P99_MS) if n == largest else None)
            if n == largest:
                _ingest_under_scrapes(b, running, n)


def _scrapes(url: str, count: int, compressed: bool, path: str = "/metrics") -> dict[str, Any]:
    args = {"url": url, "path": path, "count": count, "gzip": compressed}
    return loadgen("scrapes", {**args, "timeout": 600, "request_timeout": 300}, 900)


def _scrape_latency(b: Bench, running: Running, n: int, target: Target | None) -> None:
    label = f"{n:,} monitors"
    r = _scrapes(running.url, b.sizes.scrapes, False)
    b.row("scrape", f"first /metrics after start-up, {label}", r["first_ms"], "ms", None)
    b.row("scrape", f"/metrics p50, {label}", r["p50_ms"], "ms", None)
    b.row("scrape", f"/metrics p99, {label}", r["p99_ms"], "ms", target)
    b.row("scrape", f"/metrics size, {label}", r["bytes"] / 1024, "KiB", None)
    b.row("scrape", f"/metrics series, {label}", r["series"], "", None)
    z = _scrapes(running.url, b.sizes.scrapes, True)
    b.row("scrape", f"/metrics p50, gzip asked, {label}", z["p50_ms"], "ms", None)
    b.row("scrape", f"/metrics p99, gzip asked, {label}", z["p99_ms"], "ms", None)
    b.row("scrape", f"/metrics bytes on the wire, gzip asked, {label}", z["bytes"] / 1024, "KiB",
          None)  # fmt: skip
    b.row("scrape", f"/metrics answered gzipped (1 = yes), {label}", float(z["gzipped"]), "",
          None)  # fmt: skip
    b.scraped[n] = r


def _ingest_under_scrapes(b: Bench, running: Running, n: int) -> None:
    """Ingest over all `n` monitors alone, then with a scraper every second, as Prometheus
    (which asks for gzip).

    The two alternate in `rounds` slices of the duration (quiet, busy, quiet, busy...): on a
    shared machine the other workers' load drifts over a minute, and one quiet half followed by
    one busy half would charge that drift to the scrapes. The service's CPU per report, which
    the other workers move less, is reported for both.
    """
    rounds = SCRAPE_ROUNDS if b.sizes.duration >= 2 * SCRAPE_ROUNDS else 1
    part = replace(b, sizes=replace(b.sizes, duration=b.sizes.duration / rounds))
    quiet: list[LoadResult] = []
    busy: list[LoadResult] = []
    latencies: list[float] = []
    sizes: list[float] = []
    for _ in range(rounds):
        quiet.append(part.ingest(running, n))
        args = {"url": running.url, "interval": 1.0, "duration": part.sizes.duration, "gzip": True}
        with background("scrape_every", args, part.sizes.duration + 300) as scraped:
            busy.append(part.ingest(running, n))
            scrapes = scraped()
        latencies += scrapes["latencies_ms"]
        sizes.append(scrapes["bytes"])
    calm, loaded = _combined(quiet), _combined(busy)
    label = f"{n:,} monitors"
    b.row("scrape", f"ingest reports/s, {label}, no scraper", calm.rate, "reports/s", None)
    b.row("scrape", f"ingest reports/s, {label}, 1 s scrapes", loaded.rate, "reports/s", None)
    drop = (calm.rate - loaded.rate) / calm.rate * 100 if calm.rate else math.nan
    b.row("scrape", "ingest drop under 1 s scrapes", drop, "%", below(10.0))
    b.row("scrape", f"service CPU per report, {label}, no scraper", calm.cpu_us_per_report, "µs",
          None)  # fmt: skip
    b.row("scrape", f"service CPU per report, {label}, 1 s scrapes", loaded.cpu_us_per_report,
          "µs", None)  # fmt: skip
    b.row("scrape", f"/metrics p99 under ingest, {label}", percentile(latencies, 99), "ms", None)
    b.row("scrape", f"/metrics bytes on the wire under ingest, median, {label}",
          statistics.median(sizes) / 1024, "KiB", None)  # fmt: skip


def _combined(parts: list[LoadResult]) -> LoadResult:
    """Slices of one load as one: counts, seconds and CPU added; the worst slice's p50/p99."""
    return replace(
        parts[0],
        ok=sum(p.ok for p in parts),
        failed=sum(p.failed for p in parts),
        seconds=sum(p.seconds for p in parts),
        p50_ms=max(p.p50_ms for p in parts),
        p99_ms=max(p.p99_ms for p in parts),
        cpu_seconds=sum(p.cpu_seconds for p in parts),
    )


def alert(b: Bench) -> None:
    """Time from a failed report's 2xx to its error alert on /metrics, polled tightly."""
    s = b.sizes
    n = s.alert_monitors
    keys = [key(i) for i in range(n) if not failing(i)][: s.alert_samples]
    with b.service("alert", n, n * s.runs_per_monitor) as (running, _):
        args = {"url": running.url, "keys": keys, "max_polls": 10_000, "timeout": 5.0}
        r = loadgen("alert", args, b.timeout(len(keys) * 10))
    label = f"{n:,} monitors, {len(keys)} samples"
    b.row("alert", f"failed report to alert, median, {label}", r["median_ms"], "ms", below(1000))
    b.row("alert", "failed report to alert, max", r["max_ms"], "ms", None)
    b.row("alert", "alerts not seen within 5 s", r["missed"], "", at_most(0))


def evaluation(b: Bench) -> None:
    """Full evaluation passes: their duration, and the longest event-loop stall during them.

    Three fleets of the same size: monitors with an alert interval; monitors with a schedule
    from a mix of 16 shared by many each (as a real fleet shares a few schedules); and one
    schedule of its own per monitor, where nothing can be shared between monitors.
    """
    s = b.sizes
    n = s.evaluation_monitors
    fleets: tuple[
        tuple[str, str, tuple[tuple[str, str, int], ...] | list[tuple[str, str, int]]], ...
    ] = (
        ("evaluation", f"{n:,} monitors", ()),
        (
            "evaluation-scheduled",
            f"{n:,} scheduled monitors, {len(SHARED_SCHEDULES)} schedules",
            SHARED_SCHEDULES,
        ),
        (
            "evaluation-distinct",
            f"{n:,} scheduled monitors, one schedule each",
            distinct_schedules(n),
        ),
    )
    for name, label, schedules in fleets:
        with b.service(name, n, n * s.runs_per_monitor, schedules) as (running, _):
            idle = 0.1 if schedules else 2.0  # the idle baseline once is enough
            args = {"url": running.url, "passes": s.evaluation_passes, "idle_seconds": idle}
            r = loadgen("evaluate", {**args, "timeout": 300}, 900)
        _evaluation_rows(b, label, r, first=not schedules)


def _evaluation_rows(b: Bench, label: str, r: dict[str, Any], first: bool) -> None:
    passes = f"median of {b.sizes.evaluation_passes}"
    scenario = "evaluation"
    b.row(scenario, f"POST /api/v1/evaluate, {label}, {passes}", r["request_median_s"], "s",
          below(2.0))  # fmt: skip
    b.row(scenario, f"POST /api/v1/evaluate, slowest pass, {label}", r["request_max_s"], "s",
          None)  # fmt: skip
    b.row(scenario, f"evaluation_duration_seconds metric, median, {label}", r["metric_median_s"],
          "s", below(2.0))  # fmt: skip
    b.row(scenario, f"longest /healthz answer during passes, {label}", r["probe_max_ms"], "ms",
          at_most(100))  # fmt: skip
    if first:
        b.row(scenario, "longest /healthz answer when idle", r["idle_probe_max_ms"], "ms", None)
    b.row(scenario, f"/metrics right after a pass, median, {label}",
          r["scrape_after_pass_median_ms"], "ms", None)  # fmt: skip
    if not first:
        b.row(scenario, f"monitors in error after a pass, {label}", r["errors_after_pass"], "",
              None)  # fmt: skip


def memory(b: Bench) -> None:
    """Resident memory of the service with many monitors and stored runs, after some work."""
    s = b.sizes
    n, runs = s.memory_monitors, s.memory_runs
    label = f"{n:,} monitors, {runs:,} runs"
    with b.service("memory", n, runs) as (running, seeded):
        b.row("memory", f"seed {runs:,} runs with executemany", seeded, "s", None)
        b.row("memory", f"start-up, {label}", running.started_in, "s", None)
        b.row("memory", "RSS after start-up", running.rss_mb(), "MiB", None)
        loadgen("scrapes", {"url": running.url, "count": 3, "timeout": 300}, 600)
        args = {"url": running.url, "passes": 1, "idle_seconds": 0.1, "timeout": 300}
        loadgen("evaluate", args, 600)
        b.ingest(running, n)
        loadgen("scrapes", {"url": running.url, "count": 1, "timeout": 300}, 600)
        b.row(
            "memory",
            f"RSS after scrapes, a pass and ingest, {label}",
            running.rss_mb(),
            "MiB",
            below(RSS_MIB),
        )
        b.row("memory", "peak RSS (VmHWM)", running.peak_rss_mb(), "MiB", None)


def pushgateway_side_by_side(b: Bench) -> None:
    """Pushgateway taking the equivalent push per report, same clients, beside the service.

    Measured as shipped, and without the consistency check that Pushgateway runs over every
    group on each push (its cost grows with the number of groups).
    """
    s = b.sizes
    ours = b.memo.get("ingest_fresh")
    if ours is None:
        with b.service("ingest-fresh", s.ingest_monitors, 0) as (running, _):
            ours = b.ingest(running, s.ingest_monitors)
    for variant, flags in (
        ("defaults", ()),
        ("no consistency check", ("--push.disable-consistency-check",)),
    ):
        with pushgateway(b.workdir, flags) as running:
            load = Load(
                running.url,
                "PUT",
                "/metrics/job/integration_monitor/key/",
                "",
                s.push_groups,
                PUSH,
                "text/plain; version=0.0.4",
            )
            theirs = b.drive(running, load)
            rss = running.rss_mb()
        label = f"{s.push_groups:,} groups, {variant}"
        b.row("pushgateway", f"pushes/s, {label}", theirs.rate, "pushes/s", None)
        b.row("pushgateway", f"p50 latency, {label}", theirs.p50_ms, "ms", None)
        b.row("pushgateway", f"p99 latency, {label}", theirs.p99_ms, "ms", None)
        b.row("pushgateway", f"CPU per push, {label}", theirs.cpu_us_per_report, "µs", None)
        b.row("pushgateway", f"RSS, {label}", rss, "MiB", None)
        ratio = ours.rate / theirs.rate if theirs.rate else math.nan
        b.row("pushgateway", f"service reports/s ÷ pushes/s, {variant}", ratio, "x", None)
    pushgateway_scrape(b)


def pushgateway_scrape(b: Bench) -> None:
    """The same /metrics scrape against Pushgateway holding one group per monitor.

    A service with `push_scrape_groups` monitors (seeded as for the scrape scenario) is
    scraped; each monitor's series, as that service exposes them, become one group pushed to
    Pushgateway (`/metrics/job/integration_monitor/<key label>/<key>`; pushed without the
    consistency check, or 10,000 pushes would take minutes). Then both /metrics, plain and
    gzipped: the service's and Pushgateway's, and the ratio of their p99.
    """
    s = b.sizes
    n = s.push_scrape_groups
    with b.service(f"push-source-{n}", n, n * s.runs_per_monitor) as (running, _):
        ours = _scrapes(running.url, s.scrapes, False)
        ours_gzip = _scrapes(running.url, s.scrapes, True)
        with pushgateway(b.workdir, ("--push.disable-consistency-check",)) as gateway:
            args = {"source": running.url, "target": gateway.url, "job": "integration_monitor"}
            pushed = loadgen("push_groups", {**args, "clients": 8, "timeout": 600}, 900)
            if pushed["failed"]:
                raise RuntimeError(f"pushes to Pushgateway failed: {pushed['first_failures']}")
            theirs = _scrapes(gateway.url, s.push_scrapes, False)
            theirs_gzip = _scrapes(gateway.url, s.push_scrapes, True)
            rss = gateway.rss_mb()
    label = f"{n:,} groups"
    scenario = "pushgateway"
    b.row(scenario, "groups pushed, one per monitor of the service", pushed["groups"], "", None)
    b.row(scenario, f"series pushed, {label}", pushed["series"], "", None)
    b.row(scenario, f"time to push {label}, 8 connections", pushed["seconds"], "s", None)
    b.row(scenario, f"Pushgateway /metrics series, {label}", theirs["series"], "", None)
    b.row(scenario, f"Pushgateway /metrics p50, {label}", theirs["p50_ms"], "ms", None)
    b.row(scenario, f"Pushgateway /metrics p99, {label}", theirs["p99_ms"], "ms", None)
    b.row(scenario, f"Pushgateway /metrics size, {label}", theirs["bytes"] / 1024, "KiB", None)
    b.row(scenario, f"Pushgateway /metrics p50, gzip asked, {label}", theirs_gzip["p50_ms"], "ms",
          None)  # fmt: skip
    b.row(scenario, f"Pushgateway /metrics p99, gzip asked, {label}", theirs_gzip["p99_ms"], "ms",
          None)  # fmt: skip
    b.row(scenario, f"Pushgateway /metrics bytes on the wire, gzip asked, {label}",
          theirs_gzip["bytes"] / 1024, "KiB", None)  # fmt: skip
    b.row(scenario, f"Pushgateway RSS, {label}", rss, "MiB", None)
    b.row(scenario, f"service /metrics p50, {n:,} monitors, same run", ours["p50_ms"], "ms", None)
    b.row(scenario, f"service /metrics p99, {n:,} monitors, same run", ours["p99_ms"], "ms", None)
    b.row(scenario, f"service /metrics p99, gzip asked, {n:,} monitors, same run",
          ours_gzip["p99_ms"], "ms", None)  # fmt: skip
    b.row(scenario, "service ÷ Pushgateway, /metrics p50", _ratio(ours, theirs, "p50_ms"), "x",
          None)  # fmt: skip
    b.row(scenario, "service ÷ Pushgateway, /metrics p99", _ratio(ours, theirs, "p99_ms"), "x",
          at_most(PUSHGATEWAY_RATIO))  # fmt: skip
    b.row(scenario, "service ÷ Pushgateway, /metrics p99, gzip asked",
          _ratio(ours_gzip, theirs_gzip, "p99_ms"), "x", None)  # fmt: skip


def _ratio(ours: dict[str, Any], theirs: dict[str, Any], name: str) -> float:
    return float(ours[name] / theirs[name]) if theirs[name] else math.nan


def prometheus_scrapes(b: Bench) -> None:
    """A real Prometheus scraping the service every `prometheus_interval` for
    `prometheus_seconds` (from its first scrape): its head series and resident memory, read
    from it afterwards. No reports meanwhile: the series are those of the seeded state."""
    s = b.sizes
    n = s.prometheus_monitors
    window = f"{s.prometheus_seconds:g}s"
    with b.service(f"prometheus-source-{n}", n, n * s.runs_per_monitor) as (running, _):
        ours = _scrapes(running.url, 1, False)
        target = running.url.removeprefix("http://")
        with prometheus(b.workdir, target, s.prometheus_interval) as server:
            wait_first_scrape(server.url)
            time.sleep(s.prometheus_seconds)
            r = loadgen("prometheus", {"url": server.url, "window": window}, 120)
            rss, peak = server.rss_mb(), server.peak_rss_mb()
    label = f"{n:,} monitors, {s.prometheus_interval:g} s scrapes for {window}"
    scenario = "prometheus"
    b.row(scenario, f"service /metrics series, {n:,} monitors", ours["series"], "", None)
    b.row(scenario, f"prometheus_tsdb_head_series, {label}", r["head_series"], "", None)
    b.row(scenario, f"Prometheus RSS (VmRSS), {label}", rss, "MiB", None)
    b.row(scenario, "Prometheus peak RSS (VmHWM)", peak, "MiB", None)
    b.row(scenario, "samples per scrape (scrape_samples_scraped)", r["samples_per_scrape"], "",
          None)  # fmt: skip
    b.row(scenario, "scrape duration seen by Prometheus, mean", r["scrape_seconds_avg"] * 1000,
          "ms", None)  # fmt: skip
    b.row(scenario, "scrape duration seen by Prometheus, max", r["scrape_seconds_max"] * 1000,
          "ms", None)  # fmt: skip
    b.row(scenario, f"scrapes in the last {window}", r["scrapes"], "", None)
    b.row(scenario, "failed scrapes (up == 0)", r["failed_scrapes"], "", at_most(0))


SCENARIO_FUNCTIONS: dict[str, Callable[[Bench], None]] = {
    "ingest": ingest,
    "scrape": scrape,
    "alert": alert,
    "evaluation": evaluation,
    "memory": memory,
    "pushgateway": pushgateway_side_by_side,
    "prometheus": prometheus_scrapes,
}
