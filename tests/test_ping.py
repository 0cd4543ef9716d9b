"""Ping URLs: success, start, fail and exit codes, with and without rid, batches and logs."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import PUSH, READ, TOKENS, Factory, put_monitor

Client = TestClient[web.Request, web.Application]
DOCS = (Path(__file__).resolve().parent.parent / "docs" / "client.md").read_text()
CRON_LINE = next(x for x in DOCS.splitlines() if x.startswith("*/15 * * * * curl"))


async def _batches(client: Client, key: str) -> list[dict[str, Any]]:
    listing = await (await client.get(f"/api/v1/monitors/{key}/batches")).json()
    items: list[dict[str, Any]] = listing["items"]
    return items


async def test_success_ping_without_start_stores_a_finished_batch(client: Client) -> None:
    await put_monitor(client, "backup")
    response = await client.get("/ping/backup")
    assert response.status == 201
    [batch] = await _batches(client, "backup")
    assert batch["logstatus"] == "ok" and batch["endtime"] is not None


async def test_start_then_success_closes_the_same_batch(client: Client) -> None:
    await put_monitor(client, "backup")
    assert (await client.post("/ping/backup/start")).status == 201
    response = await client.post("/ping/backup", data=b"copied 12 files")
    assert response.status == 200
    [batch] = await _batches(client, "backup")
    assert batch["logstatus"] == "ok" and batch["logtext"] == "copied 12 files"
    assert batch["duration"] is not None


async def test_rid_pairs_start_and_finish_of_overlapping_runs(client: Client) -> None:
    await put_monitor(client, "etl")
    await client.get("/ping/etl/start?rid=a")
    await client.get("/ping/etl/start?rid=b")
    assert (await client.post("/ping/etl/fail?rid=a", data=b"disk full")).status == 200
    assert (await client.get("/ping/etl/0?rid=b")).status == 200
    batches = {b["integrationid"]: b for b in await _batches(client, "etl")}
    assert batches["a"]["logstatus"] == "error" and batches["a"]["errormsg"] == "disk full"
    assert batches["b"]["logstatus"] == "ok"
    monitor = await (await client.get("/api/v1/monitors/etl")).json()
    assert monitor["alertstatus"] == "ok"  # the latest run by starttime is b, and it passed


async def test_exit_code_fails_with_the_code_and_body(client: Client) -> None:
    await put_monitor(client, "job")
    response = await client.post("/ping/job/3", data=b"Traceback: boom")
    assert response.status == 201
    [batch] = await _batches(client, "job")
    assert batch["logstatus"] == "error"
    assert batch["errormsg"] == "exit code 3: Traceback: boom"
    for action in ("300", "9" * 5000, "-1"):
        bad = await client.get(f"/ping/job/{action}")
        assert bad.status == 404 and (await bad.json())["error"]["code"] == "not_found"


async def test_long_body_is_truncated(client: Client) -> None:
    await put_monitor(client, "job")
    await client.post("/ping/job/fail", data=b"e" * 5000)
    [batch] = await _batches(client, "job")
    assert len(batch["errormsg"]) == 1024


async def test_message_monitors_get_logs(client: Client) -> None:
    await put_monitor(client, "mail", type="message")
    assert (await client.post("/ping/mail", data=b"sent 4 mails")).status == 201
    assert (await client.post("/ping/mail/fail", data=b"smtp down")).status == 201
    logs = (await (await client.get("/api/v1/monitors/mail/logs")).json())["items"]
    assert [(x["logstatus"], x["message"] or x["errormsg"]) for x in logs] == [
        ("error", "smtp down"),
        ("ok", "sent 4 mails"),
    ]


async def test_ping_needs_the_push_role(make_client: Factory) -> None:
    client = await make_client(**TOKENS)
    await put_monitor(client, "job")
    assert (await client.get("/ping/job")).status == 401
    read = {"Authorization": f"Bearer {READ}"}
    assert (await client.get("/ping/job", headers=read)).status == 403
    push = {"Authorization": f"Bearer {PUSH}"}
    assert (await client.get("/ping/job", headers=push)).status == 201
    assert (await client.get("/ping/nope", headers=push)).status == 404


async def test_the_documented_crontab_line_with_curl(client: Client) -> None:
    """docs/client.md's crontab line, run by a real shell and curl against the service."""
    assert shutil.which("curl"), "curl is needed (Debian package curl)"
    command = CRON_LINE.removeprefix("*/15 * * * * ")
    base = str(client.make_url("")).rstrip("/")
    command = re.sub(r"http://monitor\.internal:9812", base, command)
    command = command.replace("/opt/jobs/sync.sh", "sh -c 'exit 4'")
    await put_monitor(client, "crm-sync")
    shell = await asyncio.create_subprocess_exec("sh", "-c", command)
    assert await asyncio.wait_for(shell.wait(), 30) == 0
    [batch] = await _batches(client, "crm-sync")
    assert batch["logstatus"] == "error" and batch["errormsg"] == "exit code 4"
    assert batch["duration"] is not None
