"""The status page in a real headless Chromium (Selenium), against the service as a subprocess.

Chromium and chromedriver come from Debian (scripts/install-system-deps.sh); without them these
tests fail rather than skip. Screenshots of both pages are saved to test-artifacts/.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.support import ROOT
from tests.support.service import Service as RunningService

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / "test-artifacts"
WAIT_SECONDS = 20.0
READ_TOKEN = "read-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"
SECURED_CONFIG = f"""\
auth:
  tokens:
    - {{name: wallboard, token: {READ_TOKEN}, roles: [read]}}
    - {{name: ops, token: {ADMIN_TOKEN}, roles: [admin, push]}}
"""
PAYLOAD = "<script>document.title='pwned';window.__pwned=true</script>"
MIN, HOUR, DAY = 60.0, 3600.0, 86400.0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


class Service(RunningService):
    """The real service (tests/support/service.py), seeded over its API; errors fail the test."""

    def monitor(self, key: str, name: str, **settings: Any) -> None:
        self.call("PUT", f"/api/v1/monitors/{key}", {"name": name, **settings})

    def report(self, key: str, start: float, seconds: float, status: str, **f: Any) -> int:
        """A finished batch, reported at once."""
        body = {"logstatus": status, "starttime": _iso(start), "endtime": _iso(start + seconds)}
        batch_id: int = self.call("POST", f"/api/v1/monitors/{key}/batches", {**body, **f})[
            "batch"
        ]["id"]
        return batch_id

    def start(self, key: str, start: float, **fields: Any) -> int:
        body = {"logstatus": "running", "starttime": _iso(start), **fields}
        batch_id: int = self.call("POST", f"/api/v1/monitors/{key}/batches", body)["batch"]["id"]
        return batch_id

    def finish(self, batch_id: int, status: str, end: float, **fields: Any) -> None:
        body = {"logstatus": status, "endtime": _iso(end), **fields}
        self.call("PATCH", f"/api/v1/batches/{batch_id}", body)

    def log(self, key: str, **fields: Any) -> None:
        self.call("POST", f"/api/v1/monitors/{key}/logs", fields)


def seed(service: Service) -> None:
    """A realistic fleet: healthy syncs, failures, a long-running load, a silent monitor."""
    now = time.time()
    s = service
    s.monitor("crm-accounts", "CRM → ERP account sync", alert_interval=60)
    for i in range(36):
        start = now - (36 - i) * 30 * MIN + 4 * MIN
        s.report(
            "crm-accounts",
            start,
            55 + (i * 37) % 50,
            "ok",
            integrationid=f"sync-{4100 + i}",
            no_created=(i * 7) % 19,
            no_updated=180 + (i * 53) % 240,
            no_deleted=(i * 5) % 4,
        )
    s.monitor("sap-invoices", "SAP invoice export", alert_interval=1500)
    rejected = (
        "3 of 412 invoices rejected by SAP: BAPI_ACC_DOCUMENT_POST returned "
        "F5 702 (balance in transaction currency)"
    )
    for i in range(13):
        start = now - (14 - i) * DAY + 2 * HOUR
        s.report(
            "sap-invoices",
            start,
            600 + (i * 97) % 420,
            "donewitherror" if i == 6 else "ok",
            integrationid=f"EXP-2026-{310 + i}",
            no_created=380 + (i * 31) % 90,
            errormsg=rejected if i == 6 else "",
        )
    # the latest run as a job reports it: started, a log per document, then finished
    start = now - DAY + 2 * HOUR
    bid = s.start("sap-invoices", start, integrationid="EXP-2026-323")
    for n, doc in enumerate(("INV-88213", "INV-88240", "INV-88297")):
        s.log(
            "sap-invoices",
            batch_id=bid,
            logstatus="error",
            integrationid=doc,
            logtext=f"Document {n + 1} of 3 rejected",
            errormsg="F5 702: balance in transaction currency not zero",
        )
    s.log("sap-invoices", batch_id=bid, logstatus="ok", logtext="409 invoices posted")
    s.finish(bid, "donewitherror", start + 731, no_created=409, errormsg=rejected)
    s.monitor("webshop-orders", "Webshop order import", alert_interval=30)
    for i in range(20):
        start = now - (20 - i) * 15 * MIN + 2 * MIN
        last = i == 19
        s.report(
            "webshop-orders",
            start,
            8 + (i * 3) % 9,
            "error" if last else "ok",
            integrationid=f"orders-{9820 + i}",
            no_created=0 if last else 3 + (i * 11) % 17,
            no_updated=0 if last else (i * 3) % 6,
            errormsg=f"Upstream returned HTML instead of JSON: {PAYLOAD}" if last else "",
        )
    s.monitor("stock-levels", "Stock level feed", alert_no_updates_deceeds=50)
    for i in range(24):
        start = now - (24 - i) * HOUR + 10 * MIN
        s.report(
            "stock-levels",
            start,
            20 + i % 7,
            "ok",
            integrationid=f"feed-{i}",
            no_updated=12 if i == 23 else 900 + (i * 71) % 400,
        )
    s.monitor("dwh-nightly", "Nightly DWH load", alert_interval=1560)
    for i in range(10):
        start = now - (10 - i) * DAY + 12 * MIN
        s.report("dwh-nightly", start, 1500 + (i * 211) % 900, "ok", integrationid=f"dwh-{i}")
    s.start("dwh-nightly", now - 12 * MIN, integrationid="dwh-10")
    s.monitor("hr-payroll", "Payroll CSV import", alert_interval=1500, alert_no_creates_deceeds=1)
    for i in range(7):
        start = now - (7 - i) * DAY + 5 * HOUR
        s.report("hr-payroll", start, 3 + i % 3, "ok", no_created=1 + i % 4, no_updated=40 + i)
    s.monitor("payment-hooks", "Payment webhooks", type="message", alert_interval=120)
    for i in range(30):
        s.log(
            "payment-hooks",
            logstatus="error" if i == 21 else "ok",
            integrationid=f"evt_{3100 + i}",
            message="charge.failed: card_declined" if i == 21 else "charge.succeeded",
        )
    s.monitor(
        "backup-nightly",
        "Nightly backup",
        schedule="30 2 * * *",
        timezone="Europe/Stockholm",
        max_runtime=120,
    )
    s.report("backup-nightly", now - 1, 1, "ok", integrationid="backup-1")
    s.monitor("ldap-users", "LDAP user provisioning")
    s.monitor("legacy-ftp", "Legacy FTP drop (retired)", active=False)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, service_database: str) -> Iterator[Service]:
    running = Service(tmp_path_factory.mktemp("web"), database=service_database)
    try:
        seed(running)
        yield running
    finally:
        running.stop()


def _options(user_data: Path, javascript: bool) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1440,900",
        "--force-device-scale-factor=1",
        f"--user-data-dir={user_data}",
    ):
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


def _start_browser(tmp: Path, javascript: bool = True) -> WebDriver:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/install-system-deps.sh")
    driver = webdriver.Chrome(
        service=DriverService(executable_path=str(CHROMEDRIVER)),
        options=_options(tmp, javascript),
    )
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    return driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    driver = _start_browser(tmp_path_factory.mktemp("chromium"))
    yield driver
    driver.quit()


def wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.2)


def rows(driver: WebDriver) -> list[tuple[str, str]]:
    """(key, status text) of each overview row, top to bottom, read in one go: the refresh
    script may replace the rows between two WebDriver calls."""
    found = driver.execute_script(
        "return [...document.querySelectorAll('table.monitors tbody tr')]"
        ".map(tr => [tr.dataset.key, tr.querySelector('.pill').innerText])"
    )
    return [(key, status) for key, status in found]


def csp_violations(driver: WebDriver) -> list[str]:
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]
    ]


def screenshot(driver: WebDriver, name: str) -> Path:
    """The whole page, beyond the window's height, as a PNG (through the DevTools protocol)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def test_overview_lists_monitors_errors_first(service: Service, browser: WebDriver) -> None:
    browser.get(service.url + "/")
    wait(browser).until(lambda d: rows(d))
    listed = rows(browser)
    statuses = [status for _, status in listed]
    assert len(listed) == 10
    order = {"Error": 0, "Not calculated": 1, "OK": 2}
    assert [order[s] for s in statuses] == sorted(order[s] for s in statuses)
    assert {k for k, s in listed if s == "Error"} == {
        "sap-invoices",
        "webshop-orders",
        "stock-levels",
    }
    names = browser.execute_script(
        "return [...document.querySelectorAll('table.monitors .mon a')].map(a => a.innerText)"
    )
    assert names[:3] == ["SAP invoice export", "Stock level feed", "Webshop order import"]
    assert browser.title == "(3) Status · Integration Monitor"
    assert csp_violations(browser) == []
    assert screenshot(browser, "status-overview.png").stat().st_size > 10_000


