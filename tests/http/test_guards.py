"""Web pages in a browser cannot drive the service: Host (DNS rebinding), cross-site requests
and non-JSON bodies are refused before any handler runs."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from exporter.http.guards import host_name, is_loopback_name
from tests.conftest import ADMIN, TOKENS, Factory, put_monitor

Client = TestClient[web.Request, web.Application]


async def _code(response: web.StreamResponse) -> tuple[int, str]:
    body = await response.json()  # type: ignore[attr-defined]
    return response.status, body["error"]["code"]


def test_host_names() -> None:
    assert host_name("[::1]:9812") == "::1"
    assert host_name("LocalHost:80") == "localhost"
    assert host_name("status.example.") == "status.example"
    assert host_name("::1") == "::1"
    for name in ("localhost", "app.localhost", "127.0.0.1", "127.9.9.9", "::1"):
        assert is_loopback_name(name), name
    for name in ("evil.example", "localhost.evil.example", "10.0.0.1", "0.0.0.0"):
        assert not is_loopback_name(name), name


async def test_without_tokens_a_foreign_host_is_misdirected(client: Client) -> None:
    await put_monitor(client, "crm")
    response = await client.delete("/api/v1/monitors/crm", headers={"Host": "evil.example"})
    assert await _code(response) == (421, "misdirected_request")
    page = await client.get("/", headers={"Host": "evil.example:9812"})
    assert page.status == 421
    assert (await client.get("/api/v1/monitors/crm", headers={"Host": "localhost:9812"})).ok
    assert (await client.get("/api/v1/monitors/crm", headers={"Host": "[::1]:9812"})).ok
    assert (await client.get("/api/v1/monitors/crm")).status == 200  # still there


async def test_configured_hosts_are_accepted(make_client: Factory) -> None:
    client = await make_client(
        server={"base_url": "https://status.example/im", "allowed_hosts": ["box.lan"]}
    )
    for host in ("status.example", "box.lan:9812"):
        assert (await client.get("/healthz", headers={"Host": host})).status == 200, host
    assert (await client.get("/healthz", headers={"Host": "other.example"})).status == 421


async def test_with_tokens_any_host_is_served(make_client: Factory) -> None:
    client = await make_client(**TOKENS)
    headers = {"Host": "monitor.corp.example", "Authorization": f"Bearer {ADMIN}"}
    response = await client.put("/api/v1/monitors/crm", json={"name": "CRM"}, headers=headers)
    assert response.status == 201


async def test_cross_site_browser_requests_cannot_report_or_change(client: Client) -> None:
    await put_monitor(client, "crm")
    for site in ("cross-site", "same-site"):
        headers = {"Sec-Fetch-Site": site}
        response = await client.post("/api/v1/monitors/crm/batches", json={}, headers=headers)
        assert await _code(response) == (403, "cross_site_request")
        ping = await client.get("/ping/crm/fail", headers=headers)  # an <img src=...>
        assert await _code(ping) == (403, "cross_site_request")
        assert (await client.delete("/api/v1/monitors/crm", headers=headers)).status == 403
        # reading, navigating and embedding a badge stay possible
        assert (await client.get("/", headers=headers)).status == 200
        assert (await client.get("/badge/crm.svg", headers=headers)).status == 200
    batches = await (await client.get("/api/v1/monitors/crm/batches")).json()
    assert batches["items"] == []
    own = {"Sec-Fetch-Site": "same-origin"}
    assert (await client.post("/ping/crm", headers=own)).status == 200
    assert (await client.post("/ping/crm", headers={"Sec-Fetch-Site": "none"})).status == 200


async def test_the_json_api_takes_json_only(client: Client) -> None:
    await put_monitor(client, "crm")
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = await client.post(
            "/api/v1/monitors/crm/batches", data=b'{"logstatus": "ok"}', headers=headers
        )
        assert await _code(response) == (415, "unsupported_media_type"), content_type
        body = await response.json()
        assert body["error"]["field"] == "Content-Type"
    charset = {"Content-Type": "application/json; charset=utf-8"}
    ok = await client.post("/api/v1/monitors/crm/batches", data=b"{}", headers=charset)
    assert ok.status == 201
    # pings stay curl-friendly: any body, any type
    assert (await client.post("/ping/crm", data=b"done", headers={"Content-Type": "x/y"})).ok
