"""Tokens by role: no token / push / read / admin on every endpoint."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from exporter.config import TokenConfig
from exporter.http.api import ROUTES
from exporter.http.auth import Auth, bearer
from tests.conftest import ADMIN, PUSH, READ, TOKENS, Factory

Client = TestClient[web.Request, web.Application]
BODIES = {
    ("PUT", "/api/v1/monitors/{key}"): {"name": "CRM"},
    ("POST", "/api/v1/evaluate"): {},
}
EXTRA = [
    ("GET", "/metrics", {"read"}),
    ("GET", "/api/v1/openapi.json", {"read"}),
]
PUBLIC = [("GET", "/healthz"), ("GET", "/readyz")]
TOKEN_ROLES = {None: set(), PUSH: {"push"}, READ: {"read"}, ADMIN: {"admin"}}


async def _setup(client: Client) -> int:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    await client.put("/api/v1/monitors/crm", json={"name": "CRM"}, headers=headers)
    response = await client.post(
        "/api/v1/monitors/crm/batches", json={}, headers={"Authorization": f"Bearer {PUSH}"}
    )
    assert response.status == 201, await response.text()
    batch_id: int = (await response.json())["batch"]["id"]
    return batch_id


def _matrix() -> list[tuple[str, str, set[str]]]:
    rows = [(r.method, r.path, set(r.roles)) for r in ROUTES if r.method != "DELETE"]
    rows += EXTRA
    rows += [(r.method, r.path, set(r.roles)) for r in ROUTES if r.method == "DELETE"]
    return rows


async def test_role_matrix(make_client: Factory) -> None:
    client = await make_client(**TOKENS)
    batch_id = await _setup(client)
    for method, template, roles in _matrix():
        path = template.replace("{key}", "crm").replace("{id}", str(batch_id))
        body = BODIES.get((method, template), {} if method in ("POST", "PATCH") else None)
        for token, held in TOKEN_ROLES.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = await client.request(method, path, json=body, headers=headers)
            where = f"{method} {path} with {sorted(held) or 'no token'}"
            if token is None:
                assert response.status == 401, where
                assert (await response.json())["error"]["code"] == "unauthorized"
            elif held & roles:
                assert response.status not in (401, 403), f"{where}: {await response.text()}"
            else:
                assert response.status == 403, where
                assert (await response.json())["error"]["code"] == "forbidden"
        if method == "DELETE":
            await _setup(client)
    for method, path in PUBLIC:
        assert (await client.request(method, path)).status == 200, path


async def test_wrong_token_is_401(make_client: Factory) -> None:
    client = await make_client(**TOKENS)
    response = await client.get(
        "/api/v1/monitors", headers={"Authorization": "Bearer not-a-token-at-all-xx"}
    )
    assert response.status == 401
    response = await client.get("/api/v1/monitors", headers={"Authorization": f"Basic {READ}"})
    assert response.status == 401


async def test_a_token_may_hold_several_roles(make_client: Factory) -> None:
    both = "push-and-read-token-0123"
    client = await make_client(
        auth={"tokens": [{"name": "job", "token": both, "roles": ["push", "read"]}]}
    )
    headers = {"Authorization": f"Bearer {both}"}
    assert (await client.get("/api/v1/monitors", headers=headers)).status == 200
    response = await client.put("/api/v1/monitors/x", json={"name": "x"}, headers=headers)
    assert response.status == 403


async def test_metrics_can_be_left_open(make_client: Factory) -> None:
    client = await make_client(metrics={"require_auth": False}, **TOKENS)
    assert (await client.get("/metrics")).status == 200
    assert (await client.get("/api/v1/monitors")).status == 401


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("", None), (None, None)],
)
def test_bearer_parsing(header: str | None, token: str | None) -> None:
    assert bearer(header) == token


def test_identify_names_the_token_and_its_roles() -> None:
    auth = Auth([TokenConfig(name="ci", token="x" * 16, roles=("push", "read"))])
    caller = auth.identify("x" * 16)
    assert caller is not None and (caller.name, caller.roles) == ("ci", {"push", "read"})
    assert caller.covers("anything") and not caller.scoped
    assert auth.identify("y" * 16) is None
    assert auth.identify(None) is None
    assert Auth([]).identify(None) is not None
