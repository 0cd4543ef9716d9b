"""The JSON API through HTTP against the real app: success paths and every error code."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from exporter.http import models
from tests.conftest import Clock, Factory, put_monitor, sqlite_only

Client = TestClient[web.Request, web.Application]
JSON = {"Content-Type": "application/json"}


async def _json(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


async def _error(response: Any, status: int, code: str, field: str | None = None) -> None:
    body = await _json(response, status)
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert body["error"]["field"] == field, body


async def test_monitor_lifecycle(client: Client) -> None:
    created = await client.put(
        "/api/v1/monitors/crm-sync", json={"name": "CRM sync", "alert_interval": 60}
    )
    body = await _json(created, 201)
    models.MonitorOut.model_validate(body)
    assert body["alertstatus"] == "notcalculated" and body["type"] == "batch"
    replaced = await client.put("/api/v1/monitors/crm-sync", json={"name": "CRM"})
    assert (await _json(replaced, 200))["alert_interval"] == 0
    patched = await client.patch("/api/v1/monitors/crm-sync", json={"alert_interval": 15})
    body = await _json(patched, 200)
    assert body["alert_interval"] == 15 and body["name"] == "CRM"
    listing = await _json(await client.get("/api/v1/monitors"), 200)
    models.MonitorList.model_validate(listing)
    assert [m["integration_key"] for m in listing["items"]] == ["crm-sync"]
    assert (await client.delete("/api/v1/monitors/crm-sync")).status == 204
    await _error(await client.get("/api/v1/monitors/crm-sync"), 404, "monitor_not_found")


async def test_batch_start_finish_and_read(make_client: Factory) -> None:
    clock = Clock()
    client = await make_client(clock)
    await put_monitor(client, "crm")
    started = await _json(await client.post("/api/v1/monitors/crm/batches", json={}), 201)
    models.BatchStored.model_validate(started)
    batch = started["batch"]
    assert batch["logstatus"] == "running" and batch["endtime"] is None
    clock.advance(90.5)
    finished = await client.patch(
        f"/api/v1/batches/{batch['id']}",
        json={"no_created": 3, "no_updated": 4, "logtext": "done"},
    )
    done = (await _json(finished, 200))["batch"]
    assert done["logstatus"] == "ok"
    assert done["duration"] == 90.5
    assert (done["no_created"], done["no_updated"], done["no_deleted"]) == (3, 4, 0)
    log = await client.post(
        "/api/v1/monitors/crm/logs", json={"batch_id": batch["id"], "message": "row 7 skipped"}
    )
    models.LogStored.model_validate(await _json(log, 201))
    detail = await _json(await client.get(f"/api/v1/batches/{batch['id']}"), 200)
    models.BatchWithLogs.model_validate(detail)
    assert [x["message"] for x in detail["logs"]] == ["row 7 skipped"]
    monitor = await _json(await client.get("/api/v1/monitors/crm"), 200)
    assert monitor["alertstatus"] == "ok"
    assert monitor["last_run"]["id"] == batch["id"]


async def test_batch_listing_is_newest_first_and_paginated(client: Client) -> None:
    await put_monitor(client, "etl")
    for hour in range(5):
        body = {"logstatus": "ok", "starttime": f"2026-11-30T0{hour}:00:00Z"}
        await _json(await client.post("/api/v1/monitors/etl/batches", json=body), 201)
    first = await _json(await client.get("/api/v1/monitors/etl/batches?limit=2"), 200)
    models.BatchPage.model_validate(first)
    assert [b["starttime"][11:13] for b in first["items"]] == ["04", "03"]
    cursor = first["next_cursor"]
    second = await _json(
        await client.get("/api/v1/monitors/etl/batches", params={"limit": 2, "cursor": cursor}),
        200,
    )
    assert [b["starttime"][11:13] for b in second["items"]] == ["02", "01"]
    rest = await _json(
        await client.get(
            "/api/v1/monitors/etl/batches", params={"limit": 2, "cursor": second["next_cursor"]}
        ),
        200,
    )
    assert [b["starttime"][11:13] for b in rest["items"]] == ["00"]
    assert rest["next_cursor"] is None


async def test_logs_listing(client: Client) -> None:
    await put_monitor(client, "mail", type="message")
    for n in range(3):
        await _json(await client.post("/api/v1/monitors/mail/logs", json={"message": f"m{n}"}), 201)
    page = await _json(await client.get("/api/v1/monitors/mail/logs?limit=2"), 200)
    models.LogPage.model_validate(page)
    assert [x["message"] for x in page["items"]] == ["m2", "m1"]
    assert page["next_cursor"]


async def test_a_log_in_a_batch_named_by_its_id_alone(client: Client) -> None:
    """What a job started by `integration-monitor run` has: IM_BATCH_ID, no key."""
    await put_monitor(client, "crm")
    started = await _json(await client.post("/api/v1/monitors/crm/batches", json={}), 201)
    batch_id = started["batch"]["id"]
    answer = await _json(
        await client.post(f"/api/v1/batches/{batch_id}/logs", json={"message": "row 7 skipped"}),
        201,
    )
    models.LogStored.model_validate(answer)
    assert (answer["log"]["integration_key"], answer["log"]["batch_id"]) == ("crm", batch_id)
    detail = await _json(await client.get(f"/api/v1/batches/{batch_id}"), 200)
    assert [x["message"] for x in detail["logs"]] == ["row 7 skipped"]
    await _error(
        await client.post("/api/v1/batches/999/logs", json={"message": "x"}),
        404,
        "batch_not_found",
    )
    await _error(
        await client.post(f"/api/v1/batches/{batch_id}/logs", json={"batch_id": 3}),
        422,
        "validation_error",
        "batch_id",
    )


async def test_long_texts_are_truncated_and_named(client: Client) -> None:
    await put_monitor(client, "crm")
    response = await client.post(
        "/api/v1/monitors/crm/batches",
        json={"logstatus": "error", "errormsg": "x" * 5000, "logtext": "ok", "integrationid": "i"},
    )
    body = await _json(response, 201)
    assert body["truncated"] == ["errormsg"]
    assert len(body["batch"]["errormsg"]) == 1024
    log = await _json(
        await client.post(
            "/api/v1/monitors/crm/logs", json={"message": "m" * 2000, "integrationid": "i" * 65}
        ),
        201,
    )
    assert sorted(log["truncated"]) == ["integrationid", "message"]
    assert len(log["log"]["message"]) == 1024 and len(log["log"]["integrationid"]) == 64


async def test_idempotency_key_returns_first_result_and_stores_once(client: Client) -> None:
    await put_monitor(client, "crm")
    headers = {"Idempotency-Key": "run-2026-11-30-01"}
    body = {"logstatus": "ok", "no_created": 5}
    first = await client.post("/api/v1/monitors/crm/batches", json=body, headers=headers)
    again = await client.post("/api/v1/monitors/crm/batches", json=body, headers=headers)
    one, two = await _json(first, 201), await _json(again, 201)
    assert one["batch"]["id"] == two["batch"]["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    listing = await _json(await client.get("/api/v1/monitors/crm/batches"), 200)
    assert len(listing["items"]) == 1
    other = await client.post(
        "/api/v1/monitors/crm/batches", json={"logstatus": "error"}, headers=headers
    )
    await _error(other, 409, "idempotency_key_reused", "Idempotency-Key")


async def test_evaluate_all_and_one(client: Client) -> None:
    await put_monitor(client, "a")
    await put_monitor(client, "b")
    await client.post("/api/v1/monitors/a/batches", json={"logstatus": "error", "errormsg": "boom"})
    everything = await _json(await client.post("/api/v1/evaluate", json={}), 200)
    models.EvaluationList.model_validate(everything)
    statuses = {x["integration_key"]: x["alertstatus"] for x in everything["items"]}
    assert statuses == {"a": "error", "b": "notcalculated"}
    one = await _json(await client.post("/api/v1/evaluate", json={"integration_key": "a"}), 200)
    assert [x["integration_key"] for x in one["items"]] == ["a"]
    assert "boom" in one["items"][0]["alerttext"]
    await _error(
        await client.post("/api/v1/evaluate", json={"integration_key": "zz"}),
        404,
        "monitor_not_found",
    )


async def test_health_and_readiness(client: Client) -> None:
    assert (await _json(await client.get("/healthz"), 200)) == {"status": "ok"}
    assert (await _json(await client.get("/readyz"), 200)) == {"status": "ready"}


async def test_openapi_document_describes_every_route(client: Client) -> None:
    from exporter.http.api import ROUTES

    doc = await _json(await client.get("/api/v1/openapi.json"), 200)
    assert doc["openapi"].startswith("3.")
    for route in ROUTES:
        assert route.method.lower() in doc["paths"][route.path]
    schema = doc["components"]["schemas"]["BatchCreate"]
    assert schema["properties"]["logstatus"]["default"] == "running"


# -- errors -----------------------------------------------------------------------------------


async def test_unknown_monitor_and_batch_are_404(client: Client) -> None:
    await _error(
        await client.post("/api/v1/monitors/nope/batches", json={}), 404, "monitor_not_found"
    )
    await _error(await client.patch("/api/v1/batches/999", json={}), 404, "batch_not_found")
    await _error(await client.get("/api/v1/batches/abc"), 404, "batch_not_found")
    await put_monitor(client, "crm")
    await _error(
        await client.post("/api/v1/monitors/crm/logs", json={"batch_id": 12345}),
        404,
        "batch_not_found",
        "batch_id",
    )
    await _error(await client.get("/no/such/route"), 404, "not_found")


async def test_invalid_status_and_fields_are_422(client: Client) -> None:
    await put_monitor(client, "crm")
    await _error(
        await client.post("/api/v1/monitors/crm/batches", json={"logstatus": "fine"}),
        422,
        "invalid_status",
        "logstatus",
    )
    await _error(
        await client.post("/api/v1/monitors/crm/batches", json={"no_created": -1}),
        422,
        "validation_error",
        "no_created",
    )
    await _error(
        await client.post("/api/v1/monitors/crm/batches", json={"no_create": 1}),
        422,
        "validation_error",
        "no_create",
    )
    await _error(
        await client.put("/api/v1/monitors/crm", json={"name": "n", "type": "stream"}),
        422,
        "validation_error",
        "type",
    )
    await _error(
        await client.put("/api/v1/monitors/bad%20key", json={"name": "n"}),
        422,
        "validation_error",
        "integration_key",
    )
    await _error(
        await client.post(
            "/api/v1/monitors/crm/batches",
            json={"starttime": "2026-11-30T10:00:00Z", "endtime": "2026-11-30T09:00:00Z"},
        ),
        422,
        "validation_error",
        "endtime",
    )
    await _error(
        await client.get("/api/v1/monitors/crm/batches?limit=0"), 422, "validation_error", "limit"
    )


async def test_true_is_not_a_number_nor_a_number_true(client: Client) -> None:
    """JSON true for a count or setting is a mistake, as YAML's `yes` is in the config file."""
    await put_monitor(client, "crm")
    for body, field in (
        ({"name": "n", "alert_no_creates_deceeds": True}, "alert_no_creates_deceeds"),
        ({"name": "n", "active": 1}, "active"),
    ):
        await _error(
            await client.put("/api/v1/monitors/crm", json=body), 422, "validation_error", field
        )
    await _error(
        await client.patch("/api/v1/monitors/crm", json={"alert_interval": False}),
        422,
        "validation_error",
        "alert_interval",
    )
    await _error(
        await client.post("/api/v1/monitors/crm/batches", json={"no_created": True}),
        422,
        "validation_error",
        "no_created",
    )
    ok = await client.put("/api/v1/monitors/crm", json={"name": "n", "active": False})
    assert ok.status == 200 and (await ok.json())["active"] is False


