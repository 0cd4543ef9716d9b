"""Tokens scoped to monitors: a leaked job token reaches its own monitors only, and a finished
run it changes is recorded."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN, PUSH, READ, Factory
from tests.conftest import TOKENS as BASE_TOKENS

Client = TestClient[web.Request, web.Application]
CRM_PUSH = "crm-push-token-0123456789"
CRM_ADMIN = "crm-admin-token-0123456789"
TOKENS = {
    "auth": {
        "tokens": [
            *BASE_TOKENS["auth"]["tokens"],
            {
                "name": "crm-jobs",
                "token": CRM_PUSH,
                "roles": ["push", "read"],
                "monitors": ["crm-*", "erp-import"],
            },
            {"name": "crm-ops", "token": CRM_ADMIN, "roles": ["admin"], "monitors": ["crm-*"]},
        ]
    }
}


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client(make_client: Factory) -> Client:
    client = await make_client(**TOKENS)
    for key in ("crm-sync", "erp-import", "erp-export", "billing"):
        response = await client.put(
            f"/api/v1/monitors/{key}", json={"name": key}, headers=_as(ADMIN)
        )
        assert response.status == 201
    return client


async def _status(response: Any) -> tuple[int, str | None]:
    body = await response.json() if response.status != 204 else {}
    return response.status, body.get("error", {}).get("code")


async def test_a_scoped_token_reports_for_its_monitors_only(client: Client) -> None:
    crm = _as(CRM_PUSH)
    ok = await client.post("/api/v1/monitors/crm-sync/batches", json={}, headers=crm)
    assert ok.status == 201
    assert (await client.post("/api/v1/monitors/erp-import/logs", json={}, headers=crm)).ok
    for key in ("billing", "erp-export", "no-such"):  # exists or not: the same answer
        for path in (f"/api/v1/monitors/{key}/batches", f"/api/v1/monitors/{key}/logs"):
            response = await client.post(path, json={"logstatus": "ok"}, headers=crm)
            assert await _status(response) == (404, "monitor_not_found"), path
        assert await _status(await client.get(f"/ping/{key}/fail", headers=crm)) == (
            404,
            "monitor_not_found",
        )
        for path in (f"/api/v1/monitors/{key}", f"/api/v1/monitors/{key}/batches"):
            assert await _status(await client.get(path, headers=crm)) == (404, "monitor_not_found")
    assert (await client.get("/ping/crm-sync", headers=crm)).status in (200, 201)
    listing = await (await client.get("/api/v1/monitors", headers=crm)).json()
    assert [m["integration_key"] for m in listing["items"]] == ["crm-sync", "erp-import"]
    assert (await client.get("/metrics", headers=crm)).status == 403


async def test_batches_of_other_monitors_are_not_found(client: Client) -> None:
    other = await client.post("/api/v1/monitors/billing/batches", json={}, headers=_as(PUSH))
    batch_id = (await other.json())["batch"]["id"]
    crm = _as(CRM_PUSH)
    for method in ("GET", "PATCH"):
        response = await client.request(
            method, f"/api/v1/batches/{batch_id}", json={"logstatus": "error"}, headers=crm
        )
        assert await _status(response) == (404, "batch_not_found"), method
    stored = await (await client.get(f"/api/v1/batches/{batch_id}", headers=_as(READ))).json()
    assert stored["batch"]["logstatus"] == "running"  # not silenced, not failed


async def test_evaluate_with_a_scoped_token_sees_its_monitors(client: Client) -> None:
    crm = _as(CRM_PUSH)
    everything = await (await client.post("/api/v1/evaluate", json={}, headers=crm)).json()
    assert sorted(i["integration_key"] for i in everything["items"]) == ["crm-sync", "erp-import"]
    other = await client.post("/api/v1/evaluate", json={"integration_key": "billing"}, headers=crm)
    assert await _status(other) == (404, "monitor_not_found")
    full = await (await client.post("/api/v1/evaluate", json={}, headers=_as(PUSH))).json()
    assert len(full["items"]) == 4  # an unscoped token covers every monitor, as before


async def test_a_scoped_admin_changes_its_monitors_only(client: Client) -> None:
    admin = _as(CRM_ADMIN)
    assert (await client.put("/api/v1/monitors/crm-new", json={"name": "n"}, headers=admin)).ok
    for key in ("billing", "nothing-here"):
        put = await client.put(f"/api/v1/monitors/{key}", json={"name": "x"}, headers=admin)
        assert await _status(put) == (403, "forbidden"), key
        patch = await client.patch(f"/api/v1/monitors/{key}", json={"active": False}, headers=admin)
        assert await _status(patch) == (404, "monitor_not_found"), key
        delete = await client.delete(f"/api/v1/monitors/{key}", headers=admin)
        assert await _status(delete) == (404, "monitor_not_found"), key
    assert (await client.get("/api/v1/monitors/billing", headers=_as(READ))).status == 200


async def test_corrections_of_finished_runs_are_recorded_and_shown(client: Client) -> None:
    crm = _as(CRM_PUSH)
    created = await client.post(
        "/api/v1/monitors/crm-sync/batches", json={"no_created": 5}, headers=crm
    )
    batch_id = (await created.json())["batch"]["id"]
    path = f"/api/v1/batches/{batch_id}"
    assert (await client.patch(path, json={"logstatus": "ok"}, headers=crm)).status == 200
    silenced = await client.patch(path, json={"logstatus": "error", "no_created": 7}, headers=crm)
    assert silenced.status == 200
    back = await client.patch(path, json={"logstatus": "ok"}, headers=crm)
    assert back.status == 200
    same = await client.patch(path, json={"logstatus": "ok"}, headers=crm)  # no change at all
    assert same.status == 200
    page = await (await client.get("/monitors/crm-sync", headers=_as(READ))).text()
    assert page.count("Changed after it had finished") == 2
    assert "logstatus ok → error; no_created 5 → 7" in page and "logstatus error → ok" in page
    assert "<code>crm-jobs</code>" in page


async def test_a_log_into_a_batch_of_another_monitor_is_not_found(client: Client) -> None:
    other = await client.post("/api/v1/monitors/billing/batches", json={}, headers=_as(PUSH))
    batch_id = (await other.json())["batch"]["id"]
    response = await client.post(
        f"/api/v1/batches/{batch_id}/logs", json={"message": "x"}, headers=_as(CRM_PUSH)
    )
    assert await _status(response) == (404, "batch_not_found")
    mine = await client.post("/api/v1/monitors/crm-sync/batches", json={}, headers=_as(CRM_PUSH))
    mine_id = (await mine.json())["batch"]["id"]
    ok = await client.post(
        f"/api/v1/batches/{mine_id}/logs", json={"message": "x"}, headers=_as(CRM_PUSH)
    )
    assert ok.status == 201
