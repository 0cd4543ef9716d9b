"""The client against the real service, started as a subprocess on a temporary database."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from exporter import client as client_module
from exporter.client import (
    AsyncClient,
    Client,
    IntegrationMonitorBatchNotFound,
    IntegrationMonitorError,
    IntegrationMonitorNotFound,
    IntegrationMonitorUnavailable,
    MissingIntegrationKey,
    create_integration_monitor_batch,
    create_integration_monitor_log,
    create_integration_monitor_log_error,
    fetch_integration_monitor,
    update_integration_monitor_batch,
)
from tests.support.processes import serve_in_thread
from tests.support.service import Service

pytestmark = pytest.mark.system  # the service runs as a subprocess for these tests

FAST_RETRIES: dict[str, Any] = {"retries": 3, "backoff": 0.01, "timeout": 5.0}


PUSH_TOKEN = "push-token-0123456789"
READ_TOKEN = "read-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"
SECURED_CONFIG = f"""\
auth:
  tokens:
    - {{name: job, token: {PUSH_TOKEN}, roles: [push]}}
    - {{name: dashboard, token: {READ_TOKEN}, roles: [read]}}
    - {{name: ops, token: {ADMIN_TOKEN}, roles: [admin, read]}}
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, service_database: str) -> Iterator[Service]:
    running = Service(tmp_path_factory.mktemp("service"), database=service_database)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, service_database: str) -> Iterator[Service]:
    running = Service(
        tmp_path_factory.mktemp("secured"), SECURED_CONFIG, ADMIN_TOKEN, database=service_database
    )
    yield running
    running.stop()


class FlakyProxy:
    """Sits in front of the service; the first ``failures`` requests fail as ``mode`` says.

    Modes: ``503`` and ``500`` answer without forwarding; ``drop`` closes the connection
    without forwarding; ``forward-then-503`` and ``forward-then-drop`` forward (so the report
    is stored) and then lose the answer.
    """

    def __init__(self, upstream: str, failures: int, mode: str) -> None:
        self.upstream = upstream
        self.failures = failures
        self.mode = mode
        self.seen: list[dict[str, Any]] = []
        self.url = ""  # set once it serves
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                proxy.handle(self)

            do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.handler = Handler

    def posts(self) -> list[dict[str, Any]]:
        return [seen for seen in self.seen if seen["method"] == "POST"]

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        with self._lock:
            self.seen.append(
                {
                    "method": h.command,
                    "path": h.path,
                    "idempotency_key": h.headers.get("Idempotency-Key"),
                    "authorization": h.headers.get("Authorization"),
                }
            )
            failing = len(self.seen) <= self.failures
        if failing and self.mode in ("503", "500"):
            error = {"code": "unavailable", "message": "proxy says no", "field": None}
            self._reply(h, int(self.mode), json.dumps({"error": error}).encode())
            return
        if failing and self.mode == "drop":
            h.close_connection = True
            return
        status, answer = self._forward(h, body)
        if failing and self.mode == "forward-then-503":
            self._reply(h, 503, b'{"error": {"code": "unavailable", "message": "lost"}}')
        elif failing and self.mode == "forward-then-drop":
            h.close_connection = True
        else:
            self._reply(h, status, answer)

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes | None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.upstream + h.path, data=body, method=h.command)
        for name in ("Content-Type", "Idempotency-Key", "Authorization", "Accept"):
            if h.headers.get(name):
                request.add_header(name, h.headers[name])
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, exc.read()
            finally:
                exc.close()

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


@pytest.fixture
def flaky(service: Service) -> Iterator[Any]:
    with contextlib.ExitStack() as running:

        def start(failures: int, mode: str = "503") -> FlakyProxy:
            proxy = FlakyProxy(service.url, failures, mode)
            proxy.url = running.enter_context(serve_in_thread(proxy.handler))
            return proxy

        yield start


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


# The original's helper functions, blocking client


