"""The fleet page in a real headless browser (Debian's chromium), served over loopback from a
real store the test writes (no cluster needed): the detail panel's open drift, and the page
when the daemon refuses it an event stream."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from reconciler.fields import FieldChange
from reconciler.store.db import Store
from reconciler.store.rows import State, StatusRow
from reconciler.web.model import ClusterInfo, Fleet
from tests.browser import headless_chromium, wait_for
from tests.webstore import fetched_state, record_open_drift_behind_corrected, served

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SHA = "1bf2028cdf11aa0000000000000000000000beef"
FLEET = Fleet((ClusterInfo("c1"),), "1")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with headless_chromium() as chrome:
        yield chrome


def change() -> list[FieldChange]:
    return [FieldChange("data.v", "1", "2", "kubectl-edit", T0)]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    state = fetched_state(tmp_path / "state", SHA, T0)
    with Store.open(state) as store:
        record_open_drift_behind_corrected(store, SHA, T0, change())
    return state


def test_the_detail_panel_shows_an_open_drift_behind_newer_corrected_ones(
    browser: WebDriver, state: Path
) -> None:
    with served(state, FLEET) as url:
        browser.get(f"{url}/?target=web/c1")

        def drift_heading(b: WebDriver) -> str | None:
            headings = b.find_elements(By.CSS_SELECTOR, "#detail h3")
            return next((str(h.text) for h in headings if h.text.startswith("Open drift")), None)

        assert wait_for(browser, drift_heading, "the detail panel") == "Open drift (1)"
        assert "ConfigMap/demo/old" in browser.find_element(By.ID, "detail").text


def test_a_page_refused_an_event_stream_polls_and_still_follows_changes(
    browser: WebDriver, state: Path
) -> None:
    with served(state, FLEET, max_streams=0) as url:
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
