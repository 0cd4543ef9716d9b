"""The status page over HTTP: overview, monitor page, badges, login; and its SVG builders."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from exporter.core.times import iso
from exporter.http import appkeys
from exporter.statuspage.badge import COLOURS, render_badge, text_width
from exporter.statuspage.charts import (
    ChartRun,
    counts_chart,
    duration_chart,
    nice_ceiling,
    short_span,
)
from tests.conftest import ADMIN, PUSH, READ, TOKENS, Clock, Factory, put_monitor

Client = TestClient[web.Request, web.Application]
MIN = 60.0
SCRIPT = "<script>window.__pwned = 1</script>"


class Rows(HTMLParser):
    """The overview's rows: data-key, the row's class and the text of each cell."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, str, list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and "data-key" in found:
            self.rows.append((found["data-key"] or "", found.get("class") or "", []))
        elif tag == "td" and self.rows:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1][2].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data + " ")


def rows_of(html: str) -> list[tuple[str, str, list[str]]]:
    parser = Rows()
    parser.feed(html)
    return parser.rows


async def _batches_of(client: Client, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (
        await (await client.get(f"/api/v1/monitors/{key}/batches")).json()
    )["items"]
    return items


def keys_of(html: str) -> list[str]:
    return [key for key, _, _ in rows_of(html)]


async def report(
    client: Client, key: str, logstatus: str = "ok", ago: float = 5 * MIN, **fields: Any
) -> dict[str, Any]:
    """A finished batch that started `ago` seconds before the app's clock and ran 42 s."""
    from exporter.core.times import iso
    from exporter.http import appkeys

    now = client.app[appkeys.CLOCK]()
    body = {
        "logstatus": logstatus,
        "starttime": iso(now - ago),
        "endtime": iso(now - ago + 42) if logstatus != "running" else None,
        **fields,
    }
    headers = {"Authorization": f"Bearer {PUSH}"} if client.app[appkeys.AUTH].enabled else {}
    response = await client.post(f"/api/v1/monitors/{key}/batches", json=body, headers=headers)
    assert response.status == 201, await response.text()
    batch: dict[str, Any] = (await response.json())["batch"]
    return batch


async def log_message(client: Client, key: str, **fields: Any) -> None:
    response = await client.post(f"/api/v1/monitors/{key}/logs", json=fields)
    assert response.status == 201, await response.text()


async def get_text(client: Client, path: str, status: int = 200, **kwargs: Any) -> str:
    response = await client.get(path, **kwargs)
    text = await response.text()
    assert response.status == status, text
    return text


@pytest.fixture
async def fleet(make_client: Factory) -> Client:
    """Six monitors in every state, on a fixed clock."""
    client = await make_client(Clock())
    await put_monitor(client, "crm", name="CRM sync", alert_interval=60)
    await put_monitor(client, "erp", name="ERP export")
    await put_monitor(client, "shop", name="Webshop orders")
    await put_monitor(client, "hr", name="Payroll import")
    await put_monitor(client, "ldap", name="LDAP users")
    await put_monitor(client, "hooks", name="Payment webhooks", type="message")
    await report(client, "crm", no_created=12, no_updated=345, no_deleted=6)
    await report(client, "erp", "error", errormsg="SAP said no")
    await report(client, "shop", "donewitherror", errormsg=SCRIPT)
    await report(client, "hr")
    await log_message(client, "hooks", logstatus="ok", message="charge.succeeded")
    return client


# -- overview --------------------------------------------------------------------------------


async def test_overview_shows_every_monitor_with_its_columns(fleet: Client) -> None:
    html = await get_text(fleet, "/")
    rows = {key: (cls, cells) for key, cls, cells in rows_of(html)}
    assert set(rows) == {"crm", "erp", "shop", "hr", "ldap", "hooks"}
    cls, cells = rows["crm"]
    status, monitor, alert, last_run, duration, created, updated, deleted, active = cells
    assert status == "OK" and "row-ok" in cls
    assert monitor == "CRM sync crm · batch"
    assert alert == ""
    assert last_run == "5 min ago 2026-11-30 00:48 UTC · ok"  # no schedule: no next run
    assert (duration, created, updated, deleted, active) == ("42 s", "12", "345", "6", "yes")
    _, erp = rows["erp"]
    assert erp[0] == "Error" and erp[2] == "Last batch failed (error): SAP said no"
    _, shop = rows["shop"]
    assert shop[2] == f"Last batch finished with errors (donewitherror): {SCRIPT}"
    _, ldap = rows["ldap"]
    assert ldap[0] == "Not calculated" and ldap[3] == "never"
    _, hooks = rows["hooks"]
    assert hooks[1] == "Payment webhooks hooks · message" and hooks[5:8] == ["", "", ""]
    assert '<a href="/monitors/crm">CRM sync</a>' in html


async def test_overview_lists_errors_first_then_notcalculated_then_ok_by_name(
    fleet: Client,
) -> None:
    html = await get_text(fleet, "/")
    assert keys_of(html) == ["erp", "shop", "ldap", "crm", "hooks", "hr"]
    assert "<title>(2) Status" in html


async def test_overview_running_batch_shows_running_time(fleet: Client) -> None:
    await report(fleet, "hr", "running", ago=90)
    cells = {k: c for k, _, c in rows_of(await get_text(fleet, "/"))}["hr"]
    assert cells[3].endswith("running") and cells[4] == "running for 1.5 min"
    assert cells[5] == "0"  # counts are the latest finished batch's


async def test_overview_filters_by_status_without_javascript(fleet: Client) -> None:
    html = await get_text(fleet, "/?status=error")
    assert keys_of(html) == ["erp", "shop"]
    assert re.search(r'href="/\?status=error" class="tab tab-error" aria-current="page"', html)
    assert keys_of(await get_text(fleet, "/?status=notcalculated")) == ["ldap"]
    assert keys_of(await get_text(fleet, "/?status=ok")) == ["crm", "hooks", "hr"]
    assert len(keys_of(await get_text(fleet, "/?status=bogus"))) == 6


async def test_overview_searches_name_and_key_case_insensitively(fleet: Client) -> None:
    assert keys_of(await get_text(fleet, "/?q=SYNC")) == ["crm"]
    assert keys_of(await get_text(fleet, "/?q=hook")) == ["hooks"]
    html = await get_text(fleet, "/?q=r&status=ok")
    assert keys_of(html) == ["crm", "hr"]
    assert 'name="status" value="ok"' in html  # the search form keeps the filter
    assert 'value="r"' in html
    empty = await get_text(fleet, "/?q=nothing-like-this")
    assert keys_of(empty) == [] and "No monitor matches" in empty


async def test_overview_tabs_count_the_matching_monitors(fleet: Client) -> None:
    html = await get_text(fleet, "/?q=o")  # CRM sync? no: ERP export, Webshop orders, ...
    counts = dict(re.findall(r'class="tab[^"]*"[^>]*>([^<]+?) <span class="count">(\d+)', html))
    matched = keys_of(html)
    assert int(counts["All"]) == len(matched)
    assert int(counts["Error"]) == sum(1 for k in matched if k in ("erp", "shop"))


async def test_fragment_has_the_live_part_only_and_keeps_filters(fleet: Client) -> None:
    page = await get_text(fleet, "/?status=error&q=shop")
    assert 'data-refresh-url="/ui/rows?status=error&amp;q=shop"' in page
    fragment = await get_text(fleet, "/ui/rows?status=error&q=shop")
    assert "<html" not in fragment and "<script" not in fragment
    assert keys_of(fragment) == ["shop"]
    assert 'data-errors="1"' in fragment


async def test_overview_reads_memory_only(fleet: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter.http import appkeys

    async def no_queries(*args: Any) -> None:
        raise AssertionError("the overview queried the database")

    monkeypatch.setattr(fleet.app[appkeys.STORE], "_all", no_queries)
    assert len(keys_of(await get_text(fleet, "/"))) == 6
    assert len(keys_of(await get_text(fleet, "/ui/rows"))) == 6
    assert (await fleet.get("/monitors/crm")).status == 500  # which the monitor page does


async def test_pushed_text_is_escaped_everywhere(fleet: Client) -> None:
    await put_monitor(fleet, "xss", name='<img src=x onerror="1">')
    await report(fleet, "xss", "error", errormsg=SCRIPT, logtext="<b>bold</b>")
    for path in ("/", "/ui/rows", "/monitors/shop", "/monitors/xss"):
        html = await get_text(fleet, path)
        assert "<script>window" not in html, path
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html, path
    html = await get_text(fleet, "/monitors/xss")
    assert "<img src=x" not in html and "&lt;img src=x onerror=&#34;1&#34;&gt;" in html
    assert "<b>bold</b>" not in html
    svg = await get_text(fleet, "/badge/xss.svg")
    assert "<img" not in svg and "&lt;img src=x" in svg


async def test_pages_carry_a_content_security_policy(fleet: Client) -> None:
    for path in ("/", "/ui/rows", "/monitors/crm"):
        response = await fleet.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = await get_text(fleet, "/")
    scripts = re.findall(r"<script[^>]*>", html)
    assert len(scripts) == 2
    for script, name in zip(scripts, ("local-time", "status"), strict=True):
        assert re.fullmatch(rf'<script src="/static/{name}\.js\?v=\w+" defer>', script)
    assert " style=" not in html and "<style" not in html


async def test_static_assets_are_served(fleet: Client) -> None:
    css = await fleet.get("/static/status.css")
    assert css.status == 200 and css.content_type == "text/css"
    js = await fleet.get("/static/status.js")
    assert js.status == 200 and "javascript" in js.content_type
    assert "visibilitychange" in await js.text()
    icon = await fleet.get("/static/favicon.svg")
    assert icon.status == 200


async def test_empty_overview_says_how_to_start(make_client: Factory) -> None:
    client = await make_client()
    html = await get_text(client, "/")
    assert "No monitors yet" in html and keys_of(html) == []


# -- monitor page ------------------------------------------------------------------------------


async def test_monitor_page_shows_settings_status_runs_logs_and_transitions(
    fleet: Client,
) -> None:
    await put_monitor(fleet, "crm", name="CRM sync", alert_interval=60, alert_no_creates_deceeds=20)
    older = await report(fleet, "crm", ago=65 * MIN, no_created=30, integrationid="run-41")
    batch = await report(
        fleet, "crm", "error", ago=2 * MIN, no_created=3, errormsg="HTTP 502 from CRM"
    )
    response = await fleet.post(
        "/api/v1/monitors/crm/logs",
        json={"batch_id": batch["id"], "logstatus": "error", "message": "account 17 rejected"},
    )
    assert response.status == 201
    html = await get_text(fleet, "/monitors/crm")
    assert "<h1>CRM sync" in html and '<span class="pill error big">Error</span>' in html
    for setting in ("Alert interval</dt><dd>60 min", "Minimum created</dt><dd>20"):
        assert setting in html
    assert "<li>Last batch failed (error): HTTP 502 from CRM</li>" in html
    assert "<li>Created 3 objects, below threshold 20</li>" in html
    assert f'id="batch-{batch["id"]}"' in html and f'id="batch-{older["id"]}"' in html
    assert "run-41" in html and "account 17 rejected" in html
    assert "<details open><summary>1 log</summary>" in html  # a failed batch's logs are open
    assert html.count('<rect class="bar ') == 3  # the duration chart, one bar per batch
    assert '<rect class="seg created"' in html
    assert re.search(r"Not calculated</span> → <span class=\"pill ok\">OK", html)
    assert re.search(r"OK</span> → <span class=\"pill error\">Error", html)
    assert "/badge/crm.svg" in html and "[![CRM sync](http://127.0.0.1:" in html


async def test_a_scheduled_monitor_shows_its_schedule_in_words_and_its_next_run(
    make_client: Factory,
) -> None:
    clock = Clock(datetime(2026, 12, 2, 13, 0, tzinfo=UTC).timestamp())  # 14:00 in Stockholm
    client = await make_client(clock)
    nightly = {"schedule": "30 2 * * *", "timezone": "Europe/Stockholm", "max_runtime": 120}
    await put_monitor(client, "backup", name="Nightly backup", **nightly)
    html = await get_text(client, "/monitors/backup")
    for setting in (
        "Schedule</dt><dd>at 02:30 every day, Europe/Stockholm",
        "Cron expression</dt><dd>30 2 * * *",
        "Grace</dt><dd>10 min",
        "Max runtime</dt><dd>2 h",
    ):
        assert setting in html
    assert "Alert interval</dt>" not in html
    # Due at 02:30 CET, 01:30 UTC: relative, and in the monitor's zone until the script puts
    # it in the viewer's (data-local-time).
    due = "2026-12-03T01:30:00.000Z"
    assert f'Due <time datetime="{due}">in 12 h 30 min</time>' in html
    assert f'data-local-time="{due}">02:30 on 3 Dec (Europe/Stockholm)</span>' in html
    assert 'data-local-time="2026-12-03T01:40:00.000Z">2026-12-03 01:40 UTC</span>' in html
    [(_, _, cells)] = rows_of(await get_text(client, "/"))
    assert cells[3] == "never next due in 12 h 30 min · 02:30 on 3 Dec (Europe/Stockholm)"

    clock.now = datetime(2026, 12, 3, 1, 41, tzinfo=UTC).timestamp()  # past 02:40 in Stockholm
    await client.post("/api/v1/evaluate", json={})
    html = await get_text(client, "/monitors/backup")
    assert '<span class="pill error">missed</span> due <time' in html
    assert "<li>No run since the one due at 02:30 on 3 Dec (Europe/Stockholm); never reported" in (
        html
    )
    [(_, _, cells)] = rows_of(await get_text(client, "/"))
    assert cells[3] == "never next missed , due 11 min ago · 02:30 on 3 Dec (Europe/Stockholm)"


async def test_a_batch_running_past_max_runtime_is_flagged(make_client: Factory) -> None:
    client = await make_client(Clock())
    await put_monitor(client, "etl", name="ETL", alert_interval=60, max_runtime=240)
    await report(client, "etl", "running", ago=90 * MIN)  # past the interval, not max_runtime
    html = await get_text(client, "/monitors/etl")
    assert "No finish reported" not in html and "Max runtime</dt><dd>4 h" in html
    await report(client, "etl", "running", ago=5 * 60 * MIN)
    html = await get_text(client, "/monitors/etl")
    assert "No finish reported after 5 h: longer than max_runtime of 4 h." in html


async def test_a_start_whose_finish_came_with_another_rid_shows_running_with_a_warning(
    fleet: Client,
) -> None:
    clock = fleet.app[appkeys.CLOCK]
    assert isinstance(clock, Clock)
    await put_monitor(fleet, "etl", name="Nightly ETL")
    assert (await fleet.get("/ping/etl/start?rid=a")).status == 200
    clock.advance(60)
    assert (await fleet.get("/ping/etl?rid=b")).status == 200  # the finish, with another rid
    clock.advance(3 * 3600 - 60)
    html = await get_text(fleet, "/monitors/etl")
    [open_batch] = [b for b in await _batches_of(fleet, "etl") if b["integrationid"] == "a"]
    row = html.split(f'id="batch-{open_batch["id"]}"', 1)[1].split("</tbody>", 1)[0]
    assert '<td class="num">running for 3 h</td>' in row
    assert '<div class="warning" role="note">⚠ No finish reported after 3 h: a later run' in (row)
    assert '<rect class="bar running open"' in html and "running for 3 h" in html


async def test_a_start_running_past_the_alert_interval_gets_a_warning(fleet: Client) -> None:
    clock = fleet.app[appkeys.CLOCK]
    assert isinstance(clock, Clock)
    await put_monitor(fleet, "sync", name="Sync", alert_interval=60)
    await fleet.get("/ping/sync/start")
    clock.advance(30 * MIN)
    assert 'class="warning"' not in await get_text(fleet, "/monitors/sync")
    clock.advance(150 * MIN)
    html = await get_text(fleet, "/monitors/sync")
    assert "running for 3 h" in html
    assert "No finish reported after 3 h: longer than the alert interval of 60 min." in html


async def test_a_text_given_as_logtext_and_errormsg_shows_once(fleet: Client) -> None:
    await put_monitor(fleet, "bak", name="Backup")
    batch = await report(fleet, "bak", "error", errormsg="disk full", logtext="disk full")
    await fleet.post(
        "/api/v1/monitors/bak/logs",
        json={
            "batch_id": batch["id"],
            "logstatus": "error",
            "logtext": "no space",
            "errormsg": "no space",
        },
    )
    html = await get_text(fleet, "/monitors/bak")
    row = html.split(f'id="batch-{batch["id"]}"', 1)[1].split("</tbody>", 1)[0]
    assert row.count(">disk full<") == 1 and row.count("no space") == 1


async def test_overview_and_monitor_page_agree_on_the_last_evaluation(fleet: Client) -> None:
    clock = fleet.app[appkeys.CLOCK]
    assert isinstance(clock, Clock)
    assert (await fleet.post("/api/v1/evaluate", json={})).status == 200  # a pass: every monitor
    passed = clock.now
    clock.advance(12 * MIN)
    await report(fleet, "erp", ago=MIN)  # evaluated right after the report

    def evaluated(html: str, label: str) -> str:
        found = re.search(label + r'.*?<time datetime="([^"]+)"', html, re.DOTALL)
        assert found is not None, label
        return found.group(1)

    overview = evaluated(await get_text(fleet, "/"), "Evaluated ")
    erp_page = evaluated(await get_text(fleet, "/monitors/erp"), "Last evaluated</dt>")
    crm_page = evaluated(await get_text(fleet, "/monitors/crm"), "Last evaluated</dt>")
    assert overview == erp_page == iso(clock.now)
    assert crm_page == iso(passed)


async def test_message_monitor_page_shows_recent_logs(fleet: Client) -> None:
    await log_message(fleet, "hooks", logstatus="error", errormsg="signature mismatch")
    html = await get_text(fleet, "/monitors/hooks")
    assert "Recent logs" in html and "Recent batches" not in html
    assert "charge.succeeded" in html and "signature mismatch" in html
    assert 'aria-label="Status of the last 2 logs"' in html


async def test_batch_monitor_page_shows_logs_outside_batches(fleet: Client) -> None:
    await put_monitor(fleet, "crm", name="CRM sync")
    html = await get_text(fleet, "/monitors/crm")
    assert "Logs outside batches" not in html
    response = await fleet.post(
        "/api/v1/monitors/crm/logs", json={"logstatus": "error", "message": "token expired"}
    )
    assert response.status == 201
    html = await get_text(fleet, "/monitors/crm")
    assert "Logs outside batches" in html and "token expired" in html


async def test_unknown_monitor_page_is_an_html_404(fleet: Client) -> None:
    response = await fleet.get("/monitors/nope")
    assert response.status == 404 and response.content_type == "text/html"
    assert "No monitor with integration_key" in await response.text()


# -- badges ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message", "colour"),
    [
        ("crm", "ok", "ok"),
        ("erp", "error", "error"),
        ("ldap", "not calculated", "notcalculated"),
    ],
)
async def test_badge_shows_name_and_status_in_its_colour(
    fleet: Client, key: str, message: str, colour: str
) -> None:
    response = await fleet.get(f"/badge/{key}.svg")
    assert response.status == 200
    assert response.content_type == "image/svg+xml"
    assert response.headers["Cache-Control"] == "no-cache"
    svg = await response.text()
    assert f'fill="{COLOURS[colour]}"' in svg
    assert f">{message}</text>" in svg
    assert svg.startswith("<svg xmlns=")


async def test_badge_label_is_the_monitor_name(fleet: Client) -> None:
    svg = await get_text(fleet, "/badge/crm.svg")
    assert 'aria-label="CRM sync: ok"' in svg


async def test_badge_of_inactive_monitor(fleet: Client) -> None:
    await put_monitor(fleet, "crm", name="CRM sync", active=False)
    svg = await get_text(fleet, "/badge/crm.svg")
    assert ">inactive</text>" in svg and COLOURS["inactive"] in svg


async def test_badge_of_unknown_key_is_404_as_badge_or_json(fleet: Client) -> None:
    response = await fleet.get("/badge/nope.svg")
    assert response.status == 404 and response.content_type == "image/svg+xml"
    assert ">not found</text>" in await response.text()
    response = await fleet.get("/badge/nope.svg", headers={"Accept": "application/json"})
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "monitor_not_found"


def test_badge_width_follows_the_text() -> None:
    short, long = render_badge("a", "ok", "#000"), render_badge("a much longer label", "ok", "#0")
    width = re.compile(r'width="(\d+)"')
    assert int(width.findall(long)[0]) - int(width.findall(short)[0]) == pytest.approx(
        text_width("a much longer label") - text_width("a"), abs=1
    )


# -- charts ------------------------------------------------------------------------------------


def _run(
    duration: float | None, severity: str = "ok", created: int = 0, running_for: float = 0.0
) -> ChartRun:
    return ChartRun(
        "2026-11-30 10:00 UTC", severity, severity, duration, created, 2, 1, running_for
    )


def test_duration_chart_scales_bars_to_a_round_maximum() -> None:
    svg = str(duration_chart([_run(30), _run(60, "error"), _run(None, "running", running_for=20)]))
    heights = [float(h) for h in re.findall(r'class="bar [\w ]+"[^>]*height="([\d.]+)"', svg)]
    assert heights == [pytest.approx(68.0), pytest.approx(136.0), pytest.approx(136 / 3, 0.01)]
    assert ">1 min</text>" in svg and 'class="bar running open"' in svg
    assert "running for 20 s, not finished" in svg


def test_a_run_left_running_is_a_full_open_bar_not_a_short_one() -> None:
    """A start whose finish never came, 3 h ago, among one-minute runs."""
    svg = str(duration_chart([_run(45), _run(60), _run(None, "running", running_for=3 * 3600)]))
    bars = re.findall(r'<rect class="(bar [\w ]+)"[^>]*height="([\d.]+)"', svg)
    assert [(c, float(h)) for c, h in bars] == [
        ("bar ok", pytest.approx(102.0)),
        ("bar ok", pytest.approx(136.0)),
        ("bar running open", pytest.approx(136.0)),  # the top of the chart, and no further
    ]
    assert ">1 min</text>" in svg  # the axis follows the finished runs
    assert "running for 3 h, not finished" in svg


def test_counts_chart_stacks_created_updated_deleted() -> None:
    svg = str(counts_chart([_run(1, created=7), _run(1, created=0)]))
    assert ">10</text>" in svg  # nice ceiling of 10 objects
    assert svg.count('class="seg created"') == 1 and svg.count('class="seg deleted"') == 2


def test_charts_escape_their_labels() -> None:
    run = ChartRun("<t>", "ok", "<s>", 1.0, 0, 0, 0)
    for svg in (duration_chart([run]), counts_chart([run])):
        assert "<t>" not in str(svg) and "&lt;t&gt;" in str(svg)


def test_empty_charts_say_so() -> None:
    assert "No runs yet" in str(duration_chart([]))


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (4100, 5000)]
)
def test_nice_ceiling(value: float, ceiling: float) -> None:
    assert nice_ceiling(value) == ceiling


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0.4 s"), (42, "42 s"), (90, "1.5 min"), (3000, "50 min")]
)
def test_short_span(seconds: float, text: str) -> None:
    assert short_span(seconds) == text