def test_pushed_script_shows_as_text_and_does_not_run(service: Service, browser: WebDriver) -> None:
    for path in ("/", "/monitors/webshop-orders"):
        browser.get(service.url + path)
        wait(browser).until(lambda d: "Webshop" in d.find_element(By.TAG_NAME, "main").text)
        assert PAYLOAD in browser.find_element(By.TAG_NAME, "main").text, path
        assert browser.execute_script("return window.__pwned === undefined")
        assert "pwned" not in browser.title
        assert browser.find_elements(By.CSS_SELECTOR, "main script") == []


def test_filter_and_search(service: Service, browser: WebDriver) -> None:
    browser.get(service.url + "/")
    browser.find_element(By.CSS_SELECTOR, "a.tab-error").click()
    wait(browser).until(lambda d: "status=error" in d.current_url)
    assert {s for _, s in rows(browser)} == {"Error"} and len(rows(browser)) == 3
    box = browser.find_element(By.ID, "q")
    box.send_keys("stock", Keys.ENTER)
    wait(browser).until(lambda d: "q=stock" in d.current_url)
    assert rows(browser) == [("stock-levels", "Error")]
    assert "status=error" in browser.current_url  # the filter survives the search


def test_monitor_page_shows_batches_logs_and_charts(service: Service, browser: WebDriver) -> None:
    browser.get(service.url + "/")
    browser.find_element(By.LINK_TEXT, "SAP invoice export").click()
    wait(browser).until(lambda d: d.current_url.endswith("/monitors/sap-invoices"))
    main = browser.find_element(By.TAG_NAME, "main")
    assert "SAP invoice export" in browser.find_element(By.TAG_NAME, "h1").text
    assert "BAPI_ACC_DOCUMENT_POST" in main.find_element(By.CSS_SELECTOR, ".reasons").text
    batches = browser.find_elements(By.CSS_SELECTOR, "table.runs tbody.batch")
    assert len(batches) == 14
    first = batches[0]
    assert first.find_element(By.CSS_SELECTOR, ".pill").text == "donewitherror"
    assert "EXP-2026-323" in first.text
    logs = first.find_elements(By.CSS_SELECTOR, "details[open] table.logs tbody tr")
    assert len(logs) == 4 and "INV-88297" in first.text
    bars = browser.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
    assert len(bars) == 14
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar.error")) == 2
    badge = browser.find_element(By.CSS_SELECTOR, "img.badge")
    assert browser.execute_script("return arguments[0].naturalWidth", badge) > 50
    assert csp_violations(browser) == []
    assert screenshot(browser, "status-monitor.png").stat().st_size > 10_000


