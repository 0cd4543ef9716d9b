"""The status page: every monitor at a glance, a page per monitor, badges, and a login form.

Server-rendered HTML (Jinja2, autoescaped). The overview reads the in-memory state only; a
monitor's page reads its recent history from the store. A small script refreshes the overview's
rows every 15 seconds; everything else works with JavaScript off.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web

from exporter.core.errors import DomainError
from exporter.core.evaluation import format_span, severity_of
from exporter.core.records import Batch, Correction, Log, MonitorSettings, Run, Transition
from exporter.core.schedules import describe, expected_run, schedule_of
from exporter.core.statuses import Severity
from exporter.core.times import format_time, iso
from exporter.http import appkeys
from exporter.http.auth import READ, Caller
from exporter.http.errors import ApiError, api_error
from exporter.http.handling import (
    CALLER,
    SESSION_COOKIE,
    Handler,
    caller_of,
    check_roles,
    json_response,
    query_int,
    visible_monitor,
)
from exporter.http.sessions import MAX_AGE_SECONDS as SESSION_MAX_AGE
from exporter.service.state import MonitorState, State
from exporter.statuspage.badge import COLOURS, badge_for, render_badge
from exporter.statuspage.charts import (
    ChartRun,
    counts_chart,
    duration_chart,
    short_span,
    status_strip,
)

HERE = Path(__file__).parent
LEGACY_COOKIE = "im_token"  # held the token itself, before sessions: removed at sign-in
STATUS_ORDER = {"error": 0, "notcalculated": 1, "ok": 2}
STATUS_LABELS = {"error": "Error", "notcalculated": "Not calculated", "ok": "OK"}
REFRESH_SECONDS = 15
CHART_RUNS = 50
TABLE_RUNS = 20
LOGS_PER_BATCH = 50
TRANSITIONS = 20
QUERY_LIMIT = 100
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HTML_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# -- view models ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stamp:
    """A time as the page shows it: relative to the page's `now`, absolute, and ISO."""

    iso: str
    relative: str
    absolute: str


def stamp(ts: float | None, now: float) -> Stamp | None:
    if ts is None:
        return None
    delta = now - ts
    if abs(delta) < 5:
        relative = "just now"
    elif delta > 0:
        relative = f"{format_span(delta)} ago"
    else:
        relative = f"in {format_span(-delta)}"
    return Stamp(iso(ts) or "", relative, format_time(ts))


EMPTY = Stamp("", "", "")


@dataclass(frozen=True, slots=True)
class Row:
    """One monitor in the overview."""

    key: str
    name: str
    type: str
    active: bool
    status: str
    status_label: str
    alerttext: str
    last_run: Stamp | None
    last_status: str
    last_severity: str
    duration: str
    created: str
    updated: str
    deleted: str
    next_run: NextRun | None = None


@dataclass(frozen=True, slots=True)
class NextRun:
    """The run a schedule expects next, as people read it: when it is due (relative, and in
    the monitor's zone until the page's script puts it in the viewer's), and its deadline."""

    due: Stamp
    deadline: Stamp
    zoned: str  # 02:30 on 3 Dec (Europe/Stockholm)
    schedule: str  # at 02:30 every day, Europe/Stockholm
    missed: bool


def next_run(
    settings: MonitorSettings, created_at: float, latest: Run | None, now: float
) -> NextRun | None:
    expected = expected_run(settings, created_at, latest)
    if expected is None:
        return None
    zoned = schedule_of(settings.schedule, settings.timezone).local(expected.start)
    return NextRun(
        stamp(expected.start, now) or EMPTY,
        stamp(expected.deadline, now) or EMPTY,
        f"{zoned} ({settings.timezone})",
        describe(settings) or "",
        now > expected.deadline,
    )


