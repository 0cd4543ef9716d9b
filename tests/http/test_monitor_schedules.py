"""Scheduled monitors through the API: settings, refusals naming the field, evaluation."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from exporter.http import models
from tests.conftest import Clock, Factory, put_monitor

Client = TestClient[web.Request, web.Application]
STOCKHOLM = ZoneInfo("Europe/Stockholm")
NIGHTLY = {"schedule": "0 2 * * *", "timezone": "Europe/Stockholm"}


def local(*parts: int) -> float:
    return datetime(*parts, tzinfo=STOCKHOLM).timestamp()  # type: ignore[misc]


async def _refused(response: Any, field: str, words: str) -> None:
    body = await response.json()
    assert response.status == 422, body
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["field"] == field, body
    assert words in body["error"]["message"], body


async def test_a_scheduled_monitor_reads_back_with_its_schedule_in_words(
    make_client: Factory,
) -> None:
    clock = Clock(local(2026, 12, 2, 14, 0))
    client = await make_client(clock)
    body = await put_monitor(client, "backup", **NIGHTLY, max_runtime=120)
    models.MonitorOut.model_validate(body)
    assert body["schedule"] == "0 2 * * *" and body["timezone"] == "Europe/Stockholm"
    assert body["grace"] == 10 and body["max_runtime"] == 120 and body["alert_interval"] == 0
    assert body["schedule_description"] == "at 02:00 every day, Europe/Stockholm"
    assert body["expected_run"] == {  # 02:00 CET is 01:00 UTC
        "due": "2026-12-03T01:00:00.000Z",
        "deadline": "2026-12-03T01:10:00.000Z",
    }
    plain = await put_monitor(client, "feed", alert_interval=60)
    assert plain["schedule"] == "" and plain["timezone"] == "UTC"
    assert plain["schedule_description"] is None and plain["expected_run"] is None


async def test_macros_and_untidy_spacing_are_stored_as_given_but_tidied(client: Client) -> None:
    body = await put_monitor(client, "hourly", schedule="@hourly", grace=0)
    assert body["schedule"] == "@hourly" and body["grace"] == 0
    assert body["schedule_description"] == "at the start of every hour, UTC"
    body = await put_monitor(client, "office", schedule=" */15  8-17 * * MON-FRI ")
    assert body["schedule"] == "*/15 8-17 * * MON-FRI"


@pytest.mark.parametrize(
    ("settings", "field", "words"),
    [
        ({"schedule": "0 2 * *"}, "schedule", "has 4 fields; cron takes five"),
        ({"schedule": "0 25 * * *"}, "schedule", "bad hour field"),
        ({"schedule": "@reboot"}, "schedule", "not a known macro"),
        ({"schedule": "0 2 * * *", "timezone": "Europe/Stokholm"}, "timezone", "IANA"),
        ({"timezone": "CET-1"}, "timezone", "is not an IANA time zone name"),
        ({"schedule": "0 2 * * *", "alert_interval": 60}, "schedule", "not both"),
        ({"grace": -1}, "grace", "greater than or equal to 0"),
        ({"max_runtime": True}, "max_runtime", "valid integer"),
        ({"schedule": 5}, "schedule", "valid string"),
        ({"schedule": "*" * 101}, "schedule", "at most 100 characters"),
    ],
)
async def test_bad_settings_are_422_naming_the_field(
    client: Client, settings: dict[str, Any], field: str, words: str
) -> None:
    response = await client.put("/api/v1/monitors/backup", json={"name": "n", **settings})
    await _refused(response, field, words)
    assert (await client.get("/api/v1/monitors/backup")).status == 404


async def test_patch_cannot_give_a_monitor_both_a_schedule_and_an_interval(
    client: Client,
) -> None:
    await put_monitor(client, "feed", alert_interval=60)
    await put_monitor(client, "backup", **NIGHTLY)
    await _refused(
        await client.patch("/api/v1/monitors/feed", json={"schedule": "@daily"}),
        "schedule",
        "set alert_interval to 0 to use a schedule",
    )
    await _refused(
        await client.patch("/api/v1/monitors/backup", json={"alert_interval": 30}),
        "alert_interval",
        "not both",
    )
    await _refused(
        await client.patch("/api/v1/monitors/backup", json={"timezone": "Moon/Base"}),
        "timezone",
        "'Moon/Base' is not an IANA time zone name",
    )
    # Both in one request: from an interval to a schedule, and back.
    moved = await client.patch(
        "/api/v1/monitors/feed", json={"alert_interval": 0, "schedule": "@daily"}
    )
    assert moved.status == 200 and (await moved.json())["schedule"] == "@daily"
    back = await client.patch(
        "/api/v1/monitors/backup", json={"alert_interval": 30, "schedule": ""}
    )
    body = await back.json()
    assert back.status == 200 and (body["schedule"], body["alert_interval"]) == ("", 30)


async def test_a_missed_run_is_an_error_named_in_the_monitors_zone(make_client: Factory) -> None:
    clock = Clock(local(2026, 12, 1, 12, 0))
    client = await make_client(clock)
    await put_monitor(client, "backup", **NIGHTLY)
    clock.now = local(2026, 12, 2, 2, 0, 30)
    started = await client.post("/api/v1/monitors/backup/batches", json={"logstatus": "ok"})
    assert started.status == 201
    clock.now = local(2026, 12, 3, 2, 9)
    [ok] = (await (await client.post("/api/v1/evaluate", json={})).json())["items"]
    assert ok["alertstatus"] == "ok"
    clock.now = local(2026, 12, 3, 2, 11)
    [missed] = (await (await client.post("/api/v1/evaluate", json={})).json())["items"]
    assert missed["alertstatus"] == "error"
    assert missed["alerttext"] == (
        "No run since the one due at 02:00 on 3 Dec (Europe/Stockholm); last started 02:00 on 2 Dec"
    )
    # A late run clears it, and the next run is expected the night after.
    await client.post("/api/v1/monitors/backup/batches", json={"logstatus": "ok"})
    monitor = await (await client.get("/api/v1/monitors/backup")).json()
    assert monitor["alertstatus"] == "ok"
    assert monitor["expected_run"]["due"] == "2026-12-04T01:00:00.000Z"


async def test_openapi_describes_the_schedule_settings(client: Client) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    body = schemas["MonitorBody"]["properties"]
    assert {"schedule", "timezone", "grace", "max_runtime"} <= set(body)
    assert body["grace"]["default"] == 10 and body["timezone"]["default"] == "UTC"
    assert "cron" in body["schedule"]["description"]
    route = doc["paths"]["/api/v1/monitors/{key}"]
    body_ref = route["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref.endswith("/MonitorBody")
    answer = route["patch"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["$ref"].endswith("/MonitorOut")
    out = schemas["MonitorOut"]["properties"]
    assert {"schedule_description", "expected_run"} <= set(out)
