"""Alert evaluation: the pure rules (core.evaluation), and the Evaluator that applies them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from exporter.core.evaluation import Evaluation, evaluate_monitor, format_span
from exporter.core.records import MonitorSettings, Run
from exporter.core.statuses import BUILTIN_STATUSES, Severity
from exporter.http import appkeys
from exporter.service.state import MonitorState
from tests.conftest import ADMIN, PUSH, READ, TOKENS, Clock, Factory, put_monitor
from tests.support.metrics_oracle import registry_of

NOW = datetime(2026, 11, 28, 11, 30, tzinfo=UTC).timestamp()
MIN = 60.0
HOUR = 3600.0
SEVERITIES: dict[str, Severity] = {
    **BUILTIN_STATUSES,
    "queued": "running",
    "skipped": "ok",
    "partial": "error",
}


def at(hour: int, minute: int) -> float:
    return datetime(2026, 11, 28, hour, minute, tzinfo=UTC).timestamp()


def batch(
    logstatus: str = "ok",
    start: float = NOW - 10 * MIN,
    *,
    run_id: int = 1,
    created: int = 0,
    updated: int = 0,
    deleted: int = 0,
    logtext: str = "",
    errormsg: str = "",
) -> Run:
    running = SEVERITIES.get(logstatus) == "running"
    end = None if running else start + 30
    duration = None if running else 30.0
    return Run(
        "batch",
        run_id,
        logstatus,
        start,
        end,
        duration,
        created,
        updated,
        deleted,
        logtext,
        errormsg,
    )


def log(logstatus: str = "ok", at_: float = NOW - 10 * MIN, errormsg: str = "") -> Run:
    return Run("log", 1, logstatus, at_, at_, None, 0, 0, 0, "", errormsg)


def evaluate(
    latest: Run | None,
    *,
    finished: Run | None = None,
    created_at: float = NOW - 24 * HOUR,
    now: float = NOW,
    **settings: Any,
) -> Evaluation:
    """Evaluate with the latest run as the latest finished one unless it runs or `finished`."""
    if finished is None and latest is not None and latest.endtime is not None:
        finished = latest
    monitor = MonitorSettings(**{"name": "CRM sync", **settings})
    return evaluate_monitor(monitor, created_at, latest, finished, now, SEVERITIES)


# --- never reported -------------------------------------------------------------------------


def test_never_reported_without_interval_is_notcalculated() -> None:
    result = evaluate(None, created_at=NOW - 365 * 24 * HOUR)
    assert result == Evaluation("notcalculated", "", ())


def test_never_reported_within_interval_since_creation_is_notcalculated() -> None:
    result = evaluate(None, created_at=NOW - 59 * MIN, alert_interval=60)
    assert result.alertstatus == "notcalculated"


def test_never_reported_past_interval_since_creation_is_error() -> None:
    result = evaluate(None, created_at=at(10, 0), alert_interval=60)
    assert result.alertstatus == "error"
    assert result.alerttext == (
        "No batch received in the last 60 min "
        "(never reported; monitor created 2026-11-28 10:00 UTC)"
    )
    assert result.kinds == {"no_recent_run"}


# --- staleness and running batches ---------------------------------------------------------


def test_ok_run_is_ok() -> None:
    assert evaluate(batch("ok"), alert_interval=60) == Evaluation("ok", "", ())


def test_no_batch_started_within_interval_is_error() -> None:
    result = evaluate(batch("ok", at(10, 2)), alert_interval=60)
    assert result.alertstatus == "error"
    assert result.alerttext == "No batch started in the last 60 min (last: 2026-11-28 10:02 UTC)"


def test_batch_started_exactly_one_interval_ago_is_not_stale() -> None:
    assert evaluate(batch("ok", NOW - 60 * MIN), alert_interval=60).alertstatus == "ok"


def test_zero_interval_never_goes_stale() -> None:
    assert evaluate(batch("ok", NOW - 400 * 24 * HOUR), alert_interval=0).alertstatus == "ok"


def test_running_batch_past_interval_is_error() -> None:
    result = evaluate(batch("running", at(9, 15)), alert_interval=60)
    assert result.alertstatus == "error"
    assert result.alerttext == (
        "Batch still running after 2 h 15 min, longer than the interval of 60 min "
        "(started 2026-11-28 09:15 UTC)"
    )
    assert result.kinds == {"run_too_long"}


def test_running_batch_within_interval_is_ok() -> None:
    result = evaluate(batch("running", NOW - 5 * MIN), alert_interval=60)
    assert result == Evaluation("ok", "", ())


def test_running_batch_after_a_failed_one_is_error_for_the_failed_one() -> None:
    failed = batch("error", NOW - 2 * HOUR, errormsg="timeout", run_id=1)
    result = evaluate(batch("running", NOW - MIN, run_id=2), finished=failed, alert_interval=60)
    assert result.reasons == ("Last batch failed (error): timeout",)


# --- the latest finished run's result -------------------------------------------------------


def test_error_batch_text_is_its_errormsg() -> None:
    result = evaluate(batch("error", errormsg="CRM API answered 502", logtext="step 3"))
    assert result == Evaluation(
        "error",
        "Last batch failed (error): CRM API answered 502",
        ("Last batch failed (error): CRM API answered 502",),
        frozenset({"last_run_failed"}),
    )


def test_donewitherror_is_error_with_logtext_when_no_errormsg() -> None:
    """A donewitherror run did its work with some errors: it "finished with errors"."""
    result = evaluate(batch("donewitherror", logtext="3 of 40 rows rejected"))
    assert result.alertstatus == "error"
    assert result.alerttext == (
        "Last batch finished with errors (donewitherror): 3 of 40 rows rejected"
    )


def test_error_without_any_text_names_the_status() -> None:
    assert evaluate(batch("error")).alerttext == "Last batch failed (error): status error"


@pytest.mark.parametrize(
    ("status", "expected"), [("queued", "ok"), ("skipped", "ok"), ("partial", "error")]
)
def test_custom_status_counts_as_its_severity(status: str, expected: str) -> None:
    assert evaluate(batch(status, NOW - 5 * MIN), alert_interval=60).alertstatus == expected


def test_custom_running_status_past_interval_is_still_running() -> None:
    result = evaluate(batch("queued", NOW - 3 * HOUR), alert_interval=60)
    assert result.alertstatus == "error"
    assert result.alerttext.startswith("Batch still running after 3 h, longer than the interval")


def test_custom_error_status_text() -> None:
    result = evaluate(batch("partial", errormsg="2 of 9 files missing"))
    assert result.alerttext == "Last batch failed (partial): 2 of 9 files missing"


def test_unknown_status_counts_as_error() -> None:
    # A custom status removed from the config must not hide a run: it counts as an error.
    assert evaluate(batch("vanished")).alertstatus == "error"


# --- thresholds -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "counts", "text"),
    [
        ("alert_no_creates_deceeds", (3, 10, 10), "Created 3 objects, below threshold 10"),
        ("alert_no_updates_deceeds", (10, 9, 10), "Updated 9 objects, below threshold 10"),
        ("alert_no_deletes_deceeds", (10, 10, 0), "Deleted 0 objects, below threshold 10"),
    ],
)
def test_threshold_below_is_error(setting: str, counts: tuple[int, int, int], text: str) -> None:
    created, updated, deleted = counts
    run = batch("ok", created=created, updated=updated, deleted=deleted)
    limit: dict[str, Any] = {setting: 10}
    assert evaluate(run, **limit) == Evaluation(
        "error", text, (text,), frozenset({"below_threshold"})
    )


@pytest.mark.parametrize(
    "setting", ["alert_no_creates_deceeds", "alert_no_updates_deceeds", "alert_no_deletes_deceeds"]
)
def test_threshold_reached_is_ok(setting: str) -> None:
    run = batch("ok", created=10, updated=10, deleted=10)
    limit: dict[str, Any] = {setting: 10}
    assert evaluate(run, **limit).alertstatus == "ok"


def test_zero_thresholds_are_off() -> None:
    assert evaluate(batch("ok")).alertstatus == "ok"  # all counts 0, all thresholds 0


def test_thresholds_use_the_latest_finished_batch() -> None:
    finished = batch("ok", NOW - HOUR, created=2, run_id=1)
    result = evaluate(
        batch("running", NOW - MIN, run_id=2), finished=finished, alert_no_creates_deceeds=5
    )
    assert result.reasons == ("Created 2 objects, below threshold 5",)


# --- several reasons ------------------------------------------------------------------------


def test_several_reasons_are_joined() -> None:
    run = batch("error", at(10, 2), errormsg="disk full", created=1, deleted=0)
    result = evaluate(
        run, alert_interval=60, alert_no_creates_deceeds=5, alert_no_deletes_deceeds=1
    )
    assert result.reasons == (
        "No batch started in the last 60 min (last: 2026-11-28 10:02 UTC)",
        "Last batch failed (error): disk full",
        "Created 1 objects, below threshold 5",
        "Deleted 0 objects, below threshold 1",
    )
    assert result.alerttext == "; ".join(result.reasons)


def test_long_alerttext_is_truncated_to_256_with_ellipsis() -> None:
    run = batch("error", at(10, 2), errormsg="x" * 1024, created=0)
    result = evaluate(run, alert_interval=60, alert_no_creates_deceeds=5)
    assert len(result.reasons) == 3
    assert result.reasons[1] == "Last batch failed (error): " + "x" * 1024  # reasons stay whole
    assert len(result.alerttext) == 256
    assert result.alerttext.endswith("x…")
    assert result.alerttext.startswith(
        "No batch started in the last 60 min (last: 2026-11-28 10:02 UTC); Last batch failed"
    )


def test_alerttext_of_exactly_256_is_not_truncated() -> None:
    prefix = "Last batch failed (error): "
    result = evaluate(batch("error", errormsg="y" * (256 - len(prefix))))
    assert len(result.alerttext) == 256
    assert not result.alerttext.endswith("…")


# --- message monitors -----------------------------------------------------------------------


def test_message_monitor_ok_log_is_ok() -> None:
    assert evaluate(log("ok"), type="message", alert_interval=60).alertstatus == "ok"


def test_message_monitor_error_log() -> None:
    result = evaluate(log("error", errormsg="SMTP 550"), type="message")
    assert result.alerttext == "Last log failed (error): SMTP 550"


def test_message_monitor_no_log_within_interval() -> None:
    result = evaluate(log("ok", at(10, 2)), type="message", alert_interval=60)
    assert result.alerttext == "No log received in the last 60 min (last: 2026-11-28 10:02 UTC)"


def test_message_monitor_never_reported() -> None:
    result = evaluate(None, type="message", alert_interval=60, created_at=at(10, 0))
    assert result.alerttext.startswith("No log received in the last 60 min (never reported;")


def test_message_monitor_ignores_thresholds() -> None:
    result = evaluate(
        log("ok"),
        type="message",
        alert_no_creates_deceeds=5,
        alert_no_updates_deceeds=5,
        alert_no_deletes_deceeds=5,
    )
    assert result == Evaluation("ok", "", ())


# --- wording of spans -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0 s"),
        (45, "45 s"),
        (60, "1 min"),
        (119 * 60, "119 min"),
        (2 * HOUR, "2 h"),
        (5 * HOUR + 10 * MIN, "5 h 10 min"),
        (48 * HOUR, "2 d"),
        (76 * HOUR, "3 d 4 h"),
    ],
)
def test_format_span(seconds: float, text: str) -> None:
    assert format_span(seconds) == text


# --- the Evaluator: which monitors, failures, transitions ----------------------------------

Client = TestClient[web.Request, web.Application]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def evaluate_all(client: Client) -> dict[str, dict[str, Any]]:
    response = await client.post("/api/v1/evaluate", json={}, headers=auth(ADMIN))
    assert response.status == 200, await response.text()
    return {item["integration_key"]: item for item in (await response.json())["items"]}


async def report(client: Client, key: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/api/v1/monitors/{key}/batches", json=body, headers=auth(PUSH))
    assert response.status == 201, await response.text()
    result: dict[str, Any] = (await response.json())["batch"]
    return result


async def test_inactive_monitor_is_left_as_it_is(make_client: Factory) -> None:
    clock = Clock()
    client = await make_client(clock, **TOKENS)
    await put_monitor(client, "paused", active=False, alert_interval=1)
    await put_monitor(client, "live", alert_interval=1)
    clock.advance(2 * HOUR)
    items = await evaluate_all(client)
    assert set(items) == {"live"}
    assert items["live"]["alertstatus"] == "error"
    paused = client.app[appkeys.STATE].monitors["paused"].monitor
    assert (paused.alertstatus, paused.alerttext, paused.alert_timestamp) == (
        "notcalculated",
        "",
        None,
    )
    # A report does not evaluate it either.
    await report(client, "paused", logstatus="error", errormsg="boom")
    response = await client.get("/api/v1/monitors/paused", headers=auth(READ))
    assert (await response.json())["alertstatus"] == "notcalculated"


async def test_one_failing_monitor_is_logged_and_skipped(
    make_client: Factory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    client = await make_client(clock, **TOKENS)
    for key in ("a-first", "b-broken", "c-last"):
        await put_monitor(client, key, alert_interval=1)
    clock.advance(2 * HOUR)
    evaluator = client.app[appkeys.EVALUATOR]
    real = evaluator.evaluate

    def broken_for_one(ms: MonitorState, now: float) -> Evaluation:
        if ms.monitor.integration_key == "b-broken":
            raise RuntimeError("corrupt monitor")
        return real(ms, now)

    monkeypatch.setattr(evaluator, "evaluate", broken_for_one)
    errors_before = client.app[appkeys.STATS].evaluation_errors
    with caplog.at_level(logging.ERROR, logger="exporter.service.evaluator"):
        items = await evaluate_all(client)
    assert set(items) == {"a-first", "c-last"}
    assert {item["alertstatus"] for item in items.values()} == {"error"}
    assert client.app[appkeys.STATE].monitors["b-broken"].monitor.alertstatus == "notcalculated"
    assert client.app[appkeys.STATS].evaluation_errors == errors_before + 1
    assert any(
        "evaluation of monitor b-broken failed" in r.getMessage() and r.exc_info
        for r in caplog.records
    )
    registry = registry_of(client.app)
    assert registry.get_sample_value("integration_monitor_evaluation_errors_total") == (
        errors_before + 1
    )

    # After a report the monitor is evaluated at once; a failure there loses no report.
    with caplog.at_level(logging.ERROR, logger="exporter.service.evaluator"):
        await report(client, "b-broken", logstatus="ok")
    assert client.app[appkeys.STATS].evaluation_errors == errors_before + 2
    response = await client.get("/api/v1/monitors/b-broken/batches", headers=auth(READ))
    assert len((await response.json())["items"]) == 1


async def test_transitions_are_recorded_and_listed(make_client: Factory) -> None:
    clock = Clock(at(10, 0))
    client = await make_client(clock, **TOKENS)
    await put_monitor(client, "crm", alert_interval=60)

    clock.now = at(10, 2)
    await report(client, "crm", logstatus="ok")  # evaluated right after the report
    clock.now = at(11, 30)
    assert (await evaluate_all(client))["crm"]["alertstatus"] == "error"
    assert (await evaluate_all(client))["crm"]["alertstatus"] == "error"  # no change, no row
    clock.now = at(11, 31)
    await report(client, "crm", logstatus="error", errormsg="CRM API answered 502")
    await client.app[appkeys.EVALUATOR].drain()

    response = await client.get("/api/v1/monitors/crm/transitions", headers=auth(READ))
    assert response.status == 200
    items = (await response.json())["items"]
    assert items == [
        {
            "old_status": "ok",
            "new_status": "error",
            "reason": "No batch started in the last 60 min (last: 2026-11-28 10:02 UTC)",
            "at": "2026-11-28T11:30:00.000Z",
        },
        {
            "old_status": "notcalculated",
            "new_status": "ok",
            "reason": "Last run ok",
            "at": "2026-11-28T10:02:00.000Z",
        },
    ]
    # The failed run changed the text but not the status: stored on the monitor, not a row.
    response = await client.get("/api/v1/monitors/crm", headers=auth(READ))
    monitor = await response.json()
    assert monitor["alerttext"] == "Last batch failed (error): CRM API answered 502"
    assert monitor["alert_timestamp"] == "2026-11-28T11:31:00.000Z"


async def test_transitions_need_the_read_role(make_client: Factory) -> None:
    client = await make_client(**TOKENS)
    await put_monitor(client, "crm")
    response = await client.get("/api/v1/monitors/crm/transitions", headers=auth(PUSH))
    assert response.status == 403
    response = await client.get("/api/v1/monitors/nope/transitions", headers=auth(READ))
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "monitor_not_found"


async def test_a_change_back_to_ok_gives_its_reason(make_client: Factory) -> None:
    clock = Clock(at(10, 0))
    client = await make_client(clock, **TOKENS)
    await put_monitor(client, "crm")
    await report(client, "crm", logstatus="error", errormsg="CRM API answered 502")
    clock.now = at(10, 5)
    await report(client, "crm", logstatus="ok")
    await client.app[appkeys.EVALUATOR].drain()
    response = await client.get("/api/v1/monitors/crm/transitions", headers=auth(READ))
    [back, failed] = (await response.json())["items"]
    assert (back["old_status"], back["new_status"], back["reason"]) == (
        "error",
        "ok",
        "Last run ok",
    )
    assert failed["reason"] == "Last batch failed (error): CRM API answered 502"
    monitor = await (await client.get("/api/v1/monitors/crm", headers=auth(READ))).json()
    assert monitor["alerttext"] == ""  # the alert text stays the original's: empty when ok


def test_the_summary_says_why_a_monitor_is_ok() -> None:
    assert evaluate(batch("ok")).summary == "Last run ok"
    assert evaluate(batch("skipped")).summary == "Last run skipped (counts as ok)"
    assert (
        evaluate(batch("error", errormsg="boom")).summary
        == evaluate(batch("error", errormsg="boom")).alerttext
    )