def overview_row(ms: MonitorState, now: float, severities: Mapping[str, Severity]) -> Row:
    m, latest, finished = ms.monitor, ms.latest, ms.latest_finished
    duration = ""
    if latest is not None:
        if severity_of(latest.logstatus, severities) == "running":
            duration = running_for(now - latest.starttime)
        elif latest.duration is not None:
            duration = short_span(latest.duration)
    counts = ("", "", "")
    if m.settings.type == "batch" and finished is not None and finished.kind == "batch":
        counts = (
            f"{finished.no_created:,}",
            f"{finished.no_updated:,}",
            f"{finished.no_deleted:,}",
        )
    return Row(
        key=m.integration_key,
        name=m.settings.name,
        type=m.settings.type,
        active=m.settings.active,
        status=m.alertstatus,
        status_label=STATUS_LABELS[m.alertstatus],
        alerttext=m.alerttext,
        last_run=stamp(latest.starttime, now) if latest else None,
        last_status=latest.logstatus if latest else "",
        last_severity=severity_of(latest.logstatus, severities) if latest else "",
        duration=duration,
        created=counts[0],
        updated=counts[1],
        deleted=counts[2],
        next_run=next_run(m.settings, m.created_at, latest, now),
    )


@dataclass(frozen=True, slots=True)
class Overview:
    rows: list[Row]
    counts: dict[str, int]  # per alert status, of the monitors matching the search
    matched: int
    total: int
    evaluated: float | None  # the latest evaluation of any monitor, as its page shows it


def running_for(seconds: float) -> str:
    return f"running for {short_span(max(0.0, seconds))}"


def build_overview(
    state: State,
    now: float,
    status: str | None,
    query: str,
    covers: Callable[[str], bool] = lambda key: True,
) -> Overview:
    """The monitors matching `query` (name or key) and `status`, errors first, then by name;
    only those `covers` lets the viewer see."""
    needle = query.casefold()
    visible = [ms for key, ms in state.monitors.items() if covers(key)]
    matched = [
        ms
        for ms in visible
        if needle in ms.monitor.settings.name.casefold()
        or needle in ms.monitor.integration_key.casefold()
    ]
    counts = dict.fromkeys(STATUS_ORDER, 0)
    for ms in matched:
        counts[ms.monitor.alertstatus] += 1
    if status is not None:
        matched = [ms for ms in matched if ms.monitor.alertstatus == status]
    matched.sort(
        key=lambda ms: (
            STATUS_ORDER[ms.monitor.alertstatus],
            ms.monitor.settings.name.casefold(),
            ms.monitor.integration_key,
        )
    )
    rows = [overview_row(ms, now, state.severities) for ms in matched]
    # Each monitor's own evaluation time (alert_timestamp, after a pass or after a report) is
    # what its page shows; the overview shows the latest of them, never another clock.
    evaluated = max(
        (t for ms in visible if (t := ms.monitor.alert_timestamp) is not None),
        default=None,
    )
    return Overview(rows, counts, sum(counts.values()), len(visible), evaluated)


@dataclass(frozen=True, slots=True)
class LogView:
    id: int
    at: Stamp
    status: str
    severity: str
    integrationid: str
    logtext: str
    errormsg: str
    message: str


@dataclass(frozen=True, slots=True)
class BatchView:
    id: int
    status: str
    severity: str
    start: Stamp
    end: Stamp | None
    duration: str
    created: int
    updated: int
    deleted: int
    integrationid: str
    logtext: str
    errormsg: str
    logs: list[LogView]
    warning: str = ""
    corrections: list[CorrectionView] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CorrectionView:
    """A finished batch reported again: when, by which token, what changed."""

    at: Stamp
    token: str
    changes: str


@dataclass(frozen=True, slots=True)
class TransitionView:
    at: Stamp
    old: str
    old_label: str
    new: str
    new_label: str
    reason: str


def _once(logtext: str, errormsg: str) -> str:
    """The logtext to show beside the errormsg: none when it says the same thing again."""
    return "" if logtext.strip() == errormsg.strip() else logtext


def log_view(entry: Log, now: float, severities: Mapping[str, Severity]) -> LogView:
    return LogView(
        entry.id,
        stamp(entry.created_at, now) or EMPTY,
        entry.logstatus,
        severity_of(entry.logstatus, severities),
        entry.integrationid,
        _once(entry.logtext, entry.errormsg),
        entry.errormsg,
        entry.message,
    )


