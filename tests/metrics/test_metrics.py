"""/metrics: the series of a fixed scenario, the golden exposition, promtool, auth, persistence.

Every test builds the real app (tests/conftest.py) with a fixed clock on a temporary database
and reports over HTTP. Values are read with `get_sample_value` on the app's own registry
(`registry_of(app)`, a test oracle over the same state, never the global one) or parsed from
the scraped text.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.parser import text_string_to_metric_families

from exporter.http import appkeys
from tests.conftest import ADMIN, PUSH, READ, TOKENS, Clock, Factory, put_monitor
from tests.support.metrics_oracle import registry_of

Client = TestClient[web.Request, web.Application]
P = "integration_monitor_"

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden" / "metrics.txt"
METRICS_DOC = ROOT / "docs" / "metrics.md"

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC).timestamp()
MIN = 60.0
HOUR = 3600.0
BACKUP_RAN = datetime(2026, 11, 30, 1, 0, 20, tzinfo=UTC).timestamp()  # 02:00:20 in Stockholm
STATUSES = {"queued": "running", "skipped": "ok", "partial": "error"}
SCENARIO_CONFIG: dict[str, Any] = {
    **TOKENS,
    "statuses": STATUSES,
    "monitors": [{"integration_key": "nightly-export", "name": "Nightly export"}],
}
# Values that differ from run to run: left out of the golden file (the families stay).
UNSTABLE = re.compile(
    r"^(?:# (?:HELP|TYPE) )?(?:process_|python_)"
    r"|^integration_monitor_database_(?:size_bytes|commits_total|writes_total) "
    r"|^integration_monitor_evaluation_duration_seconds "
)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


async def post(client: Client, path: str, body: dict[str, Any], status: int = 201) -> Any:
    headers = auth(PUSH)
    if "idempotency_key" in body:
        headers["Idempotency-Key"] = body.pop("idempotency_key")
    response = await client.post(path, json=body, headers=headers)
    assert response.status == status, await response.text()
    return await response.json()


async def batch(client: Client, key: str, **body: Any) -> dict[str, Any]:
    for name in ("starttime", "endtime"):
        if name in body:
            body[name] = iso(body[name])
    result: dict[str, Any] = (await post(client, f"/api/v1/monitors/{key}/batches", body))["batch"]
    return result


async def log(client: Client, key: str, **body: Any) -> None:
    await post(client, f"/api/v1/monitors/{key}/logs", body)


async def scrape(client: Client, token: str = READ, accept: str | None = None) -> str:
    headers = auth(token)
    if accept is not None:
        headers["Accept"] = accept
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    return await response.text()


def registry(client: Client) -> CollectorRegistry:
    return registry_of(client.app)


def value(client: Client, metric: str, **labels: str) -> float | None:
    """A sample of the app's registry; `metric` without the integration_monitor_ prefix."""
    return registry(client).get_sample_value(P + metric, labels)


async def start(make_client: Factory, **sections: Any) -> Client:
    """The app on the fixed clock, once its first evaluation pass (at start) is done."""
    client = await make_client(Clock(NOW), **{**SCENARIO_CONFIG, **sections})
    stats = client.app[appkeys.STATS]
    for _ in range(1000):
        if stats.evaluations:
            break
        response = await client.get("/healthz")
        assert response.status == 200
    assert stats.evaluations == 1
    return client


