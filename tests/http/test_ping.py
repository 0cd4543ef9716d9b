"""Ping URLs: success, start, fail and exit codes, with and without rid, batches and logs."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import PUSH, READ, TOKENS, Factory, put_monitor
from tests.support import ROOT
from tests.support.service import Service

Client = TestClient[web.Request, web.Application]
DOCS = (ROOT / "docs" / "client.md").read_text()
CRON_LINE = next(x for x in DOCS.splitlines() if x.startswith("*/15 * * * * curl"))


async def _batches(client: Client, key: str) -> list[dict[str, Any]]:
    listing = await (await client.get(f"/api/v1/monitors/{key}/batches")).json()
    items: list[dict[str, Any]] = listing["items"]
    return items


async def test_success_ping_without_start_stores_a_finished_batch(client: Client) -> None:
    await put_monitor(client, "backup")
    response = await client.get("/ping/backup")
    assert response.status == 200
    [batch] = await _batches(client, "backup")
    assert batch["logstatus"] == "ok" and batch["endtime"] is not None


async def test_start_then_success_closes_the_same_batch(client: Client) -> None:
    await put_monitor(client, "backup")
    assert (await client.post("/ping/backup/start")).status == 200
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
    assert response.status == 200
    [batch] = await _batches(client, "job")
    assert batch["logstatus"] == "error"
    assert batch["errormsg"] == "exit code 3: Traceback: boom"


async def test_exit_codes_outside_0_to_255_or_not_digits_are_400(client: Client) -> None:
    await put_monitor(client, "job")
    for action in ("256", "300", "9" * 5000, "-1", "+3", "3.0", " 3", "x"):
        bad = await client.get(f"/ping/job/{action}")
        assert bad.status == 400, action
        assert (await bad.json())["error"]["code"] == "invalid_ping_action"
    assert (await client.get("/ping/job/255")).status == 200
    assert (await client.get("/ping/job/000")).status == 200
    assert [b["logstatus"] for b in await _batches(client, "job")] == ["ok", "error"]


async def test_exit_code_accepts_ascii_digits_only(client: Client) -> None:
    """'٣' is a digit to str.isdigit (Arabic-Indic three), and '³' too: neither is exit code 3."""
    await put_monitor(client, "job")
    for action in ("\u0663", "\u00b3", "\uff13", "1\u0663"):
        bad = await client.get(f"/ping/job/{action}")
        assert bad.status == 400, repr(action)
        assert (await bad.json())["error"]["code"] == "invalid_ping_action"
    assert await _batches(client, "job") == []


async def test_long_body_is_truncated(client: Client) -> None:
    await put_monitor(client, "job")
    await client.post("/ping/job/fail", data=b"e" * 5000)
    [batch] = await _batches(client, "job")
    assert len(batch["errormsg"]) == 1024


async def test_message_monitors_get_logs(client: Client) -> None:
    await put_monitor(client, "mail", type="message")
    assert (await client.post("/ping/mail", data=b"sent 4 mails")).status == 200
    assert (await client.post("/ping/mail/fail", data=b"smtp down")).status == 200
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
    assert (await client.get("/ping/job", headers=push)).status == 200
    assert (await client.get("/ping/nope", headers=push)).status == 404


@pytest.mark.system
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


async def test_answer_is_ok_as_text_and_never_the_jobs_text(client: Client) -> None:
    """Healthchecks' answer: 200, text/plain, OK; whatever the job said stays out of it."""
    await put_monitor(client, "job")
    for path in ("/ping/job/start", "/ping/job/fail", "/ping/job/2", "/ping/job", "/ping/job/log"):
        response = await client.post(path, data=b"cp: /data/x: file not found")
        assert response.status == 200, path
        assert response.content_type == "text/plain"
        assert await response.text() == "OK"


async def test_json_answer_only_when_asked_for(client: Client) -> None:
    await put_monitor(client, "job")
    asked = {"Accept": "application/json"}
    started = await client.post("/ping/job/start", data=b"file not found", headers=asked)
    assert started.status == 200 and started.content_type == "application/json"
    body = await started.json()
    assert body == {"batch_id": body["batch_id"], "logstatus": "running"}
    finished = await client.post("/ping/job/fail", data=b"file not found", headers=asked)
    assert await finished.json() == {"batch_id": body["batch_id"], "logstatus": "error"}
    assert "not found" not in await finished.text()


async def test_head_works_wherever_get_does(client: Client) -> None:
    """Uptime tools send HEAD; on a ping URL it is a ping, as with Healthchecks."""
    await put_monitor(client, "job")
    response = await client.head("/ping/job")
    assert response.status == 200
    [batch] = await _batches(client, "job")
    assert batch["logstatus"] == "ok"
    assert (await client.head("/ping/job/999")).status == 400
    assert (await client.head("/ping/nope")).status == 404
    gets = {
        r.resource.canonical
        for r in client.app.router.routes()
        if r.method == "GET" and r.resource is not None
    }
    heads = {
        r.resource.canonical
        for r in client.app.router.routes()
        if r.method == "HEAD" and r.resource is not None
    }
    assert gets <= heads
    assert (await client.head("/api/v1/monitors/job")).status == 200