async def test_invalid_json_is_400(client: Client) -> None:
    await put_monitor(client, "crm")
    await _error(
        await client.post("/api/v1/monitors/crm/batches", data=b"{not json", headers=JSON),
        400,
        "invalid_json",
    )
    await _error(
        await client.post("/api/v1/monitors/crm/batches", data=b"[1]", headers=JSON),
        400,
        "invalid_json",
    )


async def test_conflicts_are_409(client: Client) -> None:
    await put_monitor(client, "mail", type="message")
    await put_monitor(client, "crm")
    await put_monitor(client, "erp")
    await _error(
        await client.post("/api/v1/monitors/mail/batches", json={}), 409, "monitor_type_mismatch"
    )
    batch = await _json(await client.post("/api/v1/monitors/crm/batches", json={}), 201)
    batch_id = batch["batch"]["id"]
    await _error(
        await client.post("/api/v1/monitors/erp/logs", json={"batch_id": batch_id}),
        409,
        "batch_monitor_mismatch",
        "batch_id",
    )
    await _json(await client.patch(f"/api/v1/batches/{batch_id}", json={"logstatus": "ok"}), 200)
    await _error(
        await client.patch(f"/api/v1/batches/{batch_id}", json={"logstatus": "running"}),
        409,
        "batch_already_finished",
        "logstatus",
    )