# -- auth --------------------------------------------------------------------------------------


@pytest.fixture
async def secured(make_client: Factory) -> Client:
    client = await make_client(Clock(), **TOKENS)
    await put_monitor(client, "crm", name="CRM sync")
    return client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_pages_without_credentials_redirect_to_login(secured: Client) -> None:
    for path in ("/", "/monitors/crm", "/?status=error&q=x"):
        response = await secured.get(path, allow_redirects=False)
        assert response.status == 303, path
        location = response.headers["Location"]
        assert location.startswith("/login?next=")
    response = await secured.get("/?status=error&q=x", allow_redirects=False)
    assert response.headers["Location"] == "/login?next=%2F%3Fstatus%3Derror%26q%3Dx"


async def test_fragment_and_badge_without_credentials_are_401(secured: Client) -> None:
    response = await secured.get("/ui/rows")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"
    badge = await secured.get("/badge/crm.svg")
    assert badge.status == 401 and ">sign in required</text>" in await badge.text()
    assert "CRM sync" not in await badge.text()  # nothing of the monitor leaks


async def test_bearer_token_with_read_role_sees_everything(secured: Client) -> None:
    for path in ("/", "/ui/rows", "/monitors/crm", "/badge/crm.svg"):
        response = await secured.get(path, headers=bearer(READ))
        assert response.status == 200, path