def left_running(
    batch: Batch,
    now: float,
    later_finished: bool,
    limit: tuple[str, float],
    longest: float | None,
) -> str:
    """Why a batch still running looks left behind (its finish never came), or ''.

    1. A later run has finished: a finish ping with another rid, or none, leaves a run open.
    2. It has run longer than the monitor's limit: `(what, seconds)`, its max_runtime where
       set, else its alert interval.
    3. It has run more than twice as long as the longest recent finished run.
    """
    elapsed = now - batch.starttime
    what, seconds = limit
    if later_finished:
        cause = "a later run has finished; its finish never came, or came with another rid"
    elif 0 < seconds < elapsed:
        cause = f"longer than {what} of {format_span(seconds)}"
    elif longest is not None and elapsed > 2 * max(longest, 1.0):
        cause = f"more than twice the longest recent run ({short_span(longest)})"
    else:
        return ""
    return f"No finish reported after {format_span(elapsed)}: {cause}."


def batch_view(
    batch: Batch,
    logs: list[Log],
    now: float,
    severities: Mapping[str, Severity],
    warning: str = "",
    corrections: Sequence[Correction] = (),
) -> BatchView:
    severity = severity_of(batch.logstatus, severities)
    if batch.duration is not None:
        duration = short_span(batch.duration)
    elif severity == "running":
        duration = running_for(now - batch.starttime)
    else:
        duration = ""
    return BatchView(
        batch.id,
        batch.logstatus,
        severity,
        stamp(batch.starttime, now) or EMPTY,
        stamp(batch.endtime, now),
        duration,
        batch.no_created,
        batch.no_updated,
        batch.no_deleted,
        batch.integrationid,
        _once(batch.logtext, batch.errormsg),
        batch.errormsg,
        [log_view(x, now, severities) for x in logs],
        warning if severity == "running" else "",
        [CorrectionView(stamp(c.at, now) or EMPTY, c.token, c.changes) for c in corrections],
    )


def transition_view(t: Transition, now: float) -> TransitionView:
    return TransitionView(
        stamp(t.at, now) or EMPTY,
        t.old_status,
        STATUS_LABELS[t.old_status],
        t.new_status,
        STATUS_LABELS[t.new_status],
        t.reason,
    )


def _off_or(value: int, unit: str = "") -> str:
    return "off" if value <= 0 else f"{value:,}{unit}"


def run_limit(settings: MonitorSettings) -> tuple[str, float]:
    """How long a batch may run, in words and seconds: max_runtime, else the interval."""
    if settings.max_runtime > 0:
        return "max_runtime", settings.max_runtime * 60.0
    return "the alert interval", settings.alert_interval * 60.0


def settings_view(ms: MonitorState, now: float) -> list[tuple[str, str, Stamp | None]]:
    """The monitor's settings and times as (label, text, time) rows of a definition list."""
    m, s = ms.monitor, ms.monitor.settings
    rows: list[tuple[str, str, Stamp | None]] = [
        ("Type", s.type, None),
        ("Active", "yes" if s.active else "no (not evaluated)", None),
    ]
    if s.schedule:
        rows += [
            ("Schedule", describe(s) or "", None),
            ("Cron expression", s.schedule, None),
            ("Grace", format_span(s.grace * 60) if s.grace > 0 else "none", None),
        ]
    else:
        interval = "off" if s.alert_interval <= 0 else format_span(s.alert_interval * 60)
        rows.append(("Alert interval", interval, None))
    max_runtime = "off" if s.max_runtime <= 0 else format_span(s.max_runtime * 60)
    rows.append(("Max runtime", max_runtime, None))
    if s.type == "batch":
        rows += [
            ("Minimum created", _off_or(s.alert_no_creates_deceeds), None),
            ("Minimum updated", _off_or(s.alert_no_updates_deceeds), None),
            ("Minimum deleted", _off_or(s.alert_no_deletes_deceeds), None),
        ]
    rows += [
        ("Created", "", stamp(m.created_at, now)),
        ("Settings changed", "", stamp(m.updated_at, now)),
    ]
    return rows