def test_fetch_integration_monitor_returns_the_monitor(service: Service) -> None:
    key = service.new_monitor()
    monitor = fetch_integration_monitor(Client(service.url), key)
    assert monitor is not None
    assert monitor["integration_key"] == key
    assert monitor["type"] == "batch"


def test_fetch_integration_monitor_returns_none_for_an_unknown_key(service: Service) -> None:
    assert fetch_integration_monitor(Client(service.url), "no-such-monitor") is None


def test_an_empty_key_raises_missing_integration_key_before_any_request(closed_url: str) -> None:
    # Any request to this URL would fail as unavailable, so these errors come before one.
    client = Client(closed_url, retries=0)
    with pytest.raises(MissingIntegrationKey):
        fetch_integration_monitor(client)
    with pytest.raises(MissingIntegrationKey):
        create_integration_monitor_batch(client, "")
    with pytest.raises(MissingIntegrationKey):
        create_integration_monitor_log(client, log_text="no key and no batch")
    with pytest.raises(MissingIntegrationKey):
        create_integration_monitor_log_error(client, error_msg="no key and no batch")


def test_create_and_update_a_batch(service: Service) -> None:
    key = service.new_monitor()
    client = Client(service.url)
    batch = create_integration_monitor_batch(
        client, key, integration_id="order-17", batch_text="started"
    )
    assert batch is not None
    assert batch["integration_key"] == key
    assert batch["logstatus"] == "running"
    assert batch["integrationid"] == "order-17"
    assert batch["logtext"] == "started"

    endtime = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    updated = update_integration_monitor_batch(
        client,
        batch,
        no_created=3,
        no_updated=2,
        no_deleted=1,
        batch_text="done",
        error_msg="2 rows skipped",
        endtime=endtime,
    )
    assert updated is not None
    assert updated["id"] == batch["id"]

    stored = service.batch(batch["id"])["batch"]
    assert stored["logstatus"] == "ok"
    assert (stored["no_created"], stored["no_updated"], stored["no_deleted"]) == (3, 2, 1)
    assert stored["logtext"] == "done"
    assert stored["errormsg"] == "2 rows skipped"
    assert _parse_time(stored["endtime"]) == endtime
    assert [b["id"] for b in service.batches(key)] == [batch["id"]]


def test_create_a_batch_with_a_final_status(service: Service) -> None:
    key = service.new_monitor()
    client = Client(service.url)
    batch = create_integration_monitor_batch(client, key, batch_status="error", error_msg="down")
    assert batch is not None
    stored = service.batch(batch["id"])["batch"]
    assert stored["logstatus"] == "error"
    assert stored["errormsg"] == "down"
    assert stored["endtime"] is not None


def test_create_a_batch_for_an_unknown_key_raises_not_found(service: Service) -> None:
    with pytest.raises(IntegrationMonitorNotFound) as raised:
        create_integration_monitor_batch(Client(service.url), "no-such-monitor")
    assert (raised.value.status, raised.value.code) == (404, "monitor_not_found")


def test_a_log_for_an_unknown_key_raises_not_found(service: Service) -> None:
    with pytest.raises(IntegrationMonitorNotFound):
        create_integration_monitor_log(Client(service.url), integration_key="no-such-monitor")
    with pytest.raises(IntegrationMonitorNotFound):
        create_integration_monitor_log_error(Client(service.url), integration_key="no-such")


def test_update_without_a_batch_raises_batch_not_found_before_any_request(
    closed_url: str,
) -> None:
    with pytest.raises(IntegrationMonitorBatchNotFound):
        update_integration_monitor_batch(Client(closed_url, retries=0))
    with pytest.raises(IntegrationMonitorBatchNotFound):
        update_integration_monitor_batch(Client(closed_url, retries=0), None, "error")