def test_live_refresh_updates_a_row_without_reload(service: Service, browser: WebDriver) -> None:
    browser.get(service.url + "/?refresh=2")
    wait(browser).until(lambda d: rows(d))
    assert dict(rows(browser))["ldap-users"] == "Not calculated"
    browser.execute_script("window.__sameDocument = 42")
    bid = service.start("ldap-users", time.time() - 30, integrationid="sync-1")
    service.finish(bid, "error", time.time(), errormsg="LDAP bind failed")
    try:
        wait(browser).until(lambda d: dict(rows(d)).get("ldap-users") == "Error")
    except TimeoutException:
        pytest.fail(f"the row did not refresh within {WAIT_SECONDS}s: {rows(browser)}")
    assert browser.execute_script("return window.__sameDocument") == 42  # no reload
    assert rows(browser)[0][1] == "Error"
    assert (
        "LDAP bind failed" in browser.find_element(By.CSS_SELECTOR, "tr[data-key=ldap-users]").text
    )
    assert browser.title.startswith("(4) ")
    assert "Updated" in browser.find_element(By.ID, "refresh-state").text


def test_pages_work_with_javascript_off(
    service: Service, tmp_path_factory: pytest.TempPathFactory
) -> None:
    driver = _start_browser(tmp_path_factory.mktemp("nojs"), javascript=False)
    try:
        driver.get(service.url + "/?status=ok")
        assert {s for _, s in rows(driver)} == {"OK"}
        driver.find_element(By.ID, "q").send_keys("payroll", Keys.ENTER)
        wait(driver).until(lambda d: "q=payroll" in d.current_url)
        assert rows(driver) == [("hr-payroll", "OK")]
        driver.find_element(By.LINK_TEXT, "Payroll CSV import").click()
        wait(driver).until(lambda d: d.current_url.endswith("/monitors/hr-payroll"))
        assert len(driver.find_elements(By.CSS_SELECTOR, "table.runs tbody.batch")) == 7
    finally:
        driver.quit()