@dataclass(frozen=True, slots=True)
class LatestRun:
    """The monitor's latest run as its status card sums it up."""

    status: str
    severity: str
    start: Stamp
    duration: str
    counts: str


def latest_run(
    ms: MonitorState, now: float, severities: Mapping[str, Severity]
) -> LatestRun | None:
    run = ms.latest
    if run is None:
        return None
    row = overview_row(ms, now, severities)
    counts = ""
    if run.kind == "batch" and severity_of(run.logstatus, severities) != "running":
        counts = (
            f"{run.no_created:,} created, {run.no_updated:,} updated, {run.no_deleted:,} deleted"
        )
    return LatestRun(
        run.logstatus,
        row.last_severity,
        stamp(run.starttime, now) or EMPTY,
        row.duration,
        counts,
    )


def chart_runs(
    runs: Sequence[Batch | Log], severities: Mapping[str, Severity], now: float
) -> list[ChartRun]:
    """Oldest first, as charts read left to right."""
    out = []
    for run in reversed(runs):
        if isinstance(run, Batch):
            out.append(
                ChartRun(
                    format_time(run.starttime),
                    severity_of(run.logstatus, severities),
                    run.logstatus,
                    run.duration,
                    run.no_created,
                    run.no_updated,
                    run.no_deleted,
                    None if run.duration is not None else max(0.0, now - run.starttime),
                )
            )
        else:
            out.append(
                ChartRun(
                    format_time(run.created_at),
                    severity_of(run.logstatus, severities),
                    run.logstatus,
                    None,
                    0,
                    0,
                    0,
                )
            )
    return out


# -- access -----------------------------------------------------------------------------------


async def authorize(request: web.Request) -> Caller:
    """Let the request through with a read token: a bearer header, else the sign-in session."""
    return await check_roles(request, READ, allow_session=True)


def is_https(request: web.Request) -> bool:
    """Whether the browser spoke HTTPS: directly, through a trusted proxy, or per base_url."""
    server = request.app[appkeys.CONFIG].server
    if request.secure or server.base_url.startswith("https:"):
        return True
    proto = request.headers.get("X-Forwarded-Proto", "")
    return proto.split(",")[0].strip().lower() == "https" and trusted_proxy(
        request.remote, server.trusted_proxies
    )


def trusted_proxy(remote: str | None, proxies: Sequence[str]) -> bool:
    """Whether the peer is one of the configured proxies (addresses or networks)."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(p, strict=False) for p in proxies)


def safe_next(target: str | None) -> str:
    """A redirect target on this site only: a path, never //host or a scheme."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 0x20 for c in target)
    ):
        return "/"
    return target


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


def _cross_site(request: web.Request) -> web.Response | None:
    """The sign-in and sign-out forms take posts from this site's own pages only."""
    if _same_origin(request):
        return None
    return error_page(request, ApiError("forbidden", "Cross-site form post refused"))


