"""The explorer page in real headless Chromium.

Debian's ``chromium`` driven through its ``chromedriver`` by Selenium 4 (no browser or
driver download: the Service names the installed driver, so Selenium Manager never runs).
One warehouse holds the demo's seed files and a gold build; the real server (``aag serve``)
runs this checkout's code as a subprocess; the browser loads the page, searches the demo
customer and reads what a person would see.

``AAG_EXPLORER_SCREENSHOT=docs/explorer.png`` also writes the screenshot of the demo
customer there (docs/explorer.md).
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver  # Chromium's: has get_log, the remote one not
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

import aag
from aag.demo import DEMO_CONTACT, write_demo_files
from aag.service import AagService
from aag.serving.keys import KEYS_FILE, add_key

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: The ``src`` folder of the code under test: the server subprocess runs the same code.
SRC = Path(aag.__file__).resolve().parents[1]
WINNING_PHONE = "+499876543210"
WAIT = 30


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The demo's seed files ingested and built (``aag demo --people 0`` + ``aag build``)."""
    root = tmp_path_factory.mktemp("explorer")
    svc = AagService(str(root / "wh"))
    svc.init()
    for batch, path in write_demo_files(root / "in"):
        svc.ingest(batch.source_system, batch.source_object, [path])
    svc.build()
    config = svc.warehouse.config_dir
    assert config is not None
    key = add_key(config / KEYS_FILE, "explorer-test", frozenset({"read"}))
    return str(root / "wh"), key


@pytest.fixture(scope="module")
def server(warehouse: tuple[str, str]) -> Iterator[str]:
    """``aag serve --port 0`` as a subprocess; yields its base URL (from the line it prints)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    command = [
        sys.executable,
        "-m",
        "aag",
        "serve",
        "--warehouse",
        warehouse[0],
        "--port",
        "0",
        "--gold-refresh",
        "-1",
    ]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    base = None
    try:
        while base is None:
            try:
                line = lines.get(timeout=120)
            except queue.Empty:
                pytest.fail("aag serve printed no address within 120 s:\n" + "".join(seen))
            if line is None:
                pytest.fail(f"aag serve exited with {proc.wait()}:\n" + "".join(seen))
            found = re.search(r" on (http://127\.0\.0\.1:\d+)/", line)
            base = found.group(1) if found else None
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def customer_id(server: str, warehouse: tuple[str, str]) -> str:
    """The demo customer's id, asked of the API as any client would."""
    query = urllib.parse.quote(f"salesforce:{DEMO_CONTACT}")
    request = urllib.request.Request(f"{server}/v1/search?q={query}", headers={"X-API-Key": warehouse[1]})
    with urllib.request.urlopen(request, timeout=30) as response:
        results = json.load(response)["results"]
    assert len(results) == 1
    return str(results[0]["customer_id"])


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    assert CHROMIUM.is_file() and CHROMEDRIVER.is_file(), (
        "needs Debian's chromium and chromium-driver packages"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield browser
    finally:
        browser.quit()


# -- helpers ----------------------------------------------------------------------------------


def _open(driver: WebDriver, base: str, fragment: str = "") -> None:
    """A fresh page load with an empty session storage (no key kept from an earlier test)."""
    driver.get("about:blank")
    driver.get(f"{base}/")
    driver.execute_script("sessionStorage.clear()")
    driver.get("about:blank")
    # Drop what earlier pages logged (selenium leaves get_log unannotated).
    driver.get_log("browser")  # type: ignore[no-untyped-call]
    driver.get(f"{base}/{'#' + fragment if fragment else ''}")


def _wait(driver: WebDriver, css: str, text: str = "", timeout: float = WAIT) -> WebElement:
    """The first visible element matching ``css`` (whose text contains ``text``)."""

    def found(d: WebDriver) -> WebElement | Literal[False]:
        for element in d.find_elements(By.CSS_SELECTOR, css):
            if element.is_displayed() and text in element.text:
                return element
        return False

    # The page re-renders panels as answers arrive: an element seen a moment ago may be gone.
    waiting = WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))
    element: WebElement = waiting.until(found, f"no visible {css!r} with text {text!r}")
    return element


