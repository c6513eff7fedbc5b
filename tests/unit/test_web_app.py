"""The HTTP application on a real store: JSON API equal to the CLI's, the page, probes, metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, Counter
from starlette.testclient import TestClient

from reconciler.cli.main import cli
from reconciler.fields import FieldChange
from reconciler.store.db import Store
from reconciler.store.rows import State, StatusRow
from reconciler.web.app import create_app
from reconciler.web.model import ClusterInfo, Fleet
from reconciler.web.snapshot import SnapshotCache
from tests.webstore import fetched_state

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SHA = "1bf2028cdf11aa0000000000000000000000beef"


class Flags:
    ready = True
    healthy = True


@pytest.fixture
def state(tmp_path: Path) -> Path:
    state = fetched_state(tmp_path / "state", SHA, NOW)
    with Store.open(state) as store:
        store.set_status(StatusRow("web", "beijing-1", State.SYNCED, "created 2", SHA, NOW, NOW))
        store.set_status(StatusRow("web", "us-west-1", State.FAILED, "boom", SHA, NOW))
        store.record_applied("web", "beijing-1", SHA, ["ConfigMap/demo/web"], NOW)
        store.record_drift(
            "web",
            "beijing-1",
            "Secret/demo/creds",
            "modified",
            [FieldChange("data.password", "(masked)", "(masked)", "kubectl-edit", NOW)],
            SHA,
            NOW,
        )
        closed = store.record_drift(
            "web",
            "us-west-1",
            "ConfigMap/demo/web",
            "modified",
            [FieldChange("data.v", "1", "2", "kubectl-edit", NOW)],
            SHA,
            NOW,
        )
        store.mark_corrected(closed.id, NOW)
    return state


@pytest.fixture
def flags() -> Flags:
    return Flags()


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("reconciler_git_errors", "Failed fetches.", registry=registry).inc()
    return registry


@pytest.fixture
def client(state: Path, flags: Flags, registry: CollectorRegistry) -> Iterator[TestClient]:
    fleet = Fleet((ClusterInfo("beijing-1", {"region": "cn"}), ClusterInfo("us-west-1")), "1")
    with Store.open_readonly(state) as store:
        cache = SnapshotCache(store, lambda: fleet, daemon_running=None, max_age=0)
        app = create_app(
            cache,
            registry,
            ready=lambda: flags.ready,
            healthy=lambda: flags.healthy,
            stream_lifetime=0.3,
            stream_poll=0.05,
        )
        with TestClient(app) as client:
            yield client


def cli_json(*args: str) -> object:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.output)


def test_api_status_is_what_status_o_json_prints(client: TestClient, state: Path) -> None:
    response = client.get("/api/status")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    expected = cli_json("status", "--state-dir", str(state), "-o", "json")
    assert isinstance(expected, dict)
    expected["daemon_running"] = None  # the CLI looks for the daemon's lock; the page is in it
    assert response.json() == expected


@pytest.mark.parametrize(
    ("query", "args"),
    [
        ("", []),
        ("?open=1", ["--open"]),
        ("?app=web&cluster=us-west-1", ["--app", "web", "--cluster", "us-west-1"]),
        ("?since=2026-11-22T11:00:00Z", ["--since", "2026-11-22T11:00:00Z"]),
    ],
)
def test_api_drift_is_what_drift_o_json_prints(
    client: TestClient, state: Path, query: str, args: list[str]
) -> None:
    response = client.get(f"/api/drift{query}")

    assert response.status_code == 200
    assert response.json() == cli_json("drift", "--state-dir", str(state), "-o", "json", *args)


def test_a_bad_since_is_a_400_naming_it(client: TestClient) -> None:
    response = client.get("/api/drift?since=yesterday")
    assert response.status_code == 400
    assert "since='yesterday'" in response.text


def test_api_page_has_the_matrix_source_and_open_drift_with_masked_secrets(
    client: TestClient,
) -> None:
    page = client.get("/api/page").json()

    assert page["source"]["branch"] == "main"
    assert page["revision"]["sha"] == SHA
    assert page["matrix"]["cells"]["web"]["us-west-1"]["state"] == "Failed"
    assert page["matrix"]["label_keys"] == {"region": ["cn"]}
    assert [r["object"] for r in page["drift"]["records"]] == ["Secret/demo/creds"]
    field = page["drift"]["records"][0]["fields"][0]
    assert (field["before"], field["after"]) == ("(masked)", "(masked)")

    narrowed = client.get("/api/page", params={"label": "region=cn"}).json()
    assert [c["id"] for c in narrowed["matrix"]["columns"]] == ["beijing-1"]


def test_api_target_has_status_objects_and_drift(client: TestClient) -> None:
    detail = client.get("/api/targets/web/beijing-1").json()

    assert detail["target"]["message"] == "created 2"
    assert detail["objects"] == ["ConfigMap/demo/web"]
    assert detail["applied"] == SHA
    assert detail["labels"] == {"region": "cn"}
    assert [d["object"] for d in detail["drift"]] == ["Secret/demo/creds"]

    missing = client.get("/api/targets/web/nowhere")
    assert missing.status_code == 404
    assert "app web has no status on cluster nowhere" in missing.text


def test_the_page_and_its_assets_ship_in_the_package_and_load_nothing_from_elsewhere(
    client: TestClient,
) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    for path in files("reconciler.web").joinpath("static").iterdir():
        text = path.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), path.name


def test_probes_answer_and_follow_the_daemon(client: TestClient, flags: Flags) -> None:
    assert (client.get("/healthz").status_code, client.get("/readyz").status_code) == (200, 200)
    flags.ready, flags.healthy = False, False
    assert client.get("/readyz").status_code == 503
    assert client.get("/readyz").text == "no valid config loaded yet\n"
    assert client.get("/healthz").status_code == 503


def test_metrics_negotiate_openmetrics_and_default_to_the_text_format(
    client: TestClient,
) -> None:
    text = client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    assert "reconciler_git_errors_total 1.0" in text.text.splitlines()

    om = client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")
    assert "reconciler_git_errors_total 1.0" in om.text.splitlines()


def test_an_unknown_path_is_a_404_that_names_the_routes(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert "/api/status" in response.text


def test_events_announce_the_current_version_at_once(client: TestClient) -> None:
    version = client.get("/api/page").json()["version"]

    with client.stream("GET", "/api/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        body = "".join(stream.iter_text())  # the stream ends after its (short) lifetime

    assert f"event: change\ndata: {version}\n\n" in body


def test_the_snapshot_is_read_again_only_when_the_store_changed(state: Path) -> None:
    now = [0.0]
    with Store.open(state) as writer, Store.open_readonly(state) as reader:
        cache = SnapshotCache(reader, max_age=1.0, clock=lambda: now[0])
        first = cache.get()
        writer.set_status(StatusRow("web", "beijing-2", State.SYNCED, "", SHA, NOW, NOW))

        assert cache.get() is first  # within max_age: the same snapshot, no read
        now[0] += 1.5
        second = cache.get()
        assert second is not first
        assert second.version != first.version
        assert second.target("web", "beijing-2") is not None

        now[0] += 1.5
        assert cache.get() is second  # nothing changed: no read either