# -- rendering --------------------------------------------------------------------------------


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    auth, config = request.app[appkeys.AUTH], request.app[appkeys.CONFIG]
    caller = request.get(CALLER)
    reader = caller is not None and bool(READ & caller.roles)
    context.setdefault("show_logout", auth.enabled and SESSION_COOKIE in request.cookies)
    # The nav links only where they will answer: a signed-in session works on them too.
    context.setdefault("show_api", not auth.enabled or reader)
    context.setdefault(
        "show_metrics",
        not auth.enabled
        or not config.metrics.require_auth
        or (reader and caller is not None and not caller.scoped),
    )
    text = aiohttp_jinja2.render_string(template, request, context)
    response = web.Response(text=text, status=status, content_type="text/html")
    response.headers.update(HTML_HEADERS)
    response.enable_compression()
    return response


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def error_page(request: web.Request, error: ApiError) -> web.Response:
    titles = {401: "Sign in required", 403: "Forbidden", 404: "Not found"}
    response = render(
        request,
        "error.html",
        {"title": titles.get(error.status, "Error"), "message": error.message},
        error.status,
    )
    if error.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def page(handler: Handler) -> Handler:
    """Serve an HTML page: errors become HTML pages; no credentials at all, the login form."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (ApiError, DomainError) as raised:
            exc = api_error(raised)
            if exc.status == 401 and "Authorization" not in request.headers:
                return _redirect("/login?" + urlencode({"next": request.path_qs}))
            return error_page(request, exc)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def _filters(request: web.Request) -> tuple[str | None, str]:
    status = request.query.get("status")
    if status not in STATUS_ORDER:
        status = None
    return status, request.query.get("q", "").strip()[:QUERY_LIMIT]


def _href(path: str, **params: str | int | None) -> str:
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{path}?{query}" if query else path


def _overview_context(request: web.Request) -> dict[str, Any]:
    status, query = _filters(request)
    state, now = request.app[appkeys.STATE], request.app[appkeys.CLOCK]()
    overview = build_overview(state, now, status, query, caller_of(request).covers)
    refresh = query_int(request, "refresh", REFRESH_SECONDS, 2, 3600)
    tabs = [
        ("All", None, overview.matched),
        *((STATUS_LABELS[s], s, overview.counts[s]) for s in STATUS_ORDER),
    ]
    return {
        "overview": overview,
        "status": status,
        "q": query,
        "tabs": [
            (label, value, count, _href("/", status=value, q=query), value == status)
            for label, value, count in tabs
        ],
        "refresh_seconds": refresh,
        "refresh_url": _href("/ui/rows", status=status, q=query),
        "rendered": stamp(now, now),
        "evaluated": stamp(overview.evaluated, now),
    }


# -- handlers ---------------------------------------------------------------------------------


@page
async def overview(request: web.Request) -> web.StreamResponse:
    """Every monitor, errors first; ?status= and ?q= filter."""
    await authorize(request)
    return render(request, "overview.html", _overview_context(request))


async def overview_fragment(request: web.Request) -> web.StreamResponse:
    """The overview's live part alone, for the refresh script."""
    await authorize(request)
    return render(request, "_live.html", _overview_context(request))


@page
async def monitor_page(request: web.Request) -> web.StreamResponse:
    """One monitor: settings, status and reasons, charts, recent runs, transitions."""
    await authorize(request)
    key = request.match_info["key"]
    state, monitors = request.app[appkeys.STATE], request.app[appkeys.MONITORS]
    ms = visible_monitor(request, key)
    now = request.app[appkeys.CLOCK]()
    m, sev = ms.monitor, state.severities
    batches: list[BatchView] = []
    logs: list[LogView] = []
    if m.settings.type == "batch":
        recent = await monitors.batches(ms, CHART_RUNS)
        durations = [b.duration for b in recent if b.duration is not None]
        longest = max(durations) if durations else None
        limit = run_limit(m.settings)
        corrected: dict[int, list[Correction]] = {}
        for c in await monitors.corrections([b.id for b in recent[:TABLE_RUNS]]):
            corrected.setdefault(c.batch_id, []).append(c)
        later_finished = False  # newest first: has a run after this one finished?
        for b in recent[:TABLE_RUNS]:
            batch_logs = await monitors.batch_logs(b.id, LOGS_PER_BATCH)
            warning = left_running(b, now, later_finished, limit, longest)
            batches.append(batch_view(b, batch_logs, now, sev, warning, corrected.get(b.id, ())))
            later_finished = later_finished or b.endtime is not None
        loose = await monitors.logs(ms, TABLE_RUNS, outside_batches=True)
        logs = [log_view(x, now, sev) for x in loose]
        runs = chart_runs(recent, sev, now)
        charts = [
            ("Run duration", duration_chart(runs), ()),
            ("Objects per run", counts_chart(runs), ("created", "updated", "deleted")),
        ]
    else:
        recent_logs = await monitors.logs(ms, CHART_RUNS)
        logs = [log_view(x, now, sev) for x in recent_logs[:TABLE_RUNS]]
        charts = [("Recent logs", status_strip(chart_runs(recent_logs, sev, now)), ())]
    transitions = await monitors.transitions(ms, TRANSITIONS)
    base = request.app[appkeys.CONFIG].server.base_url.rstrip("/")
    base = base or f"{request.scheme}://{request.host}"
    return render(
        request,
        "monitor.html",
        {
            "m": m,
            "status_label": STATUS_LABELS[m.alertstatus],
            "reasons": list(ms.reasons) or ([m.alerttext] if m.alerttext else []),
            "settings": settings_view(ms, now),
            "latest": latest_run(ms, now, sev),
            "next_run": next_run(m.settings, m.created_at, ms.latest, now),
            "last_success": stamp(ms.last_success, now),
            "evaluated": stamp(m.alert_timestamp, now),
            "charts": charts,
            "batches": batches,
            "logs": logs,
            "transitions": [transition_view(t, now) for t in transitions],
            "badge_url": f"{base}/badge/{key}.svg",
            "page_url": f"{base}/monitors/{key}",
        },
    )


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "image/" not in accept


