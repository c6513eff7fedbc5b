"""The fleet page in a real headless browser (Debian's chromium, driven by selenium), served by a
real `reconciler run` on real API servers.

Screenshots are written to ``$RECONCILER_TEST_ARTIFACTS`` (default ``test-artifacts/`` in the
repo, git-ignored); each test prints where.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from reconciler.devenv import binaries
from tests.configrepo import (
    configmap,
    deployment,
    secret,
    unique,
    write_app,
    write_clusters,
)

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("RECONCILER_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
GIT_PASSWORD = "git-s3cret-value"
LIVE_PASSWORD = "live-s3cret-value"
WAIT = 40.0


@dataclass
class Fleet:
    url: str
    namespace: str
    web: str  # a Deployment and a Secret, selfHeal off: drift stays open
    cfg: str  # a ConfigMap
    bad: str  # fails on us-west-1 (the API server rejects a ConfigMap key)
    kubeconfig: Path


def _git(root: Path, *args: str) -> None:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.test"]
    subprocess.run(["git", "-C", str(root), *identity, *args], check=True, capture_output=True)


def _events(log: Path) -> list[dict[str, Any]]:
    events = []
    for line in log.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout:g}s: {what}"
        time.sleep(0.2)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory,
    kubeconfig: Path,
    api_clients: dict[str, client.ApiClient],
) -> Iterator[Fleet]:
    """`reconciler run` on a config repo of three apps over the three e2e clusters."""
    tmp = tmp_path_factory.mktemp("web")
    root, state, log = tmp / "repo", tmp / "state", tmp / "daemon.log"
    namespace = unique("page")
    web, cfg, bad = unique("web"), unique("cfg"), unique("bad")
    write_clusters(root)
    write_app(
        root,
        web,
        [deployment(web, replicas=2), secret(f"{web}-creds", GIT_PASSWORD)],
        namespace=namespace,
        sync={"selfHeal": False},
    )
    write_app(root, cfg, [configmap(cfg, {"v": "1"})], namespace=namespace)
    write_app(
        root,
        bad,
        [configmap(bad, {"v": "1"})],
        namespace=namespace,
        overrides=[
            {
                "name": "invalid-on-us-west",
                "target": {"clusters": ["us-west-1"]},
                "patches": [
                    {"target": {"kind": "ConfigMap"}, "merge": {"data": {"not a key!": "x"}}}
                ],
            }
        ],
    )
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "three apps")
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run", "--repo", str(root),
             "--state-dir", str(state), "--kubeconfig", str(kubeconfig), "--instance", web,
             "--listen", "127.0.0.1:0", "--interval", "1s", "--drift-interval", "1s"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip
    try:
        port = _until(
            lambda: next((e["port"] for e in _events(log) if "port" in e), None),
            WAIT,
            "the daemon listens",
        )
        url = f"http://127.0.0.1:{port}"

        def settled() -> bool:
            targets = _get_json(f"{url}/api/status")["targets"]
            return len(targets) == 9 and all(t["state"] in ("Synced", "Failed") for t in targets)

        _until(settled, WAIT, "every target synced or failed")
        yield Fleet(url, namespace, web, cfg, bad, kubeconfig)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("chromium and chromedriver are needed: `make browser` installs Debian's")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield chrome
    finally:
        chrome.quit()


def screenshot(browser: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    browser.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def wait_for(browser: WebDriver, check: Callable[[WebDriver], Any], what: str) -> Any:
    return WebDriverWait(browser, WAIT, poll_frequency=0.2).until(check, message=what)


def cell(browser: WebDriver, app: str, cluster: str) -> WebElement | None:
    found = browser.find_elements(
        By.CSS_SELECTOR, f'.cell[data-app="{app}"][data-cluster="{cluster}"]'
    )
    return found[0] if found else None


def cell_state(app: str, cluster: str) -> Callable[[WebDriver], str | None]:
    def check(browser: WebDriver) -> str | None:
        found = cell(browser, app, cluster)
        return found.get_attribute("data-state") if found else None

    return check


def open_page(browser: WebDriver, fleet: Fleet, query: str = "") -> None:
    browser.get(f"{fleet.url}/{query}")
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#matrix tbody tr"), "matrix")


def rows(browser: WebDriver) -> list[str]:
    return [
        str(r.get_attribute("data-app"))
        for r in browser.find_elements(By.CSS_SELECTOR, "#matrix tbody tr[data-app]")
    ]


def columns(browser: WebDriver) -> list[str]:
    return [
        str(c.get_attribute("data-cluster") or c.get_attribute("data-group"))
        for c in browser.find_elements(By.CSS_SELECTOR, "#matrix thead th:not(.app)")
    ]


def test_the_page_shows_every_app_on_every_cluster_with_state_as_text_and_the_source(
    fleet: Fleet, browser: WebDriver
) -> None:
    open_page(browser, fleet)

    assert sorted(rows(browser)) == sorted([fleet.web, fleet.cfg, fleet.bad])
    assert columns(browser) == ["beijing-1", "beijing-2", "us-west-1"]
    for app in (fleet.web, fleet.cfg):
        for cluster in columns(browser):
            found = cell(browser, app, cluster)
            assert found is not None
            assert "Synced" in found.text  # the state is written, not only coloured
    source = browser.find_element(By.ID, "source").text
    assert "branch main" in source
    assert "last fetch" in source
    revision = _get_json(f"{fleet.url}/api/status")["revision"]["sha"]
    assert revision[:12] in source
    assert "live" in browser.find_element(By.ID, "live").text
    screenshot(browser, "page-matrix.png")


def test_a_failed_target_shows_its_error_in_the_detail(fleet: Fleet, browser: WebDriver) -> None:
    open_page(browser, fleet)
    assert wait_for(browser, cell_state(fleet.bad, "us-west-1"), "the bad cell") == "Failed"
    assert cell_state(fleet.bad, "beijing-1")(browser) == "Synced"
    failed = cell(browser, fleet.bad, "us-west-1")
    assert failed is not None
    assert "Failed" in failed.text

    failed.click()
    message = wait_for(
        browser,
        lambda b: b.find_elements(By.ID, "detail-message") and b.find_element(By.ID, "detail"),
        "the detail panel",
    )
    text = message.text
    assert f"{fleet.bad} on us-west-1" in text
    assert "Last error" in text
    assert "not a key!" in browser.find_element(By.ID, "detail-message").text
    assert "target=" in browser.current_url  # the open detail survives a reload
    screenshot(browser, "page-failed-target.png")

    synced = cell(browser, fleet.cfg, "beijing-1")
    assert synced is not None
    synced.click()
    objects = wait_for(
        browser,
        lambda b: b.find_elements(By.CSS_SELECTOR, "#detail-objects li"),
        "the objects of a synced target",
    )
    assert f"ConfigMap/{fleet.namespace}/{fleet.cfg}" in [o.text for o in objects]


def test_a_drift_made_with_kubectl_scale_appears_without_reload_and_secrets_stay_masked(
    fleet: Fleet, browser: WebDriver, api_clients: dict[str, client.ApiClient]
) -> None:
    open_page(browser, fleet)
    assert cell_state(fleet.web, "beijing-2")(browser) == "Synced"
    marker = browser.execute_script("return window.performance.timeOrigin")

    kubectl = binaries.ensure("kubectl")
    subprocess.run(
        [str(kubectl), "--kubeconfig", str(fleet.kubeconfig), "--context", "beijing-2",
         "-n", fleet.namespace, "scale", f"deployment/{fleet.web}", "--replicas=5"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    client.CoreV1Api(api_clients["beijing-2"]).patch_namespaced_secret(
        f"{fleet.web}-creds",
        fleet.namespace,
        {"stringData": {"password": LIVE_PASSWORD}},
        field_manager="kubectl-edit",
    )

    wait_for(browser, lambda b: cell_state(fleet.web, "beijing-2")(b) == "Drifted", "Drifted")
    deployment_row = wait_for(
        browser,
        lambda b: b.find_elements(
            By.CSS_SELECTOR, f'#drift tr[data-object="Deployment/{fleet.namespace}/{fleet.web}"]'
        ),
        "the scale in the drift table",
    )[0]
    assert "spec.replicas" in deployment_row.text
    assert "Git 2" in deployment_row.text and "live 5" in deployment_row.text
    assert "kubectl" in deployment_row.text  # the manager that changed it
    assert browser.execute_script("return window.performance.timeOrigin") == marker  # no reload
    secret_row = wait_for(
        browser,
        lambda b: b.find_elements(
            By.CSS_SELECTOR, f'#drift tr[data-object="Secret/{fleet.namespace}/{fleet.web}-creds"]'
        ),
        "the Secret's drift",
    )[0]
    assert "(masked)" in secret_row.text
    screenshot(browser, "page-drift.png")

    for text in (browser.page_source, *(_raw(fleet, p) for p in API_PATHS)):
        assert GIT_PASSWORD not in text and LIVE_PASSWORD not in text


API_PATHS = ("/api/status", "/api/drift", "/api/page", "/api/targets/{web}/beijing-2")


def _raw(fleet: Fleet, path: str) -> str:
    with urllib.request.urlopen(fleet.url + path.format(web=fleet.web), timeout=5) as response:
        return str(response.read().decode())


def test_filters_narrow_by_app_cluster_and_label_and_columns_group_by_a_label(
    fleet: Fleet, browser: WebDriver
) -> None:
    open_page(browser, fleet)

    app_filter = browser.find_element(By.ID, "f-app")
    app_filter.send_keys(fleet.cfg)
    wait_for(browser, lambda b: rows(b) == [fleet.cfg], "only the cfg row")
    assert f"app={fleet.cfg}" in browser.current_url

    browser.find_element(By.ID, "f-clear").click()
    wait_for(browser, lambda b: len(rows(b)) == 3, "every row again")

    browser.find_element(By.ID, "f-cluster").send_keys("beijing")
    wait_for(browser, lambda b: columns(b) == ["beijing-1", "beijing-2"], "beijing columns")
    browser.find_element(By.ID, "f-clear").click()

    Select(browser.find_element(By.ID, "f-label")).select_by_value("region=us-west")
    wait_for(browser, lambda b: columns(b) == ["us-west-1"], "the us-west column")
    browser.find_element(By.ID, "f-clear").click()
    wait_for(browser, lambda b: len(columns(b)) == 3, "every column again")

    Select(browser.find_element(By.ID, "f-group")).select_by_value("region")
    wait_for(
        browser,
        lambda b: columns(b) == ["region=cn-beijing", "region=us-west"],
        "one column per region",
    )
    group = browser.find_element(
        By.CSS_SELECTOR, f'.group-cell[data-app="{fleet.bad}"][data-group="region=us-west"]'
    )
    assert "1 Failed" in group.text
    screenshot(browser, "page-grouped.png")

    browser.find_element(By.CSS_SELECTOR, 'th[data-group="region=cn-beijing"]').click()
    wait_for(browser, lambda b: columns(b) == ["beijing-1", "beijing-2"], "the region's clusters")
