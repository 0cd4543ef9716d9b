"""Status page sign-in: a random session id in the cookie, stored hashed, expiring, revoked at
sign-out; sign-out is a same-site POST; Secure behind an HTTPS proxy; nav links that work."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from exporter.http.sessions import PER_TOKEN
from tests.conftest import READ, TOKENS, Clock, Factory, put_monitor, sqlite_only

Client = TestClient[web.Request, web.Application]
SCOPED_READ = "scoped-read-0123456789"


async def _sign_in(client: Client, token: str = READ, **headers: str) -> web.StreamResponse:
    response = await client.post(
        "/login", data={"token": token, "next": "/"}, headers=headers, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    return response


def _session_of(response: web.StreamResponse) -> str:
    return response.cookies["im_session"].value


@pytest.fixture
async def clock() -> Clock:
    return Clock()


@pytest.fixture
async def secured(make_client: Factory, clock: Clock) -> Client:
    tokens = [
        *TOKENS["auth"]["tokens"],
        {"name": "crm-viewer", "token": SCOPED_READ, "roles": ["read"], "monitors": ["crm*"]},
    ]
    client = await make_client(clock, auth={"tokens": tokens})
    await put_monitor(client, "crm", name="CRM sync")
    await put_monitor(client, "erp", name="ERP import")
    return client


@sqlite_only
async def test_the_cookie_is_a_random_id_stored_only_as_a_hash(
    secured: Client, tmp_path: Path
) -> None:
    first, second = _session_of(await _sign_in(secured)), _session_of(await _sign_in(secured))
    assert first != second and READ not in (first, second) and len(first) >= 40
    rows = sqlite3.connect(tmp_path / "im.db").execute("SELECT * FROM web_session").fetchall()
    assert len(rows) == 2
    stored = repr(rows).encode()
    assert first.encode() not in stored and READ.encode() not in stored
    assert hashlib.sha256(READ.encode()).digest() in {bytes(r[1]) for r in rows}


async def test_sign_out_revokes_the_session_even_if_the_cookie_is_kept(secured: Client) -> None:
    session = _session_of(await _sign_in(secured))
    secured.session.cookie_jar.clear()
    cookies = {"im_session": session}
    assert (await secured.get("/", cookies=cookies, allow_redirects=False)).status == 200
    out = await secured.post("/logout", cookies=cookies, allow_redirects=False)
    assert out.status == 303
    assert (await secured.get("/", cookies=cookies, allow_redirects=False)).status == 303


async def test_a_session_expires(secured: Client, clock: Clock) -> None:
    await _sign_in(secured)
    assert (await secured.get("/", allow_redirects=False)).status == 200
    clock.advance(31 * 86400)
    assert (await secured.get("/", allow_redirects=False)).status == 303


async def test_sign_out_is_a_same_site_post(secured: Client) -> None:
    await _sign_in(secured)
    assert (await secured.get("/logout", allow_redirects=False)).status == 405
    forged = await secured.post(
        "/logout", headers={"Origin": "https://evil.example"}, allow_redirects=False
    )
    assert forged.status == 403
    assert (await secured.get("/", allow_redirects=False)).status == 200  # still signed in


async def test_secure_cookie_behind_a_trusted_https_proxy(make_client: Factory) -> None:
    trusting = await make_client(Clock(), **TOKENS)
    response = await _sign_in(trusting, **{"X-Forwarded-Proto": "https"})
    assert response.cookies["im_session"]["secure"]
    plain = await _sign_in(trusting)
    assert not plain.cookies["im_session"]["secure"]


async def test_forwarded_proto_from_an_untrusted_peer_is_ignored(make_client: Factory) -> None:
    client = await make_client(Clock(), server={"trusted_proxies": ["10.0.0.0/8"]}, **TOKENS)
    response = await _sign_in(client, **{"X-Forwarded-Proto": "https"})
    assert not response.cookies["im_session"]["secure"]
    https = await make_client(Clock(), server={"base_url": "https://status.example"}, **TOKENS)
    assert (await _sign_in(https)).cookies["im_session"]["secure"]


async def test_nav_links_work_for_a_session_or_are_not_shown(secured: Client) -> None:
    await _sign_in(secured)
    html = await (await secured.get("/")).text()
    assert 'href="/metrics"' in html and 'href="/api/v1/openapi.json"' in html
    assert (await secured.get("/metrics")).status == 200
    assert (await secured.get("/api/v1/openapi.json")).status == 200
    # the session opens the pages and their links, not the rest of the JSON API
    assert (await secured.get("/api/v1/monitors")).status == 401
    secured.session.cookie_jar.clear()
    await _sign_in(secured, SCOPED_READ)
    html = await (await secured.get("/")).text()
    assert 'href="/metrics"' not in html  # a token for some monitors cannot scrape all
    assert (await secured.get("/metrics")).status == 403


async def test_a_scoped_session_sees_its_monitors_only(secured: Client) -> None:
    await _sign_in(secured, SCOPED_READ)
    html = await (await secured.get("/")).text()
    assert "CRM sync" in html and "ERP import" not in html
    assert (await secured.get("/monitors/crm")).status == 200
    assert (await secured.get("/monitors/erp", allow_redirects=False)).status == 404
    assert (await secured.get("/monitors/nope", allow_redirects=False)).status == 404
    badge = await secured.get("/badge/erp.svg")
    assert badge.status == 404 and "ERP import" not in await badge.text()


@sqlite_only
async def test_sessions_per_token_are_bounded(secured: Client, tmp_path: Path) -> None:
    for _ in range(PER_TOKEN + 5):
        await _sign_in(secured)
    count = sqlite3.connect(tmp_path / "im.db").execute("SELECT count(*) FROM web_session")
    assert count.fetchone()[0] == PER_TOKEN