async def scenario(client: Client) -> None:
    """Monitors of both types, runs of every severity (built-in and custom), logs, rejects."""
    await put_monitor(
        client,
        "crm-sync",
        name="CRM sync",
        alert_interval=60,
        alert_no_creates_deceeds=10,
        team="crm",
    )
    await put_monitor(client, "erp-import", name="ERP import", alert_interval=1440)
    await put_monitor(client, "billing", name="Billing")
    await put_monitor(client, "newsletter", name="Newsletter", type="message")
    await put_monitor(
        client, "paused", name="Paused", active=False, alert_interval=1, severity="warning"
    )
    await put_monitor(
        client,
        "backup",
        name="Backup",
        schedule="0 2 * * *",
        timezone="Europe/Stockholm",
        max_runtime=120,
    )

    # crm-sync: a good batch 3 h ago, then one that starts, logs, and fails below threshold.
    await batch(
        client,
        "crm-sync",
        logstatus="ok",
        starttime=NOW - 3 * HOUR,
        endtime=NOW - 3 * HOUR + 120,
        no_created=12,
        no_updated=3,
        no_deleted=1,
    )
    running = await batch(client, "crm-sync", starttime=NOW - 50 * MIN)
    await log(client, "crm-sync", batch_id=running["id"], logtext="fetched 8 accounts")
    response = await client.patch(
        f"/api/v1/batches/{running['id']}",
        json={
            "logstatus": "error",
            "endtime": iso(NOW - 50 * MIN + 30),
            "no_created": 2,
            "errormsg": "CRM API answered 502",
        },
        headers=auth(PUSH),
    )
    assert response.status == 200, await response.text()

    # erp-import: finished fine 10 min ago, the next batch is running.
    await batch(
        client,
        "erp-import",
        logstatus="ok",
        starttime=NOW - 10 * MIN,
        endtime=NOW - 10 * MIN + 45,
        no_created=30,
    )
    await batch(client, "erp-import", starttime=NOW - MIN)

    # billing: custom statuses; the retry of the last report is a duplicate.
    await batch(
        client, "billing", logstatus="skipped", starttime=NOW - 2 * HOUR, endtime=NOW - 2 * HOUR + 5
    )
    for _ in range(2):  # the same report, retried
        await batch(
            client,
            "billing",
            logstatus="partial",
            starttime=NOW - 30 * MIN,
            endtime=NOW - 30 * MIN + 400,
            no_updated=7,
            logtext="2 of 9 files missing",
            idempotency_key="billing-1",
        )

    # newsletter: a message monitor; every log is a run.
    await log(client, "newsletter", message="sent")
    await log(client, "newsletter", logstatus="error", errormsg="SMTP 550")
    await log(client, "newsletter", logstatus="skipped", message="empty list")
    await log(client, "newsletter", message="sent")

    # backup: scheduled at 02:00 Stockholm (01:00 UTC); tonight's run started on time.
    await batch(client, "backup", logstatus="ok", starttime=BACKUP_RAN, endtime=BACKUP_RAN + 600)

    # Rejected: an unknown status, a batch for a message monitor.
    await post(client, "/api/v1/monitors/crm-sync/batches", {"logstatus": "meh"}, 422)
    await post(client, "/api/v1/monitors/newsletter/batches", {"logstatus": "ok"}, 409)

    response = await client.post("/api/v1/evaluate", json={}, headers=auth(ADMIN))
    assert response.status == 200, await response.text()
    await client.app[appkeys.EVALUATOR].drain()


def stable(text: str) -> str:
    return "".join(line for line in text.splitlines(True) if not UNSTABLE.match(line))


# --- the series of the scenario -------------------------------------------------------------