def _settled(driver: WebDriver, timeout: float = WAIT) -> None:
    """Wait until no panel is loading (the page marks loading panels ``aria-busy``)."""
    WebDriverWait(driver, timeout).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, "[aria-busy='true']"), "panels still loading"
    )


def _texts(driver: WebDriver, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def _errors(driver: WebDriver) -> list[str]:
    """Console errors and failed requests (CSP violations and script errors show up here)."""
    logged = driver.get_log("browser")  # type: ignore[no-untyped-call]  # unannotated in selenium
    return [entry["message"] for entry in logged if entry["level"] == "SEVERE"]


def _use_key(driver: WebDriver, key: str) -> None:
    box = _wait(driver, "#key-input")
    box.send_keys(key)
    box.send_keys(Keys.ENTER)
    _wait(driver, "#key-status", "A key is set")


def _search(driver: WebDriver, text: str) -> None:
    box = _wait(driver, "#search-input")
    box.clear()
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


# -- tests ---------------------------------------------------------------------------------


def test_without_a_key_the_page_says_what_is_missing(driver, server):
    _open(driver, server)
    _wait(driver, "#monitor .body", "Enter an API key")
    _search(driver, "alex")
    error = _wait(driver, "#search-error", "No API key")
    assert error.get_attribute("role") == "alert"
    assert "aag keys add" in error.text
    assert driver.find_element(By.CSS_SELECTOR, "#customer").is_displayed() is False
    assert _texts(driver, "#search-results .result") == []
    assert _errors(driver) == []


def test_a_wrong_key_is_refused_with_a_clear_error(driver, server):
    _open(driver, server)
    _use_key(driver, "aag_not-a-real-key")
    _wait(driver, "#monitor .error", "The API key was refused (401")
    _search(driver, "alex")
    error = _wait(driver, "#search-error", "The API key was refused (401: missing or unknown API key)")
    assert error.get_attribute("role") == "alert"
    assert _texts(driver, "#search-results .result") == []


def test_demo_customer_from_bronze_to_gold(driver, server, warehouse, customer_id):
    _open(driver, server)
    _use_key(driver, warehouse[1])
    assert warehouse[1] not in driver.current_url
    _search(driver, f"salesforce:{DEMO_CONTACT}")

    # One match: the customer opens, and its id becomes the deep link.
    result = _wait(driver, "#search-results .result", "Alex Example")
    assert result.get_attribute("data-customer") == customer_id
    _wait(driver, "#customer-id", customer_id)
    assert f"customer={customer_id}" in driver.current_url
    _settled(driver)

    # Gold (v2): the phone is Zendesk's 09:00 change, not the CRM's 09:05 re-sync.
    phone = _wait(driver, "#gold tr[data-attribute='phone']", WINNING_PHONE)
    assert phone.text == f"phone {WINNING_PHONE} zendesk 2026-03-01 09:00 UTC"
    email = driver.find_element(By.CSS_SELECTOR, "#gold tr[data-attribute='email']")
    assert "alex.example@newco.com salesforce 2026-03-01 09:05 UTC" in email.text

    # The timeline of the phone: opened from the gold row, winner and explanation on screen.
    driver.find_element(By.CSS_SELECTOR, "#gold tr[data-attribute='phone'] button").click()
    _wait(driver, "#timeline-attr", "phone")
    _settled(driver)
    winner = _wait(driver, "#timeline .verdict.win .winner-value", WINNING_PHONE)
    assert winner.text == WINNING_PHONE
    assert "from zendesk" in _wait(driver, "#timeline .verdict.win").text
    why = _wait(driver, "#timeline .verdict.lose .why-lost")
    assert why.text == (
        "older: this field last changed in salesforce at 2024-03-01T10:00:00Z, "
        "after that zendesk changed it at 2026-03-01T09:00:00Z"
    )
    resync = _wait(driver, "#timeline .verdict.lose .resync").text
    assert (
        "salesforce re-sent the whole Contact record at 2026-03-01 09:05 UTC (its LastModifiedDate)" in resync
    )
    assert "Phone in it was unchanged (+49 111 000 0000)" in resync
    assert "kept the time that field itself last changed, 2024-03-01 10:00 UTC" in resync

    # The bars: every version per source; the winner marked; the re-sync as an open mark.
    whole = driver.find_elements(By.CSS_SELECTOR, "#timeline svg.timeline")[0]
    lanes = [lane.get_attribute("data-source") for lane in whole.find_elements(By.CSS_SELECTOR, ".lane")]
    assert lanes == ["zendesk", "salesforce"]
    versions = whole.find_elements(By.CSS_SELECTOR, ".version")
    assert [v.get_attribute("class") for v in versions] == ["version past", "version win", "version current"]
    assert versions[1].get_attribute("data-value") == WINNING_PHONE
    assert len(whole.find_elements(By.CSS_SELECTOR, ".lane[data-source='salesforce'] .mark.resync")) == 1
    assert len(whole.find_elements(By.CSS_SELECTOR, ".mark.changed")) == 3
    assert len(driver.find_elements(By.CSS_SELECTOR, "#timeline svg.timeline")) == 2  # and the zoom

    # The silver graph: entities, value nodes and labelled edges; winners and losers marked.
    graph = _wait(driver, "#graph svg.graph")
    nodes = graph.find_elements(By.CSS_SELECTOR, ".node")
    edges = graph.find_elements(By.CSS_SELECTOR, "path.edge")
    data_nodes, data_edges = graph.get_attribute("data-nodes"), graph.get_attribute("data-edges")
    assert data_nodes is not None and data_edges is not None
    assert len(nodes) == int(data_nodes) >= 20
    assert len(edges) == int(data_edges) >= 20
    kinds = {n.get_attribute("data-node-type") for n in nodes}
    assert {"customer", "company", "asset", "phone", "email", "source_record"} <= kinds
    won = graph.find_element(By.CSS_SELECTOR, ".node.win[data-node-type='phone']")
    assert WINNING_PHONE in won.text
    lost = graph.find_element(By.CSS_SELECTOR, ".node.lose[data-node-type='phone']")
    assert "+491110000000" in lost.text
    assert graph.find_elements(By.CSS_SELECTOR, "path.edge.win[data-rel='HAS_PHONE']")
    assert graph.find_elements(By.CSS_SELECTOR, "path.edge.lose[data-rel='HAS_PHONE']")
    assert graph.find_elements(By.CSS_SELECTOR, "path.edge[data-rel='SAME_AS']")
    labels = _texts(driver, "#graph .edge-label")
    assert any("★ zendesk · phone" in t and "2026-03-01 09:00" in t for t in labels)
    assert any("salesforce · Phone" in t and "2024-03-01 10:00" in t for t in labels)

    # Bronze: the rows as each source sent them, the field that changed highlighted.
    sources = [
        s.get_attribute("data-source")
        for s in driver.find_elements(By.CSS_SELECTOR, "#bronze .bronze-source")
    ]
    assert sources == ["salesforce", "zendesk"]
    zendesk = driver.find_element(By.CSS_SELECTOR, "#bronze .bronze-source[data-source='zendesk']")
    assert len(zendesk.find_elements(By.CSS_SELECTOR, "tbody tr")) == 2
    assert "+49 987 654 3210" in _texts(driver, "#bronze .bronze-source[data-source='zendesk'] td.changed")[0]
    changed_sf = _texts(driver, "#bronze .bronze-source[data-source='salesforce'] td.changed")
    assert [t.split("\n")[0] for t in changed_sf] == [
        "alex.example@newco.com",
        "2026-03-01T09:05:00.000+0000",
    ]

    # Monitoring: freshness bars per source, conflicts, completeness.
    fresh = _wait(driver, "#monitor-freshness svg.bars")
    assert len(fresh.find_elements(By.CSS_SELECTOR, ".bar")) == 2
    assert "salesforce" in fresh.text and "zendesk" in fresh.text
    _wait(driver, "#monitor-conflicts", "Open conflicts")
    completeness = _wait(driver, "#monitor-completeness table.heat")
    # Wide tables and the graph scroll inside their panels: the page itself never does.
    assert driver.execute_script("return document.documentElement.scrollWidth") == driver.execute_script(
        "return document.documentElement.clientWidth"
    )
    assert len(completeness.find_elements(By.CSS_SELECTOR, "tbody tr")) == 10
    assert _errors(driver) == []


def test_deep_link_with_key_in_the_fragment_and_keyboard(driver, server, warehouse, customer_id, tmp_path):
    key = warehouse[1]
    _open(driver, server, f"key={key}&customer={customer_id}&attribute=phone")
    _wait(driver, "#customer-id", customer_id)
    # The key moved from the address bar to this tab's session storage.
    assert key not in driver.current_url
    assert driver.execute_script("return sessionStorage.getItem('aag.apiKey')") == key
    assert f"customer={customer_id}" in driver.current_url
    _wait(driver, "#timeline .verdict.win .winner-value", WINNING_PHONE)
    _wait(driver, "#graph svg.graph")
    _wait(driver, "#monitor-completeness table.heat")

    # Keyboard: a value node of the graph is a button that opens its attribute's timeline.
    node = driver.find_element(By.CSS_SELECTOR, "#graph .node.win[data-node-type='email']")
    assert node.get_attribute("role") == "button" and node.get_attribute("tabindex") == "0"
    driver.execute_script("arguments[0].focus()", node)
    node.send_keys(Keys.ENTER)
    _wait(driver, "#timeline-attr", "email")
    _wait(driver, "#timeline .verdict.win .winner-value", "alex.example@newco.com")
    pressed = driver.find_element(By.CSS_SELECTOR, "#timeline .chip[aria-pressed='true']")
    assert pressed.text == "email"
    assert "attribute=email" in driver.current_url

    # Back to the phone with the attribute chips, then a full-page screenshot.
    driver.find_element(By.CSS_SELECTOR, "#timeline .chip[data-attribute='phone']").click()
    _wait(driver, "#timeline .verdict.win .winner-value", WINNING_PHONE)
    driver.execute_script("window.scrollTo(0, 0)")
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    frame = int(driver.execute_script("return window.outerHeight - window.innerHeight"))
    driver.set_window_size(1280, height + frame)
    try:
        png = driver.get_screenshot_as_png()
    finally:
        driver.set_window_size(1280, 1000)
    assert png.startswith(b"\x89PNG") and len(png) > 50_000
    (tmp_path / "explorer.png").write_bytes(png)
    target = os.environ.get("AAG_EXPLORER_SCREENSHOT")
    if target:
        Path(target).write_bytes(png)
    assert _errors(driver) == []


@pytest.mark.parametrize(("page", "title"), [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")])
def test_api_docs_render_from_this_server_alone(driver, server, page, title):
    """Swagger UI and ReDoc render from this server alone: nothing is fetched from a CDN.

    ReDoc's sidebar asks for a logo on its CDN; the page's policy blocks it in the browser
    (so it is never fetched, and ReDoc hides the image): every other request is local.
    """
    record = "window.__blocked = []; document.addEventListener('securitypolicyviolation', "
    record += "e => window.__blocked.push(e.blockedURI));"
    script = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": record})
    try:
        driver.get("about:blank")
        driver.get_log("browser")
        driver.get(f"{server}{page}")
        _wait(driver, title, "AAG")
        requested = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        blocked = driver.execute_script("return window.__blocked")
    finally:
        driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", script)
    assert any(url.startswith(f"{server}/static/vendor/") for url in requested), requested
    elsewhere = {url for url in requested if not url.startswith(server)}
    assert elsewhere <= set(blocked), (elsewhere, blocked)
    assert elsewhere <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}, elsewhere
    # The only console errors are the policy's refusals of those off-server requests.
    assert [e for e in _errors(driver) if "Content Security Policy" not in e] == []


def test_the_footer_names_the_warehouse_not_its_path(driver, server, warehouse):
    _open(driver, server)
    _use_key(driver, warehouse[1])
    footer = _wait(driver, "#status-line", "customers in gold").text
    assert footer.startswith("wh ·") and str(Path(warehouse[0]).parent) not in footer, footer