def test_update_of_an_unknown_batch_raises_batch_not_found(service: Service) -> None:
    key = service.new_monitor()
    with pytest.raises(IntegrationMonitorBatchNotFound) as raised:
        update_integration_monitor_batch(
            Client(service.url), {"id": 2_000_000_000, "integration_key": key}
        )
    assert (raised.value.status, raised.value.code) == (404, "batch_not_found")


def test_a_log_in_a_batch_takes_the_key_from_the_batch(service: Service) -> None:
    key = service.new_monitor()
    client = Client(service.url)
    batch = create_integration_monitor_batch(client, key)
    log = create_integration_monitor_log(
        client, batch, integration_id="row-4", log_text="row imported", message="payload"
    )
    assert log is not None
    assert batch is not None
    assert log["integration_key"] == key
    assert log["batch_id"] == batch["id"]
    assert log["logstatus"] == "ok"
    assert (log["integrationid"], log["logtext"], log["message"]) == (
        "row-4",
        "row imported",
        "payload",
    )
    assert [stored["id"] for stored in service.batch(batch["id"])["logs"]] == [log["id"]]


def test_every_helper_takes_the_batch_or_its_id(service: Service) -> None:
    """The dict, its id as an int, or as the string `integration-monitor run` exports."""
    key = service.new_monitor()
    client = Client(service.url)
    batch = create_integration_monitor_batch(client, key)
    assert batch is not None
    batch_id = batch["id"]
    logs = [
        create_integration_monitor_log(client, batch, message="as a dict"),
        create_integration_monitor_log(client, batch_id, message="as an int"),
        create_integration_monitor_log(client, str(batch_id), message="as IM_BATCH_ID"),
        create_integration_monitor_log_error(client, str(batch_id), error_msg="an error"),
        create_integration_monitor_log(client, batch_id, integration_key=key, message="both"),
    ]
    assert all(log is not None and log["batch_id"] == batch_id for log in logs)
    assert all(log is not None and log["integration_key"] == key for log in logs)
    updated = update_integration_monitor_batch(client, str(batch_id), no_created=4)
    assert updated is not None and updated["no_created"] == 4
    stored = service.batch(batch_id)
    assert stored["batch"]["logstatus"] == "ok"
    assert len(stored["logs"]) == 5
    for not_a_batch in ("", "abc", "-3", 0, True, {"name": "x"}):
        with pytest.raises(IntegrationMonitorBatchNotFound):
            update_integration_monitor_batch(client, not_a_batch)
    with pytest.raises(IntegrationMonitorBatchNotFound):
        create_integration_monitor_log(client, "abc", message="x")


def test_a_log_given_the_batch_of_another_monitor_and_a_key_is_refused(service: Service) -> None:
    client = Client(service.url)
    batch = create_integration_monitor_batch(client, service.new_monitor())
    assert batch is not None
    with pytest.raises(IntegrationMonitorError) as raised:
        create_integration_monitor_log(client, batch["id"], integration_key=service.new_monitor())
    assert (raised.value.status, raised.value.code) == (409, "batch_monitor_mismatch")


def test_an_update_changes_the_callers_batch_in_place(service: Service) -> None:
    """As the original's LimeObject did: the caller's `batch` shows the new status and counts."""
    key = service.new_monitor()
    client = Client(service.url)
    batch = create_integration_monitor_batch(client, key)
    assert batch is not None and batch["logstatus"] == "running"
    returned = update_integration_monitor_batch(
        client, batch, batch_status="donewitherror", no_created=5, no_updated=2
    )
    assert returned == batch
    assert batch["logstatus"] == "donewitherror"
    assert (batch["no_created"], batch["no_updated"]) == (5, 2)
    assert batch["endtime"] is not None and batch["duration"] is not None


async def test_an_async_update_changes_the_callers_batch_in_place(service: Service) -> None:
    key = service.new_monitor()
    async with AsyncClient(service.url) as client:
        batch = await create_integration_monitor_batch(client, key)
        assert batch is not None
        await update_integration_monitor_batch(client, batch, "ok", no_deleted=7)
        await create_integration_monitor_log(client, str(batch["id"]), message="by id")
    assert (batch["logstatus"], batch["no_deleted"]) == ("ok", 7)
    assert [x["message"] for x in service.batch(batch["id"])["logs"]] == ["by id"]