async def test_bearer_token_without_read_role_is_403(secured: Client) -> None:
    for token in (PUSH, ADMIN):
        response = await secured.get("/", headers=bearer(token))
        assert response.status == 403 and "lacks the read role" in await response.text()
        assert (await secured.get("/badge/crm.svg", headers=bearer(token))).status == 403
        assert (await secured.get("/ui/rows", headers=bearer(token))).status == 403


async def test_unknown_bearer_token_is_401_not_a_redirect(secured: Client) -> None:
    response = await secured.get("/", headers=bearer("x" * 20), allow_redirects=False)
    assert response.status == 401 and response.headers["WWW-Authenticate"] == "Bearer"


async def test_cookie_login_then_logout(secured: Client) -> None:
    form = await get_text(secured, "/login?next=/monitors/crm")
    assert 'name="next" value="/monitors/crm"' in form
    response = await secured.post(
        "/login", data={"token": READ, "next": "/monitors/crm"}, allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == "/monitors/crm"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("im_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert READ not in cookie  # a random session id, never the token
    for path in ("/", "/ui/rows", "/monitors/crm", "/badge/crm.svg"):
        assert (await secured.get(path, allow_redirects=False)).status == 200, path
    html = await get_text(secured, "/")
    assert 'action="/logout"' in html
    # the cookie is no key to the JSON API: that takes bearer tokens only
    assert (await secured.get("/api/v1/monitors")).status == 401
    response = await secured.post("/logout", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"
    assert (await secured.get("/", allow_redirects=False)).status == 303


async def test_login_refuses_wrong_tokens_and_roles(secured: Client) -> None:
    response = await secured.post("/login", data={"token": "nope" * 5}, allow_redirects=False)
    assert response.status == 401 and "That token is not valid." in await response.text()
    assert "Set-Cookie" not in response.headers
    response = await secured.post("/login", data={"token": PUSH}, allow_redirects=False)
    assert response.status == 403 and "lacks the read role" in await response.text()
    assert "Set-Cookie" not in response.headers


async def test_login_refuses_cross_site_posts_and_foreign_redirects(secured: Client) -> None:
    response = await secured.post(
        "/login",
        data={"token": READ},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert response.status == 403 and "Set-Cookie" not in response.headers
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = await secured.post(
            "/login", data={"token": READ, "next": target}, allow_redirects=False
        )
        assert response.headers["Location"] == "/", target


async def test_without_tokens_everything_is_open_and_login_goes_home(fleet: Client) -> None:
    assert 'action="/logout"' not in await get_text(fleet, "/")
    response = await fleet.get("/login", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/"
