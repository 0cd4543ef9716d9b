"""Headers and bodies: Idempotency-Key rules and scope, duplicate JSON keys, bodies that
trickle in or stop half-way, and bodies still arriving when the service is told to stop."""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN, PUSH, Factory, put_monitor
from tests.support.service import Service

Client = TestClient[web.Request, web.Application]
OTHER_PUSH = "other-push-0123456789"
TWO_JOBS = {
    "auth": {
        "tokens": [
            {"name": "jobs", "token": PUSH, "roles": ["push", "read"]},
            {"name": "other-jobs", "token": OTHER_PUSH, "roles": ["push", "read"]},
            {"name": "ops", "token": ADMIN, "roles": ["admin"]},
        ]
    }
}


def _bearer(token: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **more}


async def _post(client: Client, key: str, token: str, idem: str, body: Any = None) -> Any:
    return await client.post(
        f"/api/v1/monitors/{key}/batches",
        json=body or {"logstatus": "ok"},
        headers=_bearer(token, **{"Idempotency-Key": idem}),
    )


async def test_idempotency_key_must_be_visible_ascii_up_to_255(client: Client) -> None:
    await put_monitor(client, "crm")
    for key in ("ключ", "a b", "tab\tkey", "x" * 256, ""):
        response = await client.post(
            "/api/v1/monitors/crm/batches",
            json={},
            headers={"Idempotency-Key": key.encode().decode("latin-1")},
        )
        body = await response.json()
        assert response.status == 400, (key, body)
        assert body["error"] == {
            "code": "invalid_header",
            "field": "Idempotency-Key",
            "message": body["error"]["message"],
        }
    longest = await client.post(
        "/api/v1/monitors/crm/batches", json={}, headers={"Idempotency-Key": "~" * 255}
    )
    assert longest.status == 201


async def test_idempotency_keys_are_scoped_per_token_and_monitor(make_client: Factory) -> None:
    client = await make_client(**TWO_JOBS)
    for key in ("crm", "erp"):
        await client.put(f"/api/v1/monitors/{key}", json={"name": key}, headers=_bearer(ADMIN))
    first = await _post(client, "crm", PUSH, "run-1")
    assert first.status == 201
    replay = await _post(client, "crm", PUSH, "run-1")
    assert replay.status == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    other_token = await _post(client, "crm", OTHER_PUSH, "run-1")
    assert other_token.status == 201 and "Idempotent-Replayed" not in other_token.headers
    other_monitor = await _post(client, "erp", PUSH, "run-1", {"logstatus": "error"})
    assert other_monitor.status == 201 and "Idempotent-Replayed" not in other_monitor.headers
    ids = {(await r.json())["batch"]["id"] for r in (first, replay, other_token, other_monitor)}
    assert len(ids) == 3
    listing = await client.get("/api/v1/monitors/crm/batches", headers=_bearer(PUSH))
    assert len((await listing.json())["items"]) == 2


async def test_a_key_given_twice_in_a_body_is_400(client: Client) -> None:
    await put_monitor(client, "crm")
    response = await client.post(
        "/api/v1/monitors/crm/batches",
        data=b'{"logstatus": "error", "logstatus": "ok"}',
        headers={"Content-Type": "application/json"},
    )
    body = await response.json()
    assert response.status == 400 and body["error"]["code"] == "invalid_json"
    assert body["error"]["field"] == "logstatus"
    listing = await (await client.get("/api/v1/monitors/crm/batches")).json()
    assert listing["items"] == []


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """The real service in its own process (handlers are not cancelled there, as in
    production), logging at DEBUG; stopped at the end."""
    running = Service(tmp_path, log_level="DEBUG")
    yield running
    running.stop()


def _send(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head)
    return sock


def _head(path: str, length: int, content_type: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def _trickle(port: int, path: str, content_type: str) -> bytes:
    """Send a body one byte at a time, slower than the read timeout allows; the answer."""

    def run() -> bytes:
        sock = _send(port, _head(path, 40, content_type))
        for _ in range(40):
            sock.sendall(b" ")
            if select.select([sock], [], [], 0.1)[0]:  # answered: stop sending
                break
        answer = sock.recv(65536)
        sock.close()
        return answer

    return await asyncio.get_running_loop().run_in_executor(None, run)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/api/v1/monitors/crm/batches", "application/json"),
        ("/ping/crm", "text/plain"),
        ("/login", "application/x-www-form-urlencoded"),
    ],
)
async def test_a_body_that_trickles_in_is_cut_with_408(
    make_client: Factory, path: str, content_type: str
) -> None:
    client = await make_client(server={"read_timeout_seconds": 0.5})
    await put_monitor(client, "crm")
    assert client.port is not None
    answer = await _trickle(client.port, path, content_type)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"request_timeout"' in answer
    listing = await (await client.get("/api/v1/monitors/crm/batches")).json()
    assert listing["items"] == []


@pytest.mark.system
def test_a_client_gone_mid_body_is_a_debug_line(service: Service) -> None:
    key = service.new_monitor()
    for _ in range(3):  # anyone can do it at will: it must not flood the log with errors
        sock = _send(service.port, _head(f"/api/v1/monitors/{key}/batches", 100) + b'{"logst')
        time.sleep(0.2)
        sock.close()
    time.sleep(0.3)
    assert service.get(f"/api/v1/monitors/{key}")["last_run"] is None
    log = service.output(tail=100_000)
    assert log.count("the client went away mid-body") == 3, log
    assert " ERROR " not in log and "Traceback" not in log, log


@pytest.mark.system
def test_a_request_aiohttp_cannot_parse_is_no_error_in_the_log(service: Service) -> None:
    for junk in (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Probe: \x00\r\n\r\n",
        b"\x16\x03\x01junk\r\n\r\n",
    ):
        sock = _send(service.port, junk)
        assert sock.recv(65536).split(b"\r\n")[0].endswith(b" 400 Bad Request"), junk
        sock.close()
    assert service.get("/healthz") == {"status": "ok"}
    log = service.output(tail=100_000)
    assert " ERROR " not in log and "Traceback" not in log, log


@pytest.mark.system
def test_sigterm_answers_bodies_still_arriving_with_503(service: Service) -> None:
    key = service.new_monitor()
    sock = _send(service.port, _head(f"/api/v1/monitors/{key}/batches", 100) + b'{"logstatus"')
    time.sleep(0.3)
    service.terminate()
    answer = sock.recv(65536)  # without the answer: cut after the grace, b"" here
    sock.close()
    assert answer.startswith(b"HTTP/1.1 503"), answer[:300]
    assert b"Retry-After: 5" in answer and b'"code":"unavailable"' in answer
    assert service.wait() == 0


async def test_ids_in_paths_are_ascii_digits_only(client: Client) -> None:
    await put_monitor(client, "crm")
    created = await client.post("/api/v1/monitors/crm/batches", json={})
    assert (await created.json())["batch"]["id"] == 1
    for path in ("/api/v1/batches/\u0661", "/api/v1/batches/\u00b9"):  # Arabic-Indic 1, ¹
        response = await client.get(path)
        assert response.status == 404, path
        assert (await response.json())["error"]["code"] == "batch_not_found"