def test_an_error_log_without_a_batch(service: Service) -> None:
    key = service.new_monitor(type_="message")
    log = create_integration_monitor_log_error(
        Client(service.url), integration_key=key, log_text="import failed", error_msg="timeout"
    )
    assert log is not None
    assert log["batch_id"] is None
    stored = service.logs(key)
    assert [(s["id"], s["logstatus"], s["errormsg"]) for s in stored] == [
        (log["id"], "error", "timeout")
    ]


def test_other_api_errors_carry_status_code_and_field(service: Service) -> None:
    key = service.new_monitor()
    client = Client(service.url)
    batch = create_integration_monitor_batch(client, key)
    with pytest.raises(IntegrationMonitorError) as raised:
        update_integration_monitor_batch(client, batch, no_created=-1)
    assert (raised.value.status, raised.value.code) == (422, "validation_error")
    assert raised.value.field == "no_created"

    with pytest.raises(IntegrationMonitorError) as raised:
        create_integration_monitor_batch(client, key, batch_status="no-such-status")
    assert (raised.value.status, raised.value.code) == (422, "invalid_status")

    other = service.new_monitor()
    with pytest.raises(IntegrationMonitorError) as raised:
        create_integration_monitor_log(client, batch, integration_key=other)
    assert (raised.value.status, raised.value.code) == (409, "batch_monitor_mismatch")


def test_the_helpers_are_client_methods_too(service: Service) -> None:
    key = service.new_monitor()
    client = Client(service.url)
    batch = client.create_integration_monitor_batch(key)
    client.create_integration_monitor_log(batch, message="hello")
    client.update_integration_monitor_batch(batch, "donewitherror", no_updated=4)
    assert batch is not None
    stored = service.batch(batch["id"])
    assert (stored["batch"]["logstatus"], stored["batch"]["no_updated"]) == ("donewitherror", 4)
    assert [log["message"] for log in stored["logs"]] == ["hello"]


# Retries, idempotency and fail_quietly


def test_a_report_retried_after_503_is_stored_once(service: Service, flaky: Any) -> None:
    key = service.new_monitor()
    proxy = flaky(2, "503")
    batch = create_integration_monitor_batch(Client(proxy.url, **FAST_RETRIES), key)
    assert batch is not None
    posts = proxy.posts()
    assert len(posts) == 3
    assert posts[0]["idempotency_key"]
    assert {p["idempotency_key"] for p in posts} == {posts[0]["idempotency_key"]}
    assert [b["id"] for b in service.batches(key)] == [batch["id"]]


@pytest.mark.parametrize("mode", ["forward-then-503", "forward-then-drop"])
def test_a_report_whose_answer_was_lost_is_stored_once(
    service: Service, flaky: Any, mode: str
) -> None:
    key = service.new_monitor()
    proxy = flaky(2, mode)
    client = Client(proxy.url, **FAST_RETRIES)
    batch = create_integration_monitor_batch(client, key, batch_text="once")
    log = create_integration_monitor_log(client, integration_key=key, message="once")
    assert batch is not None
    assert log is not None
    assert len(proxy.posts()) == 4  # two lost answers, then one of each
    assert [b["id"] for b in service.batches(key)] == [batch["id"]]
    assert [stored["id"] for stored in service.logs(key)] == [log["id"]]


def test_a_dropped_connection_is_retried(service: Service, flaky: Any) -> None:
    key = service.new_monitor()
    proxy = flaky(1, "drop")
    assert fetch_integration_monitor(Client(proxy.url, **FAST_RETRIES), key) is not None
    assert len(proxy.seen) == 2