async def test_monitor_series(make_client: Factory) -> None:
    client = await start(make_client)
    await scenario(client)

    def info(key: str, **labels: str) -> float | None:
        return value(client, "info", integration_key=key, **labels)

    assert info("crm-sync", name="CRM sync", type="batch", active="true", team="crm") == 1
    assert info("newsletter", name="Newsletter", type="message", active="true") == 1
    assert info("paused", name="Paused", type="batch", active="false", severity="warning") == 1
    # Created: only until the first success (staleness and "no success since" count from it).
    assert value(client, "created_timestamp_seconds", integration_key="nightly-export") == NOW
    assert value(client, "created_timestamp_seconds", integration_key="billing") is None

    expected_status = {
        "crm-sync": "error",
        "erp-import": "ok",
        "billing": "error",
        "newsletter": "ok",
        "nightly-export": "notcalculated",
        "paused": "notcalculated",
        "backup": "ok",
    }
    for key, current in expected_status.items():
        for status in ("notcalculated", "ok", "error"):
            assert value(client, "alert_status", integration_key=key, status=status) == (
                1 if status == current else 0
            ), (key, status)
    # Reasons: only those that hold, on monitors in error.
    reasons = {
        (smp.labels["integration_key"], smp.labels["reason"]): smp.value
        for m in registry(client).collect()
        if m.name == P + "alert_reason"
        for smp in m.samples
    }
    assert reasons == {
        ("crm-sync", "last_run_failed"): 1,
        ("crm-sync", "below_threshold"): 1,
        ("billing", "last_run_failed"): 1,
    }
    assert value(client, "alert_interval_seconds", integration_key="crm-sync") == 3600
    assert value(client, "alert_interval_seconds", integration_key="billing") is None  # off
    assert value(client, "alert_threshold", integration_key="crm-sync", operation="created") == 10
    for operation in ("updated", "deleted"):  # off: absent
        assert (
            value(client, "alert_threshold", integration_key="crm-sync", operation=operation)
            is None
        )
    # A schedule: its words in an info series, and the deadline of the next run's start.
    assert value(
        client,
        "schedule_info",
        integration_key="backup",
        schedule="0 2 * * *",
        timezone="Europe/Stockholm",
        summary="at 02:00 every day, Europe/Stockholm",
    )
    tomorrow = datetime(2026, 12, 1, 1, 10, tzinfo=UTC).timestamp()  # 02:00 + 10 min grace
    assert value(client, "start_deadline_timestamp_seconds", integration_key="backup") == tomorrow
    assert value(client, "max_runtime_seconds", integration_key="backup") == 7200
    for key in ("crm-sync", "nightly-export"):  # nothing of schedules without one
        assert value(client, "start_deadline_timestamp_seconds", integration_key=key) is None
        assert value(client, "max_runtime_seconds", integration_key=key) is None
        assert not [
            m
            for m in registry(client).collect()
            if m.name == P + "schedule_info"
            for smp in m.samples
            if smp.labels["integration_key"] == key
        ]

    # The latest run: one info series with its status and the result that status counts as.
    def last_run(key: str) -> dict[str, str]:
        [labels] = [
            smp.labels
            for m in registry(client).collect()
            if m.name == P + "last_run_info"
            for smp in m.samples
            if smp.labels["integration_key"] == key and smp.value == 1
        ]
        return {k: v for k, v in labels.items() if k != "integration_key"}

    assert last_run("erp-import") == {"status": "running", "result": "running"}
    assert last_run("billing") == {"status": "partial", "result": "error"}
    assert last_run("newsletter") == {"status": "ok", "result": "ok"}
    assert value(client, "last_run_info", integration_key="nightly-export", status="ok") is None
    assert (
        value(client, "last_run_start_timestamp_seconds", integration_key="erp-import") == NOW - MIN
    )
    # The duration and objects are the latest finished run's, not the running one's.
    assert value(client, "last_run_duration_seconds", integration_key="erp-import") == 45
    assert value(client, "last_run_duration_seconds", integration_key="crm-sync") == 30
    for operation, n in (("created", 2), ("updated", 0), ("deleted", 0)):
        assert (
            value(client, "last_run_objects", integration_key="crm-sync", operation=operation) == n
        )
    # A message monitor's runs are logs: no duration or objects.
    assert value(client, "last_run_duration_seconds", integration_key="newsletter") is None
    assert (
        value(client, "last_run_objects", integration_key="newsletter", operation="created") is None
    )
    assert (
        value(client, "last_success_timestamp_seconds", integration_key="crm-sync")
        == NOW - 3 * HOUR + 120
    )
    # A custom status of severity ok is a success.
    assert (
        value(client, "last_success_timestamp_seconds", integration_key="billing")
        == NOW - 2 * HOUR + 5
    )
    assert value(client, "last_success_timestamp_seconds", integration_key="newsletter") == NOW

    # A monitor that has run but never succeeded keeps its creation time; the first success
    # takes over from it.
    await batch(client, "nightly-export", logstatus="error")
    assert value(client, "created_timestamp_seconds", integration_key="nightly-export") == NOW
    await batch(client, "nightly-export", logstatus="ok")
    assert value(client, "created_timestamp_seconds", integration_key="nightly-export") is None
    assert value(client, "last_success_timestamp_seconds", integration_key="nightly-export")


async def test_counter_series(make_client: Factory) -> None:
    client = await start(make_client)
    await scenario(client)

    def runs(key: str, status: str) -> float | None:
        return value(client, "runs_total", integration_key=key, status=status)

    assert (runs("crm-sync", "ok"), runs("crm-sync", "error")) == (1, 1)
    assert runs("crm-sync", "running") is None  # a run counts once, when it finishes
    assert runs("crm-sync", "queued") is None  # custom statuses of severity running too
    assert runs("crm-sync", "partial") is None  # a status appears on its first use
    assert (runs("billing", "skipped"), runs("billing", "partial")) == (1, 1)  # once, not twice
    assert (runs("newsletter", "ok"), runs("newsletter", "error")) == (2, 1)
    assert runs("newsletter", "skipped") == 1
    assert value(client, "logs_total", integration_key="crm-sync", status="ok") == 1
    # On a message monitor every log is a run: runs_total counts them, logs_total is not there.
    assert value(client, "logs_total", integration_key="newsletter", status="ok") is None
    for operation, n in (("created", 14), ("updated", 3), ("deleted", 1)):
        assert value(client, "objects_total", integration_key="crm-sync", operation=operation) == n
    assert value(client, "objects_total", integration_key="newsletter", operation="created") is None
    # The duration histogram is off by default.
    assert value(client, "run_duration_seconds_count", integration_key="crm-sync") is None


