"""Debian's headless chromium, driven by selenium, for the tests of the fleet page."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 60.0  # the page follows a change within a second or two; the machine may be busy


@contextmanager
def headless_chromium(*arguments: str) -> Iterator[WebDriver]:
    """Chromium headless, with ``arguments`` added to the ones every test needs."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("chromium and chromedriver are needed: `make browser` installs Debian's")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    for arg in arguments:
        options.add_argument(arg)
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield chrome
    finally:
        chrome.quit()


def wait_for(browser: WebDriver, check: Callable[[WebDriver], Any], what: str) -> Any:
    """Poll ``check``; the page redraws on every change, so an element found a moment ago may
    be gone (stale): that is one more poll, not a failure."""
    wait = WebDriverWait(
        browser, WAIT, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(check, message=what)