def test_a_503_that_persists_raises_unavailable_after_the_retries(
    service: Service, flaky: Any
) -> None:
    key = service.new_monitor()
    proxy = flaky(100, "503")
    with pytest.raises(IntegrationMonitorUnavailable) as raised:
        create_integration_monitor_batch(Client(proxy.url, retries=2, backoff=0.01), key)
    assert (raised.value.status, raised.value.code) == (503, "unavailable")
    assert len(proxy.seen) == 3
    assert service.batches(key) == []


def test_other_errors_are_not_retried(service: Service, flaky: Any) -> None:
    proxy = flaky(100, "500")
    with pytest.raises(IntegrationMonitorUnavailable) as raised:
        fetch_integration_monitor(Client(proxy.url, **FAST_RETRIES), "anything")
    assert raised.value.status == 500
    assert len(proxy.seen) == 1

    passing = flaky(0)
    with pytest.raises(IntegrationMonitorNotFound):
        create_integration_monitor_batch(Client(passing.url, **FAST_RETRIES), "no-such-monitor")
    assert len(passing.seen) == 1


def test_the_token_is_sent_as_a_bearer_token(service: Service, flaky: Any) -> None:
    proxy = flaky(0)
    fetch_integration_monitor(Client(proxy.url, token="s3cret-token-value"), "anything")
    assert proxy.seen[0]["authorization"] == "Bearer s3cret-token-value"
    fetch_integration_monitor(Client(proxy.url), "anything")
    assert proxy.seen[1]["authorization"] is None


def test_a_push_token_reports_and_others_are_refused(secured: Service) -> None:
    key = secured.new_monitor()
    batch = create_integration_monitor_batch(Client(secured.url, token=PUSH_TOKEN), key)
    assert batch is not None
    assert [b["id"] for b in secured.batches(key)] == [batch["id"]]

    quiet = Client(secured.url, fail_quietly=True)
    with pytest.raises(IntegrationMonitorError) as raised:
        create_integration_monitor_batch(quiet, key)
    assert (raised.value.status, raised.value.code) == (401, "unauthorized")
    with pytest.raises(IntegrationMonitorError) as raised:
        update_integration_monitor_batch(Client(secured.url, token=READ_TOKEN), batch)
    assert (raised.value.status, raised.value.code) == (403, "forbidden")


def test_unreachable_raises_unavailable(closed_url: str) -> None:
    with pytest.raises(IntegrationMonitorUnavailable) as raised:
        fetch_integration_monitor(Client(closed_url, retries=1, backoff=0.01), "crm-sync")
    assert raised.value.status is None