async def test_duration_histogram_on_demand(make_client: Factory) -> None:
    """Off by default; on for every monitor with metrics.duration_histogram, off again for
    one by its own setting, or on for one alone. The counts were kept all along."""
    client = await start(make_client, metrics={"duration_histogram": True})
    await scenario(client)

    def bucket(key: str, le: str) -> float | None:
        return value(client, "run_duration_seconds_bucket", integration_key=key, le=le)

    # crm-sync ran 120 s and 30 s; a duration equal to a bound falls in that bucket.
    assert (bucket("crm-sync", "15.0"), bucket("crm-sync", "30.0")) == (0, 1)
    assert (bucket("crm-sync", "60.0"), bucket("crm-sync", "120.0")) == (1, 2)
    assert bucket("crm-sync", "+Inf") == 2
    assert value(client, "run_duration_seconds_count", integration_key="crm-sync") == 2
    assert value(client, "run_duration_seconds_sum", integration_key="crm-sync") == 150
    assert value(client, "run_duration_seconds_count", integration_key="paused") == 0
    assert value(client, "run_duration_seconds_count", integration_key="newsletter") is None

    response = await client.patch(
        "/api/v1/monitors/crm-sync", json={"duration_histogram": False}, headers=auth(ADMIN)
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["duration_histogram"] is False
    assert 'run_duration_seconds_count{integration_key="crm-sync"}' not in await scrape(client)
    assert value(client, "run_duration_seconds_count", integration_key="erp-import") == 1
    await client.close()

    off = await start(make_client)  # the same database, the default: off
    assert value(off, "run_duration_seconds_count", integration_key="erp-import") is None
    response = await off.patch(
        "/api/v1/monitors/erp-import", json={"duration_histogram": True}, headers=auth(ADMIN)
    )
    assert response.status == 200, await response.text()
    assert value(off, "run_duration_seconds_count", integration_key="erp-import") == 1
    assert value(off, "run_duration_seconds_bucket", integration_key="erp-import", le="60.0") == 1


async def test_service_series(make_client: Factory) -> None:
    client = await start(make_client)
    await scenario(client)

    assert value(client, "build_info", version="0.1.0") == 1
    counts = {"error": 2, "ok": 3, "notcalculated": 1}  # active monitors only
    for status, n in counts.items():
        assert value(client, "monitors", status=status) == n
    assert value(client, "monitors_inactive") == 1
    assert value(client, "evaluation_interval_seconds") == 900
    assert value(client, "evaluations_total") == 2  # at start, on request
    assert value(client, "evaluation_last_timestamp_seconds") == NOW
    duration = value(client, "evaluation_duration_seconds")
    assert duration is not None and duration >= 0  # a wall-clock value: only its presence
    assert value(client, "evaluation_errors_total") == 0

    def reports(kind: str, outcome: str) -> float | None:
        return value(client, "reports_received_total", kind=kind, outcome=outcome)

    assert (reports("batch", "stored"), reports("batch", "duplicate")) == (7, 1)
    assert reports("batch", "rejected") == 2
    assert (reports("batch_update", "stored"), reports("log", "stored")) == (1, 5)
    assert (reports("ping", "stored"), reports("log", "rejected")) == (0, 0)
    size = value(client, "database_size_bytes")
    assert size is not None and size > 0
    assert registry(client).get_sample_value("process_start_time_seconds") is not None


# --- the exposition as a whole --------------------------------------------------------------


async def test_golden_exposition(make_client: Factory) -> None:
    """The scenario's /metrics, minus run-dependent lines, is exactly golden/metrics.txt.

    After an intended change: `UPDATE_GOLDEN=1 pytest tests/metrics/test_metrics.py`, then read the
    diff of the golden file before committing it.
    """
    client = await start(make_client)
    await scenario(client)
    text = stable(await scrape(client))
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


async def test_scrape_is_the_registry_rendered(make_client: Factory) -> None:
    """/metrics (however it is rendered or cached) says what the registry's collectors say."""
    client = await start(make_client)
    await scenario(client)
    for _ in range(2):
        text = await scrape(client)
        assert stable(text) == stable(generate_latest(registry(client)).decode())
        om = await scrape(client, accept="application/openmetrics-text; version=1.0.0")
        assert stable(om) == stable(openmetrics.generate_latest(registry(client)).decode())
        # A change must show on the next scrape, in both formats.
        await batch(client, "erp-import", logstatus="donewitherror", no_deleted=4)
        await log(client, "newsletter", logstatus="error", errormsg="bounce")


@pytest.mark.system
async def test_promtool_check_metrics(make_client: Factory) -> None:
    """The real output, process and Python families included, passes promtool's lint silently.

    promtool prints one line per problem (e.g. a counter without `_total`, a non-base unit) and
    exits 1 on any; none is accepted, so the exit code and the output must both be clean.
    """
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (make system-deps)"
    client = await start(make_client)
    await scenario(client)
    text = await scrape(client)
    process = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(text.encode()), timeout=60)
    assert (process.returncode, output.decode()) == (0, "")


