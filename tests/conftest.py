"""Fixtures: the real app from the real factory on a temporary database, spoken to over HTTP.

Every test that starts the app runs twice: on an SQLite file and on an empty PostgreSQL
database of a throwaway cluster (tests/support/postgres.py), started once per session. A test
of one backend's own behaviour says so with `@sqlite_only` or `@postgresql_only`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exporter.app import create_app
from exporter.config import Config, parse_config
from tests.support.postgres import Cluster

PUSH = "push-token-0123456789"
READ = "read-token-0123456789"
ADMIN = "admin-token-0123456789"
TOKENS = {
    "auth": {
        "tokens": [
            {"name": "jobs", "token": PUSH, "roles": ["push"]},
            {"name": "prometheus", "token": READ, "roles": ["read"]},
            {"name": "ops", "token": ADMIN, "roles": ["admin"]},
        ]
    }
}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_796_000_000.0) -> None:  # 2026-11-30
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_config(tmp_path: Path, **sections: Any) -> Config:
    data: dict[str, Any] = {"database": {"path": str(tmp_path / "im.db")}}
    for name, value in sections.items():
        data[name] = {**data.get(name, {}), **value} if isinstance(value, dict) else value
    return parse_config(data, env={})


Factory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
BACKENDS = ("sqlite", "postgresql")
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
postgresql_only = pytest.mark.parametrize("database", ["postgresql"], indirect=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One PostgreSQL server for the session; each test gets an empty database of its own."""
    cluster = Cluster().start()
    yield cluster
    cluster.remove()


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The `database` config section of a test: a new SQLite file or PostgreSQL database."""
    if request.param == "sqlite":
        return {"path": str(tmp_path / "im.db")}
    cluster: Cluster = request.getfixturevalue("postgres_cluster")
    return {"url": cluster.database()}


@pytest.fixture(scope="module", params=BACKENDS)
def service_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """`serve --database` for the service a module's tests run as a process (the client's,
    the browser's): a new SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path_factory.mktemp("db") / "im.db")
    cluster: Cluster = request.getfixturevalue("postgres_cluster")
    return cluster.database()


@pytest.fixture
async def make_client(tmp_path: Path, database: dict[str, str]) -> AsyncIterator[Factory]:
    """Start the real app (config sections as keyword arguments); closed at the end. Every
    app of a test uses the test's one database (a second app is a restart, or a replica)."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(
        clock: Callable[[], float] | None = None, **sections: Any
    ) -> TestClient[web.Request, web.Application]:
        sections["database"] = {**database, **sections.get("database", {})}
        config = make_config(tmp_path, **sections)
        app = create_app(config, clock) if clock else create_app(config)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: Factory) -> TestClient[web.Request, web.Application]:
    return await make_client()


async def put_monitor(
    client: TestClient[web.Request, web.Application], key: str, **settings: Any
) -> dict[str, Any]:
    body = {"name": key, **settings}
    response = await client.put(f"/api/v1/monitors/{key}", json=body, headers=_auth(ADMIN, client))
    assert response.status in (200, 201), await response.text()
    result: dict[str, Any] = await response.json()
    return result


def _auth(token: str, client: TestClient[web.Request, web.Application]) -> dict[str, str]:
    from exporter.http import appkeys

    return {"Authorization": f"Bearer {token}"} if client.app[appkeys.AUTH].enabled else {}