async def test_log_adds_a_message_to_the_open_run_without_changing_it(client: Client) -> None:
    await put_monitor(client, "etl")
    await client.get("/ping/etl/start?rid=a")
    assert (await client.post("/ping/etl/log?rid=a", data=b"halfway: 120 rows")).status == 200
    assert (await client.post("/ping/etl/log", data=b"no run open by rid")).status == 200
    [batch] = await _batches(client, "etl")
    assert batch["logstatus"] == "running"
    detail = await (await client.get(f"/api/v1/batches/{batch['id']}")).json()
    assert [(x["logstatus"], x["message"]) for x in detail["logs"]] == [
        ("ok", "no run open by rid"),
        ("ok", "halfway: 120 rows"),
    ]
    await client.get("/ping/etl?rid=a")
    assert (await client.post("/ping/etl/log", data=b"after the run")).status == 200
    [batch] = await _batches(client, "etl")
    assert batch["logstatus"] == "ok"
    logs = (await (await client.get("/api/v1/monitors/etl/logs")).json())["items"]
    assert (logs[0]["message"], logs[0]["batch_id"]) == ("after the run", None)


async def test_log_on_a_message_monitor_is_refused(client: Client) -> None:
    """A message monitor's every log is a run: /log cannot add one without changing status."""
    await put_monitor(client, "mail", type="message")
    response = await client.post("/ping/mail/log", data=b"queue length 3")
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "monitor_type_mismatch"
    logs = (await (await client.get("/api/v1/monitors/mail/logs")).json())["items"]
    assert logs == []


def _healthchecks_io() -> ModuleType:
    """The third-party Healthchecks client (PyPI healthchecks-io, in the test extra).

    Its models use pydantic 1 spellings that pydantic 2 warns about when they are defined;
    those warnings are its own, not ours, and this suite turns warnings into errors.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import healthchecks_io

    return healthchecks_io


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    running = Service(tmp_path)
    yield running
    running.stop()


@pytest.mark.system
def test_a_third_party_healthchecks_client_works_unchanged(service: Service) -> None:
    """healthchecks-io, pointed at our ping URLs, sees every ping succeed.

    It takes a ping as done when the answer is 200, and as a missing check when the answer is
    404 or contains "not found": the job's own "file not found" must not read as that.
    """
    hc = _healthchecks_io()
    key = service.new_monitor()
    with hc.Client(ping_url=f"{service.url}/ping/") as client:
        with hc.CheckTrap(client, uuid=key):
            pass
        assert client.start_ping(uuid=key) == (True, "OK")
        assert client.fail_ping(uuid=key, data="cp: /data/in.csv: file not found") == (True, "OK")
        assert client.exit_code_ping(2, uuid=key, data="rsync: not found") == (True, "OK")
        with pytest.raises(RuntimeError, match="file not found"), hc.CheckTrap(client, uuid=key):
            raise RuntimeError("file not found")
        batches = service.batches(key)
        assert [(b["logstatus"], b["errormsg"].split("\n")[0]) for b in batches] == [
            ("error", "file not found"),
            ("error", "exit code 2: rsync: not found"),
            ("error", "cp: /data/in.csv: file not found"),
            ("ok", ""),
        ]
        assert all(b["duration"] is not None for b in batches[:2] + batches[-1:])
        with pytest.raises(hc.CheckNotFoundError):
            client.success_ping(uuid="no-such-monitor")
        with pytest.raises(hc.BadAPIRequestError):
            client.exit_code_ping(300, uuid=key)


@pytest.mark.system
def test_curl_and_shell_lines_that_check_for_ok(service: Service) -> None:
    """The shell habit of Healthchecks users: `curl ... | grep -qx OK`, also with HEAD."""
    assert shutil.which("curl"), "curl is needed (Debian package curl)"
    key = service.new_monitor()
    base = f"{service.url}/ping/{key}"
    lines = [
        f"curl -fsS -m 10 {base}/start | grep -qx OK",
        f"curl -fsS -m 10 --data-raw 'file not found' {base}/1 | grep -qx OK",
        f"curl -fsS -m 10 -I {base} | grep -qi '^content-type: text/plain'",
        f"curl -fsS -m 10 --data-raw 'step 2 of 3' {base}/log | grep -qx OK",
    ]
    for line in lines:
        done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, (line, done.stderr)
    bad = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/256"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.stdout == "400"
    assert [b["logstatus"] for b in service.batches(key)] == ["ok", "error"]