async def test_body_over_limit_is_413(make_client: Factory) -> None:
    client = await make_client(server={"max_body_bytes": 2048})
    await put_monitor(client, "crm")
    response = await client.post(
        "/api/v1/monitors/crm/batches",
        data=b'{"errormsg": "' + b"x" * 4096 + b'"}',
        headers=JSON,
    )
    await _error(response, 413, "body_too_large")


async def test_method_not_allowed_is_405(client: Client) -> None:
    response = await client.delete("/api/v1/monitors")
    await _error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


async def test_custom_statuses_are_accepted(make_client: Factory) -> None:
    client = await make_client(statuses={"skipped": "ok", "partial": "error"})
    await put_monitor(client, "crm")
    response = await client.post("/api/v1/monitors/crm/batches", json={"logstatus": "partial"})
    assert (await _json(response, 201))["batch"]["endtime"] is not None
    monitor = await _json(await client.get("/api/v1/monitors/crm"), 200)
    assert monitor["alertstatus"] == "error"


@sqlite_only
async def test_store_not_writable_is_503(client: Client) -> None:
    from exporter.http import appkeys

    await put_monitor(client, "crm")
    await client.app[appkeys.STORE].writer.close()  # as during shutdown
    await _error(await client.get("/readyz"), 503, "unavailable")
    await _error(await client.post("/api/v1/monitors/crm/batches", json={}), 503, "unavailable")
    assert (await client.get("/healthz")).status == 200