def test_sign_in_with_the_login_form(
    tmp_path_factory: pytest.TempPathFactory, browser: WebDriver
) -> None:
    secured = Service(tmp_path_factory.mktemp("secured"), SECURED_CONFIG, ADMIN_TOKEN)
    try:
        secured.monitor("crm-accounts", "CRM → ERP account sync")
        browser.get(secured.url + "/monitors/crm-accounts")
        wait(browser).until(lambda d: "/login" in d.current_url)
        browser.find_element(By.ID, "token").send_keys(ADMIN_TOKEN, Keys.ENTER)
        wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".form-error"))
        assert "lacks the read role" in browser.find_element(By.CSS_SELECTOR, ".form-error").text
        browser.find_element(By.ID, "token").send_keys(READ_TOKEN, Keys.ENTER)
        wait(browser).until(lambda d: d.current_url.endswith("/monitors/crm-accounts"))
        assert "CRM → ERP account sync" in browser.find_element(By.TAG_NAME, "h1").text
        assert browser.get_cookie("im_session")["httpOnly"] is True
        browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
        wait(browser).until(lambda d: "/login" in d.current_url)
        assert browser.get_cookie("im_session") is None
    finally:
        browser.delete_all_cookies()
        secured.stop()


def test_next_run_shows_in_the_viewers_time_zone(
    service: Service, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A viewer in New York sees the Stockholm job's next run in New York time; the page
    names the schedule in words, and the monitor's own zone is kept in the title."""
    driver = _start_browser(tmp_path_factory.mktemp("new-york"))
    viewer = ZoneInfo("America/New_York")
    try:
        driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": str(viewer)})
        driver.get(service.url + "/monitors/backup-nightly")
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".next-run .localized"))
        due_iso = driver.find_element(By.CSS_SELECTOR, ".next-run time").get_attribute("datetime")
        assert due_iso
        due = datetime.fromisoformat(due_iso.replace("Z", "+00:00"))
        assert due.astimezone(ZoneInfo("Europe/Stockholm")).strftime("%H:%M") == "02:30"
        shown = driver.find_element(By.CSS_SELECTOR, ".next-run .localized")
        here = due.astimezone(viewer)
        assert here.strftime("%H:%M") in shown.text, shown.text
        assert here.tzname() in shown.text, shown.text  # EST or EDT
        assert shown.get_attribute("title") == (
            f"02:30 on {due.astimezone(ZoneInfo('Europe/Stockholm')).day} "
            f"{due.astimezone(ZoneInfo('Europe/Stockholm')):%b} (Europe/Stockholm)"
        )
        main = driver.find_element(By.TAG_NAME, "main").text
        assert "at 02:30 every day, Europe/Stockholm" in main
        assert "Max runtime\n2 h" in main or "Max runtime 2 h" in main
        assert screenshot(driver, "status-monitor-scheduled.png").stat().st_size > 10_000
        driver.get(service.url + "/?q=backup")
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".next-run .localized"))
        cell = driver.find_element(By.CSS_SELECTOR, "tr[data-key=backup-nightly] .next-run")
        assert here.strftime("%H:%M") in cell.text and cell.text.startswith("next due in ")
        assert csp_violations(driver) == []
    finally:
        driver.quit()
