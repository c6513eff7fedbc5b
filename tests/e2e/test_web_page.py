"""The fleet page in a real headless browser (Debian's chromium, driven by selenium), served by a
real `reconciler run` on the e2e clusters that run workloads (so health is real too).

Screenshots are written to ``$RECONCILER_TEST_ARTIFACTS`` (default ``test-artifacts/`` in the
repo, git-ignored); each test prints where.
"""

from __future__ import annotations

import json
import os
import re
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
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from reconciler.devenv import binaries
from tests.browser import headless_chromium, wait_for
from tests.configrepo import (
    configmap,
    secret,
    unique,
    write_app,
    write_clusters,
)
from tests.e2e import workload_waits as waits

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("RECONCILER_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
GIT_PASSWORD = "git-s3cret-value"
LIVE_PASSWORD = "live-s3cret-value"
START = 180.0  # a daemon's start and first passes over five clusters, on a loaded machine


LABELS = {
    "fleet-1": {"region": "cn-beijing"},
    "fleet-2": {"region": "cn-beijing"},
    "fleet-3": {"region": "us-west", "provider": "AWS"},
    "fleet-4": {"region": "us-west", "provider": "AWS"},
    "fleet-5": {"region": "eu"},
}
EVERYWHERE = {"clusters": list(LABELS)}
FAILED_ON, DEGRADED_ON, DRIFTED_ON = "fleet-3", "fleet-4", "fleet-2"


@dataclass
class Served:
    """A daemon serving the page for four apps on the five workload clusters."""

    url: str
    namespace: str
    web: str  # a Deployment and a Secret, selfHeal off: drift stays open
    cfg: str  # a ConfigMap
    bad: str  # fails on FAILED_ON (the API server rejects a ConfigMap key)
    sick: str  # a Deployment whose image fails on DEGRADED_ON: Synced but Degraded
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


def _until(check: Callable[[], Any], timeout: float, what: str | Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not within {timeout:g}s: {what if isinstance(what, str) else what()}"
            )
        time.sleep(0.2)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, fleet_kubeconfig: Path) -> Iterator[Served]:
    """`reconciler run` on a config repo of four apps over the five workload clusters."""
    tmp = tmp_path_factory.mktemp("web")
    root, state, log = tmp / "repo", tmp / "state", tmp / "daemon.log"
    namespace = unique("page")
    web, cfg, bad, sick = unique("web"), unique("cfg"), unique("bad"), unique("sick")
    write_clusters(root, LABELS)
    write_app(
        root,
        web,
        [waits.deployment(web, replicas=2), secret(f"{web}-creds", GIT_PASSWORD)],
        namespace=namespace,
        placement=EVERYWHERE,
        sync={"selfHeal": False},
    )
    write_app(root, cfg, [configmap(cfg, {"v": "1"})], namespace=namespace, placement=EVERYWHERE)
    write_app(
        root,
        bad,
        [configmap(bad, {"v": "1"})],
        namespace=namespace,
        placement=EVERYWHERE,
        overrides=[
            {
                "name": "invalid-here",
                "target": {"clusters": [FAILED_ON]},
                "patches": [
                    {"target": {"kind": "ConfigMap"}, "merge": {"data": {"not a key!": "x"}}}
                ],
            }
        ],
    )
    write_app(
        root,
        sick,
        [waits.deployment(sick, replicas=2, progress_deadline=3)],
        namespace=namespace,
        placement=EVERYWHERE,
        overrides=[
            {
                "name": "failing-image-here",
                "target": {"clusters": [DEGRADED_ON]},
                "images": [{"name": waits.IMAGE.split(":")[0], "newTag": "fail"}],
            }
        ],
    )
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "three apps")
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run", "--repo", str(root),
             "--state-dir", str(state), "--kubeconfig", str(fleet_kubeconfig), "--instance", web,
             "--listen", "127.0.0.1:0", "--interval", "1s", "--drift-interval", "1s"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip
    try:
        port = _until(
            lambda: next((e["port"] for e in _events(log) if "port" in e), None),
            START,
            "the daemon listens",
        )
        url = f"http://127.0.0.1:{port}"

        def settled() -> bool:
            targets = _get_json(f"{url}/api/status")["targets"]
            seen.append(sorted((t["app"], t["cluster"], t["state"], t["message"]) for t in targets))
            return len(targets) == 20 and all(t["state"] in ("Synced", "Failed") for t in targets)

        seen: list[Any] = []
        _until(settled, START, lambda: f"every target synced or failed: {seen[-1:]}")
        yield Served(url, namespace, web, cfg, bad, sick, fleet_kubeconfig)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with headless_chromium("--window-size=1400,1000", "--force-device-scale-factor=1") as chrome:
        yield chrome