async def test_report_racing_a_deleted_monitor_is_404(client: Client) -> None:
    from exporter.http import appkeys

    await put_monitor(client, "crm")
    await client.app[appkeys.STORE].delete_monitor("crm")  # gone from the database only
    await _error(
        await client.post("/api/v1/monitors/crm/batches", json={}), 404, "monitor_not_found"
    )
    await _error(await client.post("/api/v1/monitors/crm/logs", json={}), 404, "monitor_not_found")


def test_database_refusing_writes_is_503() -> None:
    from exporter.core.errors import Unavailable
    from exporter.http.handling import _as_api_error

    error = _as_api_error(Unavailable("The database did not take the write: disk full"))
    assert error is not None and (error.status, error.code) == (503, "unavailable")


async def test_out_of_range_numbers_are_client_errors(client: Client) -> None:
    await put_monitor(client, "crm")
    huge = "99999999999999999999999"
    await _error(await client.patch(f"/api/v1/batches/{huge}", json={}), 404, "batch_not_found")
    await _error(await client.get(f"/api/v1/batches/{huge}"), 404, "batch_not_found")
    await _error(
        await client.post("/api/v1/monitors/crm/logs", json={"batch_id": int(huge)}),
        422,
        "validation_error",
        "batch_id",
    )
    for cursor in (f"1.0_{huge}", "1e400_1", "nan_1", "x"):
        response = await client.get("/api/v1/monitors/crm/batches", params={"cursor": cursor})
        await _error(response, 422, "validation_error", "cursor")
    far = await client.post("/api/v1/monitors/crm/batches", json={"starttime": 1e300})
    assert far.status == 422
    await _error(
        await client.post("/api/v1/monitors/crm/batches", data=b"\xff\xfe", headers=JSON),
        400,
        "invalid_json",
    )


async def test_monitor_settings_beyond_sqlite_integers_are_422(client: Client) -> None:
    body = {"name": "n", "alert_no_deletes_deceeds": 149757151037795213205074608128}
    await _error(
        await client.put("/api/v1/monitors/big", json=body),
        422,
        "validation_error",
        "alert_no_deletes_deceeds",
    )


async def test_team_severity_and_histogram_settings(client: Client) -> None:
    body = {"name": "CRM", "team": "crm-ops", "severity": "warning", "duration_histogram": True}
    created = await _json(await client.put("/api/v1/monitors/crm", json=body), 201)
    assert (created["team"], created["severity"], created["duration_histogram"]) == (
        "crm-ops",
        "warning",
        True,
    )
    patched = await client.patch("/api/v1/monitors/crm", json={"team": "", "severity": "info"})
    assert (await _json(patched, 200))["team"] == ""
    replaced = await _json(await client.put("/api/v1/monitors/crm", json={"name": "CRM"}), 200)
    assert (replaced["team"], replaced["severity"], replaced["duration_histogram"]) == (
        "",
        "",
        None,
    )
    for field, bad in (
        ("team", "crm ops"),  # a space: not a label value routing can match simply
        ("team", "x" * 65),
        ("severity", "page"),
        ("duration_histogram", 1),
    ):
        await _error(
            await client.patch("/api/v1/monitors/crm", json={field: bad}),
            422,
            "validation_error",
            field,
        )


async def test_reactivating_a_monitor_evaluates_it_at_once(make_client: Factory) -> None:
    """An inactive monitor keeps the status it had; made active again, it is judged now."""
    clock = Clock()
    client = await make_client(clock)
    await put_monitor(client, "crm", alert_interval=60)
    await _json(await client.post("/api/v1/monitors/crm/batches", json={"logstatus": "ok"}), 201)
    paused = await _json(await client.patch("/api/v1/monitors/crm", json={"active": False}), 200)
    assert paused["alertstatus"] == "ok"
    clock.advance(3 * 3600)  # stale now, but not evaluated while inactive
    assert (await _json(await client.get("/api/v1/monitors/crm"), 200))["alertstatus"] == "ok"
    resumed = await _json(await client.patch("/api/v1/monitors/crm", json={"active": True}), 200)
    assert resumed["alertstatus"] == "error"
    assert resumed["alerttext"].startswith("No batch"), resumed