def _badge_response(label: str, message: str, colour: str, status: int = 200) -> web.Response:
    return web.Response(
        text=render_badge(label, message, COLOURS[colour]),
        status=status,
        content_type="image/svg+xml",
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": "default-src 'none'",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def badge(request: web.Request) -> web.StreamResponse:
    """A shields-style badge: the monitor's name and alert status."""
    key = request.match_info["key"]
    try:
        await authorize(request)
        ms = visible_monitor(request, key)
    except (ApiError, DomainError) as raised:
        exc = api_error(raised)
        if _wants_json(request):
            return json_response(exc.body(), exc.status)
        message = {401: "sign in required", 403: "forbidden"}.get(exc.status, "not found")
        return _badge_response(key, message, "unknown", exc.status)
    message, colour = badge_for(ms.monitor)
    return _badge_response(ms.monitor.settings.name, message, colour)


async def login_form(request: web.Request) -> web.StreamResponse:
    if not request.app[appkeys.AUTH].enabled:
        return _redirect("/")
    context = {"next": safe_next(request.query.get("next")), "error": None}
    return render(request, "login.html", context)


async def login(request: web.Request) -> web.StreamResponse:
    """Check a token for the read role; open a session and keep its id in a cookie.

    The cookie holds a random session id, never the token: HttpOnly, SameSite=Strict, Secure
    whenever the browser spoke HTTPS (directly, through a trusted proxy, or per base_url).
    """
    auth = request.app[appkeys.AUTH]
    if not auth.enabled:
        return _redirect("/")
    form = await request.post()
    target = safe_next(str(form.get("next", "")))
    refused = _cross_site(request)
    if refused is not None:
        return refused
    token = str(form.get("token", "")).strip()
    caller = auth.identify(token) if token else None
    problem = None
    if caller is None:
        problem = (401, "That token is not valid.")
    elif not READ & caller.roles:
        problem = (403, f"Token {caller.name!r} lacks the read role.")
    if problem is not None or caller is None:
        context = {"next": target, "error": problem[1] if problem else ""}
        return render(request, "login.html", context, problem[0] if problem else 401)
    session = await request.app[appkeys.SESSIONS].open(caller)
    response = _redirect(target)
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=SESSION_MAX_AGE,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )
    if LEGACY_COOKIE in request.cookies:
        response.del_cookie(LEGACY_COOKIE, path="/")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session (POST from this site's own page, like sign-in) and forget the cookie."""
    refused = _cross_site(request)
    if refused is not None:
        return refused
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        await request.app[appkeys.SESSIONS].close(session)
    response = _redirect("/login" if request.app[appkeys.AUTH].enabled else "/")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def _asset_version() -> str:
    digest = hashlib.sha256()
    for path in sorted((HERE / "static").iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def setup_status_page(app: web.Application) -> None:
    """Register the status page's routes, its templates and its static files."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        default_helpers=False,
    )
    env.globals["asset_version"] = _asset_version()
    app.router.add_get("/", overview)
    app.router.add_get("/ui/rows", overview_fragment)
    app.router.add_get("/monitors/{key}", monitor_page)
    app.router.add_get("/badge/{key}.svg", badge)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_static("/static/", HERE / "static", name="static")