async def test_openmetrics_negotiation(make_client: Factory) -> None:
    client = await start(make_client)
    await scenario(client)
    accept = "application/openmetrics-text; version=1.0.0"
    response = await client.get("/metrics", headers={**auth(READ), "Accept": accept})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith(
        "application/openmetrics-text; version=1.0.0"
    )
    text = await response.text()
    assert text.endswith("# EOF\n")
    assert "# TYPE integration_monitor_runs counter\n" in text
    assert 'integration_monitor_runs_total{integration_key="crm-sync",status="error"} 1.0\n' in text

    plain = await client.get("/metrics", headers=auth(READ))
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# EOF" not in await plain.text()


@pytest.mark.parametrize(
    ("accept_encoding", "compressed"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),  # what browsers send
        ("br;q=1.0, gzip;q=0.8, *;q=0.1", True),
        ("*", True),
        ("gzip;q=0", False),  # refused explicitly
        ("identity", False),
        ("", False),
    ],
)
async def test_gzip_when_the_scraper_asks(
    make_client: Factory, accept_encoding: str, compressed: bool
) -> None:
    """Prometheus sends `Accept-Encoding: gzip`; the answer is then one gzip member whose text
    is the plain answer, in both formats."""
    client = await start(make_client)
    await scenario(client)
    for accept in (None, "application/openmetrics-text; version=1.0.0"):
        headers = auth(READ)
        if accept:
            headers["Accept"] = accept
        plain = await client.get("/metrics", headers={**headers, "Accept-Encoding": "identity"})
        headers["Accept-Encoding"] = accept_encoding
        response = await client.get("/metrics", headers=headers, auto_decompress=False)
        assert response.status == 200
        assert response.headers["Vary"] == "Accept-Encoding"
        assert response.headers["Content-Type"] == plain.headers["Content-Type"]
        body = await response.read()
        if compressed:
            assert response.headers["Content-Encoding"] == "gzip"
            assert int(response.headers["Content-Length"]) == len(body)
            text = gzip.decompress(body)
            assert len(body) * 2 < len(text)
        else:
            assert "Content-Encoding" not in response.headers
            text = body
        assert stable(text.decode()) == stable(await plain.text())


async def test_failed_report_shows_on_the_next_scrape(make_client: Factory) -> None:
    client = await start(make_client)
    await put_monitor(client, "crm-sync", name="CRM sync", alert_interval=60)
    await batch(client, "crm-sync", logstatus="ok")
    before = parse(await scrape(client))
    assert before[("integration_monitor_alert_status", ("crm-sync", "error"))] == 0
    assert before[("integration_monitor_alert_status", ("crm-sync", "ok"))] == 1

    await batch(client, "crm-sync", logstatus="error", errormsg="CRM API answered 502")
    after = parse(await scrape(client))  # no evaluation pass in between: the report did it
    assert after[("integration_monitor_alert_status", ("crm-sync", "error"))] == 1
    assert after[("integration_monitor_alert_status", ("crm-sync", "ok"))] == 0
    assert after[("integration_monitor_runs_total", ("crm-sync", "error"))] == 1
    assert value(client, "evaluations_total") == 1  # only the one at start


