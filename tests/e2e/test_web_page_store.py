"""The fleet page in a real headless browser (Debian's chromium), served over loopback from a
real store the test writes (no cluster needed): the detail panel's open drift, and the page
when the daemon refuses it an event stream."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from reconciler.fields import FieldChange
from reconciler.store.db import Store
from reconciler.store.rows import State, StatusRow
from reconciler.web.app import create_app
from reconciler.web.model import ClusterInfo, Fleet
from reconciler.web.server import HttpServer
from reconciler.web.snapshot import SnapshotCache

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SHA = "1bf2028cdf11aa0000000000000000000000beef"
WAIT = 30.0


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("chromium and chromedriver are needed: `make browser` installs Debian's")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield chrome
    finally:
        chrome.quit()


def wait_for(browser: WebDriver, check: Callable[[WebDriver], Any], what: str) -> Any:
    wait = WebDriverWait(
        browser, WAIT, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(check, message=what)


def change() -> list[FieldChange]:
    return [FieldChange("data.v", "1", "2", "kubectl-edit", T0)]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    with Store.open(state) as store:
        store.record_revision(SHA, T0, True, None)
        store.record_fetch_success("/srv/repo", "main", SHA, T0)
        store.set_status(StatusRow("web", "c1", State.DRIFTED, "drift", SHA, T0, T0))
        store.record_drift("web", "c1", "ConfigMap/demo/old", "modified", change(), SHA, T0)
        for i in range(25):  # newer drift of the same target, each corrected since
            at = T0 + timedelta(minutes=i + 1)
            row = store.record_drift(
                "web", "c1", f"ConfigMap/demo/x{i}", "modified", change(), SHA, at
            )
            store.mark_corrected(row.id, at + timedelta(seconds=30))
    return state


@contextmanager
def served(state: Path, **options: Any) -> Iterator[str]:
    stopping = threading.Event()
    with Store.open_readonly(state) as store:
        app = create_app(
            SnapshotCache(store, lambda: Fleet((ClusterInfo("c1"),), "1"), max_age=0),
            CollectorRegistry(),
            ready=lambda: True,
            stopping=stopping,
            **options,
        )
        server = HttpServer("127.0.0.1:0", app, stopping=stopping).start()
        try:
            yield f"http://127.0.0.1:{server.port}"
        finally:
            server.stop()


def test_the_detail_panel_shows_an_open_drift_behind_newer_corrected_ones(
    browser: WebDriver, state: Path
) -> None:
    with served(state) as url:
        browser.get(f"{url}/?target=web/c1")

        def drift_heading(b: WebDriver) -> str | None:
            headings = b.find_elements(By.CSS_SELECTOR, "#detail h3")
            return next((str(h.text) for h in headings if h.text.startswith("Open drift")), None)

        assert wait_for(browser, drift_heading, "the detail panel") == "Open drift (1)"
        assert "ConfigMap/demo/old" in browser.find_element(By.ID, "detail").text


def test_a_page_refused_an_event_stream_polls_and_still_follows_changes(
    browser: WebDriver, state: Path
) -> None:
    with served(state, max_streams=0) as url:
        browser.get(url)

        def live(b: WebDriver) -> str | None:
            text = str(b.find_element(By.ID, "live-text").text)
            return text if text == "polling" else None

        wait_for(browser, live, "the page polling")
        with Store.open(state) as store:
            store.set_status(StatusRow("web", "c1", State.FAILED, "boom", SHA, T0, T0))

        def failed(b: WebDriver) -> bool:
            return bool(b.find_elements(By.CSS_SELECTOR, '#matrix .cell[data-state="Failed"]'))

        wait_for(browser, failed, "the page redrawn by a poll")