def test_fail_quietly_returns_none_when_unreachable(
    closed_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client(closed_url, retries=1, backoff=0.01, fail_quietly=True)
    with caplog.at_level(logging.WARNING, logger="exporter.client"):
        batch = create_integration_monitor_batch(client, "crm-sync")
        assert batch is None
        assert create_integration_monitor_log(client, integration_key="crm-sync") is None
        assert create_integration_monitor_log_error(client, integration_key="crm-sync") is None
        assert fetch_integration_monitor(client, "crm-sync") is None
        fake_batch = {"id": 1, "integration_key": "crm-sync"}
        assert update_integration_monitor_batch(client, fake_batch) is None
    assert len(caplog.records) == 5
    assert all("not reported" in record.getMessage() for record in caplog.records)


def test_fail_quietly_returns_none_on_5xx(service: Service, flaky: Any) -> None:
    key = service.new_monitor()
    proxy = flaky(100, "500")
    assert create_integration_monitor_batch(Client(proxy.url, fail_quietly=True), key) is None


def test_fail_quietly_still_raises_for_mistakes(service: Service) -> None:
    client = Client(service.url, fail_quietly=True)
    with pytest.raises(IntegrationMonitorNotFound):
        create_integration_monitor_batch(client, "no-such-monitor")
    with pytest.raises(MissingIntegrationKey):
        create_integration_monitor_batch(client, "")
    with pytest.raises(IntegrationMonitorBatchNotFound):
        update_integration_monitor_batch(client, None)


# The batch context manager


def test_the_batch_context_manager_finishes_ok_with_the_counts(service: Service) -> None:
    key = service.new_monitor()
    with Client(service.url).batch(key, integration_id="run-1") as run:
        assert run.batch is not None
        assert service.batch(run.batch["id"])["batch"]["logstatus"] == "running"
        run.no_created += 2
        run.no_updated += 5
        run.no_deleted += 1
        run.logtext = "synced"
        log = create_integration_monitor_log(Client(service.url), run, message="in the run")
    [stored] = service.batches(key)
    assert stored["id"] == run.id
    assert log is not None
    assert (log["batch_id"], log["integration_key"]) == (run.id, key)
    assert stored["logstatus"] == "ok"
    assert stored["integrationid"] == "run-1"
    assert (stored["no_created"], stored["no_updated"], stored["no_deleted"]) == (2, 5, 1)
    assert stored["logtext"] == "synced"
    assert stored["endtime"] is not None


def test_the_batch_context_manager_reports_an_exception_and_reraises(service: Service) -> None:
    key = service.new_monitor()
    with pytest.raises(ValueError, match="boom"), Client(service.url).batch(key) as run:
        run.no_created = 1
        raise ValueError("boom " + "x" * 2000)
    [stored] = service.batches(key)
    assert stored["logstatus"] == "error"
    assert stored["errormsg"].startswith("ValueError: boom xxx")
    assert len(stored["errormsg"]) == 1024
    assert stored["no_created"] == 1


def test_the_batch_context_manager_takes_a_status_from_the_job(service: Service) -> None:
    key = service.new_monitor()
    with Client(service.url).batch(key) as run:
        run.logstatus = "donewitherror"
        run.errormsg = "3 of 10 rows failed"
    [stored] = service.batches(key)
    assert (stored["logstatus"], stored["errormsg"]) == ("donewitherror", "3 of 10 rows failed")


def test_the_batch_context_manager_reports_the_whole_run_when_the_start_was_lost(
    service: Service, flaky: Any
) -> None:
    key = service.new_monitor()
    proxy = flaky(3, "503")  # the start and its two retries
    before = datetime.now(UTC).replace(microsecond=0)
    client = Client(proxy.url, retries=2, backoff=0.01, fail_quietly=True)
    with client.batch(key) as run:
        assert run.batch is None
        run.no_created = 7
    [stored] = service.batches(key)
    assert (stored["logstatus"], stored["no_created"]) == ("ok", 7)
    assert before <= _parse_time(stored["starttime"]) <= _parse_time(stored["endtime"])


def test_the_batch_context_manager_does_not_break_the_job_when_quiet(closed_url: str) -> None:
    client = Client(closed_url, retries=0, fail_quietly=True)
    with client.batch("crm-sync") as run:
        run.no_created = 1
    with pytest.raises(KeyError), client.batch("crm-sync"):
        raise KeyError("the job's own error stays on top")


# The asynchronous client


async def test_async_helpers(service: Service) -> None:
    key = service.new_monitor()
    client = AsyncClient(service.url)
    monitor = await fetch_integration_monitor(client, key)
    assert monitor is not None
    assert monitor["integration_key"] == key
    assert await fetch_integration_monitor(client, "no-such-monitor") is None

    batch = await create_integration_monitor_batch(client, key, integration_id="a-1")
    assert batch is not None
    log = await create_integration_monitor_log(client, batch, message="m")
    error_log = await create_integration_monitor_log_error(client, batch, error_msg="e")
    await update_integration_monitor_batch(client, batch, "error", no_deleted=2, error_msg="e")
    assert log is not None
    assert error_log is not None

    stored = service.batch(batch["id"])
    assert (stored["batch"]["logstatus"], stored["batch"]["no_deleted"]) == ("error", 2)
    assert {s["id"]: s["logstatus"] for s in stored["logs"]} == {
        log["id"]: "ok",
        error_log["id"]: "error",
    }


async def test_async_exceptions(service: Service, closed_url: str) -> None:
    client = AsyncClient(service.url)
    with pytest.raises(IntegrationMonitorNotFound):
        await create_integration_monitor_batch(client, "no-such-monitor")
    with pytest.raises(IntegrationMonitorBatchNotFound):
        await update_integration_monitor_batch(client, None)
    with pytest.raises(IntegrationMonitorBatchNotFound):
        await update_integration_monitor_batch(client, {"id": 2_000_000_000})
    with pytest.raises(MissingIntegrationKey):
        await fetch_integration_monitor(AsyncClient(closed_url, retries=0), "")
    with pytest.raises(IntegrationMonitorUnavailable):
        await fetch_integration_monitor(AsyncClient(closed_url, retries=1, backoff=0.01), "k")


async def test_async_retries_store_a_report_once(service: Service, flaky: Any) -> None:
    key = service.new_monitor()
    proxy = flaky(2, "forward-then-503")
    async with AsyncClient(proxy.url, **FAST_RETRIES) as client:
        batch = await create_integration_monitor_batch(client, key)
        assert batch is not None
    posts = proxy.posts()
    assert len(posts) == 3
    assert {p["idempotency_key"] for p in posts} == {posts[0]["idempotency_key"]}
    assert [b["id"] for b in service.batches(key)] == [batch["id"]]


async def test_async_dropped_connection_is_retried(service: Service, flaky: Any) -> None:
    key = service.new_monitor()
    proxy = flaky(1, "forward-then-drop")
    batch = await create_integration_monitor_batch(AsyncClient(proxy.url, **FAST_RETRIES), key)
    assert batch is not None
    assert [b["id"] for b in service.batches(key)] == [batch["id"]]


async def test_async_fail_quietly(closed_url: str, caplog: pytest.LogCaptureFixture) -> None:
    client = AsyncClient(closed_url, retries=1, backoff=0.01, fail_quietly=True)
    with caplog.at_level(logging.WARNING, logger="exporter.client"):
        assert await create_integration_monitor_batch(client, "crm-sync") is None
    assert "not reported" in caplog.records[0].getMessage()


async def test_async_batch_context_manager(service: Service) -> None:
    key = service.new_monitor()
    async with AsyncClient(service.url) as client:
        async with client.batch(key) as run:
            run.no_updated = 9
        with pytest.raises(RuntimeError):
            async with client.batch(key):
                raise RuntimeError("sync failed")
    ok, failed = sorted(service.batches(key), key=lambda b: int(b["id"]))
    assert (ok["logstatus"], ok["no_updated"]) == ("ok", 9)
    assert (failed["logstatus"], failed["errormsg"]) == ("error", "RuntimeError: sync failed")


def test_the_blocking_client_needs_only_the_standard_library(
    service: Service, tmp_path: Path
) -> None:
    # A machine without the package or aiohttp: client.py copied next to the job script.
    (tmp_path / "im_client.py").write_text(Path(client_module.__file__).read_text())
    script = f"""
import sys
sys.modules["aiohttp"] = None
sys.modules["exporter"] = None
sys.path.insert(0, {str(tmp_path)!r})
import im_client
client = im_client.Client({service.url!r})
batch = im_client.create_integration_monitor_batch(client, sys.argv[1])
im_client.update_integration_monitor_batch(client, batch, no_created=6)
print(batch["id"])
"""
    key = service.new_monitor()
    done = subprocess.run(
        [sys.executable, "-c", script, key], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    [stored] = service.batches(key)
    assert (stored["id"], stored["no_created"]) == (int(done.stdout), 6)


def test_a_base_url_must_be_http() -> None:
    with pytest.raises(ValueError):
        Client("127.0.0.1:9812")