def parse(text: str) -> dict[tuple[str, tuple[str, ...]], float]:
    """{(sample name, label values): value} of an exposition."""
    return {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# --- counters survive a restart and pruning -------------------------------------------------

COUNTER_PREFIXES = (
    "integration_monitor_runs_total",
    "integration_monitor_logs_total",
    "integration_monitor_objects_total",
    "integration_monitor_run_duration_seconds_",
)


def counters(text: str) -> dict[tuple[str, tuple[str, ...]], float]:
    return {k: v for k, v in parse(text).items() if k[0].startswith(COUNTER_PREFIXES)}


async def batch_ids(client: Client, key: str) -> list[int]:
    response = await client.get(f"/api/v1/monitors/{key}/batches", headers=auth(READ))
    return [item["id"] for item in (await response.json())["items"]]


async def log_count(client: Client, key: str) -> int:
    response = await client.get(f"/api/v1/monitors/{key}/logs", headers=auth(READ))
    return len((await response.json())["items"])


async def test_counters_survive_restart_and_pruning(make_client: Factory) -> None:
    first = await start(make_client)
    await scenario(first)
    before = counters(await scrape(first))
    assert before[("integration_monitor_runs_total", ("crm-sync", "error"))] == 1
    assert len(before) > 20
    crm, erp = await batch_ids(first, "crm-sync"), await batch_ids(first, "erp-import")
    assert (len(crm), len(erp), await log_count(first, "newsletter")) == (2, 2, 4)
    await first.close()

    second = await start(make_client)  # the same database file, a new app
    assert counters(await scrape(second)) == before

    # Everything is older than a cutoff in the future; each monitor's latest run (and latest
    # finished batch) is kept for evaluation, every other batch and log goes.
    deleted = await second.app[appkeys.STORE].prune(NOW + 3650 * 24 * HOUR, NOW + HOUR)
    assert deleted > 0
    assert counters(await scrape(second)) == before
    assert await batch_ids(second, "crm-sync") == crm[:1]
    assert await batch_ids(second, "erp-import") == erp  # running, and the latest finished
    assert await log_count(second, "newsletter") == 1
    await second.close()

    third = await start(make_client)
    assert counters(await scrape(third)) == before
    assert (await batch_ids(third, "crm-sync")) == crm[:1]
    assert value(third, "alert_status", integration_key="crm-sync", status="error") == 1


async def test_last_success_survives_pruning(make_client: Factory) -> None:
    """A monitor failing for longer than the retention still shows when it last succeeded."""
    first = await start(make_client)
    await scenario(first)
    before = {
        key: value(first, "last_success_timestamp_seconds", integration_key=key)
        for key in ("crm-sync", "billing", "erp-import", "newsletter")
    }
    await first.app[appkeys.STORE].prune(NOW + 3650 * 24 * HOUR, NOW + HOUR)
    await first.close()

    second = await start(make_client)
    after = {
        key: value(second, "last_success_timestamp_seconds", integration_key=key) for key in before
    }
    assert after == before


# --- access ---------------------------------------------------------------------------------


async def test_metrics_needs_the_read_role(make_client: Factory) -> None:
    client = await start(make_client)
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers=auth("not-a-token-at-all"))).status == 401
    response = await client.get("/metrics", headers=auth(PUSH))
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden"
    assert (await client.get("/metrics", headers=auth(READ))).status == 200


async def test_metrics_open_when_auth_not_required(make_client: Factory) -> None:
    client = await start(make_client, metrics={"require_auth": False})
    response = await client.get("/metrics")
    assert response.status == 200
    assert "integration_monitor_build_info" in await response.text()


async def test_metrics_open_without_tokens(make_client: Factory) -> None:
    client = await make_client(Clock(NOW))
    assert (await client.get("/metrics")).status == 200


# --- documentation --------------------------------------------------------------------------


async def test_every_exposed_family_is_documented(make_client: Factory) -> None:
    client = await start(make_client)
    await scenario(client)
    families = set(re.findall(r"^# TYPE (\S+) ", await scrape(client), re.MULTILINE))
    documented = set(re.findall(r"`([a-z_][a-z0-9_]*)`", METRICS_DOC.read_text(encoding="utf-8")))
    assert "`process_*`, `python_*`" in METRICS_DOC.read_text(encoding="utf-8")
    undocumented = {
        name for name in families if not name.startswith(("process_", "python_"))
    } - documented
    assert undocumented == set(), f"exposed but not in {METRICS_DOC.name}"
    assert any(name.startswith("process_") for name in families)
