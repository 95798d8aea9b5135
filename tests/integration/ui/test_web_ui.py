"""The web UI in a real headless Chromium (Debian's, driven by Playwright), against a real
``rayflow server`` (``build``: token auth, SQLite, the local executor, uvicorn on a free
loopback port): sign in with a token, start a run from the workflows form (a bad input is
refused before anything is sent), watch it finish, read a component's log, open a failed
component's error and log, follow a running component's log and cancel its run, find the
runs on the list by state, read the cluster page, and with a read-only token see no
button and get 403 from the API when the page calls one anyway.

Screenshots go to ``$RAYFLOW_UI_SCREENSHOTS`` (a folder) when set, else the test's folder:
runs.png, run-succeeded.png, start-form.png, failed-log.png, following.png,
cancelled.png, cluster.png, read-only.png.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fns.logs import LINES
from tests.fns.ui import WORKFLOWS
from tests.helpers import unavailable
from tests.support.server import start_server

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def playwright_api():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        unavailable("chromium is not installed (apt-get install -y chromium)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright_api):
    browser = playwright_api.chromium.launch(executable_path=shutil.which("chromium") or CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
    yield browser
    browser.close()


@pytest.fixture
def served(tmp_path):
    live = start_server(f"sqlite:///{tmp_path / 'server.db'}", auth="token", executor="local")
    admin = live.token("admin")
    for spec in WORKFLOWS:
        call(live.url, "/v1/workflows", admin, {"name": spec["name"], "spec": spec})
    yield live, admin
    live.stop()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("RAYFLOW_UI_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def call(url: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def sign_in(browser, url: str, token: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    page.wait_for_selector("#token-input")
    page.fill("#token-input", token)
    page.click("#token-save")
    page.errors = errors
    return page


def log_has(page, text: str) -> None:
    page.wait_for_function("t => (document.querySelector('#log')?.textContent || '').includes(t)", arg=text,
                           timeout=WAIT_MS)


def start_from_form(page, url: str, workflow: str, **inputs) -> str:
    page.goto(f"{url}/#/workflows?start={workflow}")
    page.wait_for_selector("#start-form")
    for name, value in inputs.items():
        page.fill(f"#input-{name}", str(value))
    page.click("#start-submit")
    page.wait_for_selector("#run-id", timeout=WAIT_MS)
    return page.text_content("#run-id")


def test_start_watch_read_logs_cancel_and_scopes_in_a_real_browser(browser, served, shots):
    live, admin = served
    url = live.url
    page = sign_in(browser, url, admin)
    page.wait_for_selector("#who[data-scope=admin]")

    # the form checks inputs against the spec before anything is sent
    page.goto(f"{url}/#/workflows?start=ui-etl")
    page.wait_for_selector("#input-x")
    page.fill("#input-x", "four")
    page.click("#start-submit")
    page.wait_for_function("document.querySelector('#start-errors').textContent.length > 0")
    assert page.text_content("#start-errors") == "input 'x': expected an integer, got \"four\""
    page.screenshot(path=str(shots / "start-form.png"), full_page=True)
    assert call(url, "/v1/counts", admin)[1]["total"] == 0          # nothing was sent

    # start a run, watch it finish, read what a component printed and logged
    etl = start_from_form(page, url, "ui-etl", x=4)
    page.wait_for_selector("#run-status[data-status=SUCCEEDED]", timeout=WAIT_MS)
    assert call(url, f"/v1/runs/{etl}", admin)[1]["inputs"] == {"x": 4, "label": "nightly"}
    page.click("tr[data-component-id=talk]")
    log_has(page, "careful with 4")
    log = page.text_content("#log")
    assert all(line in log.splitlines() for line in LINES)
    assert page.locator("#gantt").bounding_box()["height"] > 30
    assert page.locator("#dag-svg g[data-node]").count() == 2
    page.screenshot(path=str(shots / "run-succeeded.png"), full_page=True)

    # a failed component: its error with the traceback, and its log
    broken = start_from_form(page, url, "ui-broken", x=2)
    page.wait_for_selector("#run-status[data-status=FAILED]", timeout=WAIT_MS)
    page.click("tr[data-component-id=lookup]")
    page.wait_for_selector("#component-error")
    error = page.text_content("#component-error")
    assert "KeyError" in error and "_lookup" in error and "tests/fns/logs.py" in error
    log_has(page, "about to look up 'b'")
    assert page.locator("#btn-retry").is_visible() and page.locator("#btn-cancel").count() == 0
    page.screenshot(path=str(shots / "failed-log.png"), full_page=True)

    # a running component's log followed live, then its run cancelled from the page
    slow = start_from_form(page, url, "ui-slow", seconds=8)   # the local executor stops it after its call
    page.wait_for_selector("#run-status[data-status=RUNNING]", timeout=WAIT_MS)
    page.wait_for_selector("tr[data-component-id=ticker] [data-state=RUNNING]", timeout=WAIT_MS)
    page.click("tr[data-component-id=ticker]")
    page.wait_for_selector("#log-follow:text('following live')")
    log_has(page, "tick 3")                      # lines that came after the page opened the log
    page.screenshot(path=str(shots / "following.png"), full_page=True)
    page.click("#btn-cancel")
    page.wait_for_selector("#run-status[data-status=CANCELLED]", timeout=WAIT_MS)
    after = call(url, f"/v1/runs/{slow}", admin)[1]
    assert after["status"] == "CANCELLED" and after["components"]["after"]["state"] != "SUCCEEDED"
    page.screenshot(path=str(shots / "cancelled.png"), full_page=True)

    # the runs list: counts by state, a filter by state
    page.goto(f"{url}/#/runs")
    page.wait_for_selector(f"tr[data-run-id='{slow}']")
    assert page.text_content("#counts [data-count=total]") == "3", call(url, "/v1/counts", admin)
    assert call(url, "/v1/counts", admin)[1]["runs"] == {"SUCCEEDED": 1, "FAILED": 1, "CANCELLED": 1}
    for state in ("SUCCEEDED", "FAILED", "CANCELLED"):
        assert page.text_content(f"#counts [data-count={state}]") == "1"
    page.goto(f"{url}/#/runs?status=FAILED")
    page.wait_for_selector(f"tr[data-run-id='{broken}']")
    assert page.locator("#runs-table tbody tr[data-run-id]").count() == 1
    page.goto(f"{url}/#/runs")
    page.wait_for_selector(f"tr[data-run-id='{etl}']")
    page.screenshot(path=str(shots / "runs.png"), full_page=True)

    # the cluster: this server, the store's health
    page.goto(f"{url}/#/cluster")
    page.wait_for_selector(f"#cluster-servers tr[data-server='{live.server.runner.server_id}']")
    assert "SqliteStore" in page.text_content("#cluster-store")
    for part in ("servers", "nodes", "store", "cache"):
        assert "cannot read" not in page.text_content(f"#cluster-{part}"), page.text_content(f"#cluster-{part}")
    page.screenshot(path=str(shots / "cluster.png"), full_page=True)
    assert page.errors == []

    # a read-only token: no buttons anywhere, and 403 when the page calls one anyway
    reader = sign_in(browser, url, live.token("read"))
    reader.wait_for_selector("#who[data-scope=read]")
    reader.goto(f"{url}/#/run/{broken}")
    reader.wait_for_selector("#run-status[data-status=FAILED]")
    for button in ("#btn-cancel", "#btn-retry", "#btn-resume"):
        assert reader.locator(button).count() == 0
    reader.click("tr[data-component-id=lookup]")
    log_has(reader, "about to look up 'b'")       # reading is allowed
    reader.screenshot(path=str(shots / "read-only.png"), full_page=True)
    status = reader.evaluate("""async (id) => (await fetch(`/v1/runs/${id}/retry`, {method: "POST",
        headers: {Authorization: `Bearer ${sessionStorage.getItem("rayflow.token")}`}})).status""", broken)
    assert status == 403
    reader.goto(f"{url}/#/workflows")
    reader.wait_for_selector("#workflows-table tr[data-workflow=ui-etl]")
    assert reader.locator("[data-start]").count() == 0 and reader.locator("#start-form").count() == 0
    assert reader.errors == []


def test_without_a_token_the_page_asks_for_one_and_shows_no_data(browser, served):
    live, _ = served
    page = browser.new_page()
    page.goto(live.url + "/")
    page.wait_for_selector("#main h1:text('Sign in')")
    assert page.locator("#runs-table").count() == 0
    headers = page.evaluate("async () => Object.fromEntries((await fetch('/')).headers)")
    assert "script-src 'self'" in headers["content-security-policy"]