def screenshot(browser: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    browser.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


_MATRIX_JS = """
const cells = {};
for (const el of document.querySelectorAll('#matrix .cell')) {
  cells[el.dataset.app + '/' + el.dataset.cluster] = {state: el.dataset.state, text: el.innerText};
}
for (const el of document.querySelectorAll('#matrix .group-cell')) {
  cells[el.dataset.app + '/' + el.dataset.group] = {state: el.dataset.worst, text: el.innerText};
}
return {
  rows: [...document.querySelectorAll('#matrix tbody tr[data-app]')].map(r => r.dataset.app),
  columns: [...document.querySelectorAll('#matrix thead th:not(.app)')]
    .map(c => c.dataset.cluster || c.dataset.group),
  cells: cells,
};
"""


def matrix(browser: WebDriver) -> dict[str, Any]:
    """Rows, columns and cells (state and visible text) of the matrix, read in one go."""
    return dict(browser.execute_script(_MATRIX_JS))


def rows(browser: WebDriver) -> list[str]:
    return list(matrix(browser)["rows"])


def columns(browser: WebDriver) -> list[str]:
    return list(matrix(browser)["columns"])


def cell_state(app: str, cluster: str) -> Callable[[WebDriver], str | None]:
    def check(browser: WebDriver) -> str | None:
        found = matrix(browser)["cells"].get(f"{app}/{cluster}")
        return found["state"] if found else None

    return check


def click(browser: WebDriver, css: str) -> None:
    """Click what ``css`` selects, again if a redraw replaced it in between."""

    def clicked(b: WebDriver) -> bool:
        b.find_element(By.CSS_SELECTOR, css).click()
        return True

    wait_for(browser, clicked, f"click {css}")


def detail_text(title: str) -> Callable[[WebDriver], str | None]:
    """The detail panel's text once it shows ``title`` (the panel stays, its content redraws)."""

    def check(browser: WebDriver) -> str | None:
        text = str(browser.find_element(By.ID, "detail").text)
        return text if title in text else None

    return check


def drift_rows(browser: WebDriver) -> dict[str, str]:
    """Object -> visible text of each row of the open drift table."""
    return dict(
        browser.execute_script(
            "return Object.fromEntries([...document.querySelectorAll('#drift tr[data-object]')]"
            ".map(r => [r.dataset.object, r.innerText]))"
        )
    )


def select(browser: WebDriver, element_id: str, value: str) -> None:
    def selected(b: WebDriver) -> bool:
        Select(b.find_element(By.ID, element_id)).select_by_value(value)
        return True

    wait_for(browser, selected, f"select {value} in #{element_id}")


def open_page(browser: WebDriver, served: Served, query: str = "") -> None:
    browser.get(f"{served.url}/{query}")
    wait_for(browser, lambda b: rows(b), "the matrix")


def test_the_page_shows_every_app_on_every_cluster_with_state_as_text_and_the_source(
    served: Served, browser: WebDriver
) -> None:
    open_page(browser, served)

    shown = matrix(browser)
    assert sorted(shown["rows"]) == sorted([served.web, served.cfg, served.bad, served.sick])
    assert shown["columns"] == list(LABELS)
    for app in (served.web, served.cfg):
        for cluster in shown["columns"]:
            found = shown["cells"][f"{app}/{cluster}"]
            assert found["state"] == "Synced"
            assert "Synced" in found["text"]  # the state is written, not only coloured
    source = browser.find_element(By.ID, "source").text
    assert "branch main" in source
    assert "last fetch" in source
    revision = _get_json(f"{served.url}/api/status")["revision"]["sha"]
    assert revision[:12] in source
    assert "live" in browser.find_element(By.ID, "live").text
    screenshot(browser, "page-matrix.png")


def test_a_failed_target_shows_its_error_in_the_detail(served: Served, browser: WebDriver) -> None:
    open_page(browser, served)
    assert wait_for(browser, cell_state(served.bad, FAILED_ON), "the bad cell") == "Failed"
    shown = matrix(browser)["cells"]
    assert shown[f"{served.bad}/fleet-1"]["state"] == "Synced"
    assert "Failed" in shown[f"{served.bad}/{FAILED_ON}"]["text"]

    click(browser, f'.cell[data-app="{served.bad}"][data-cluster="{FAILED_ON}"]')
    text = wait_for(browser, detail_text(f"{served.bad} on {FAILED_ON}"), "the detail panel")
    assert "Last error" in text
    assert "not a key!" in text
    assert "target=" in browser.current_url  # the open detail survives a reload
    screenshot(browser, "page-failed-target.png")

    click(browser, f'.cell[data-app="{served.cfg}"][data-cluster="fleet-1"]')
    text = wait_for(browser, detail_text(f"{served.cfg} on fleet-1"), "the synced target")
    assert "Objects (1)" in text  # from the last apply, or as the revision renders them
    assert f"ConfigMap/{served.namespace}/{served.cfg}" in text


def test_a_drift_made_with_kubectl_scale_appears_without_reload_and_secrets_stay_masked(
    served: Served, browser: WebDriver, fleet_clients: dict[str, client.ApiClient]
) -> None:
    open_page(browser, served)
    assert cell_state(served.web, DRIFTED_ON)(browser) == "Synced"
    marker = browser.execute_script("return window.performance.timeOrigin")

    kubectl = binaries.ensure("kubectl")
    subprocess.run(
        [str(kubectl), "--kubeconfig", str(served.kubeconfig), "--context", DRIFTED_ON,
         "-n", served.namespace, "scale", f"deployment/{served.web}", "--replicas=5"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    client.CoreV1Api(fleet_clients[DRIFTED_ON]).patch_namespaced_secret(
        f"{served.web}-creds",
        served.namespace,
        {"stringData": {"password": LIVE_PASSWORD}},
        field_manager="kubectl-edit",
    )

    wait_for(browser, lambda b: cell_state(served.web, DRIFTED_ON)(b) == "Drifted", "Drifted")
    scaled = wait_for(
        browser,
        lambda b: drift_rows(b).get(f"Deployment.apps/{served.namespace}/{served.web}"),
        "the scale in the drift table",
    )
    assert "spec.replicas" in scaled
    assert "Git 2" in scaled and "live 5" in scaled
    assert "kubectl" in scaled  # the manager that changed it
    assert browser.execute_script("return window.performance.timeOrigin") == marker  # no reload
    edited = wait_for(
        browser,
        lambda b: drift_rows(b).get(f"Secret/{served.namespace}/{served.web}-creds"),
        "the Secret's drift",
    )
    assert "(masked)" in edited
    screenshot(browser, "page-drift.png")

    for text in (browser.page_source, *(_raw(served, p) for p in API_PATHS)):
        assert GIT_PASSWORD not in text and LIVE_PASSWORD not in text


API_PATHS = ("/api/status", "/api/drift", "/api/page", f"/api/targets/{{web}}/{DRIFTED_ON}")


def _raw(served: Served, path: str) -> str:
    with urllib.request.urlopen(served.url + path.format(web=served.web), timeout=5) as response:
        return str(response.read().decode())


def test_filters_narrow_by_app_cluster_and_label_and_columns_group_by_a_label(
    served: Served, browser: WebDriver
) -> None:
    open_page(browser, served)

    app_filter = browser.find_element(By.ID, "f-app")
    app_filter.send_keys(served.cfg)
    wait_for(browser, lambda b: rows(b) == [served.cfg], "only the cfg row")
    assert f"app={served.cfg}" in browser.current_url

    click(browser, "#f-clear")
    wait_for(browser, lambda b: len(rows(b)) == 4, "every row again")

    browser.find_element(By.ID, "f-cluster").send_keys("fleet-5")
    wait_for(browser, lambda b: columns(b) == ["fleet-5"], "the fleet-5 column")
    click(browser, "#f-clear")

    select(browser, "f-label", "region=us-west")
    wait_for(browser, lambda b: columns(b) == ["fleet-3", "fleet-4"], "the us-west columns")
    click(browser, "#f-clear")
    wait_for(browser, lambda b: len(columns(b)) == 5, "every column again")

    select(browser, "f-group", "region")
    wait_for(
        browser,
        lambda b: columns(b) == ["region=cn-beijing", "region=eu", "region=us-west"],
        "one column per region",
    )
    assert "1 Failed" in matrix(browser)["cells"][f"{served.bad}/region=us-west"]["text"]
    screenshot(browser, "page-grouped.png")

    click(browser, 'th[data-group="region=cn-beijing"]')
    wait_for(browser, lambda b: columns(b) == ["fleet-1", "fleet-2"], "the region's clusters")


def test_a_synced_target_whose_workload_fails_is_visibly_degraded_with_its_reason(
    served: Served, browser: WebDriver
) -> None:
    open_page(browser, served)

    key = f"{served.sick}/{DEGRADED_ON}"
    cell = wait_for(
        browser,
        lambda b: (c := matrix(b)["cells"].get(key)) and "Degraded" in c["text"] and c,
        "the Degraded cell",
    )
    assert cell["state"] == "Synced"  # applied fine: the sync state and health are apart
    assert re.search(r"Degraded \d/2", cell["text"]), cell["text"]
    assert "Healthy 2/2" in matrix(browser)["cells"][f"{served.sick}/fleet-1"]["text"]
    assert "Degraded" in browser.find_element(By.ID, "summary").text

    click(browser, f'.cell[data-app="{served.sick}"][data-cluster="{DEGRADED_ON}"]')
    text = wait_for(browser, detail_text(f"{served.sick} on {DEGRADED_ON}"), "the detail")
    assert "Degraded" in text
    assert f"Deployment.apps/{served.namespace}/{served.sick}" in text
    assert "ProgressDeadlineExceeded" in text
    screenshot(browser, "page-degraded-target.png")
