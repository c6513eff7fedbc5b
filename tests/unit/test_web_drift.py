"""Open drift on the page and in a target's detail, over real HTTP on loopback and a real store:
every open record counted (not only those read), open ones never pushed out by newer closed
ones."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.fields import FieldChange
from reconciler.store.db import Store
from reconciler.store.rows import State, StatusRow
from reconciler.web.model import MAX_DRIFT, ClusterInfo, Fleet
from reconciler.web.snapshot import OPEN_DRIFT_LIMIT
from tests.webstore import fetched_state, record_open_drift_behind_corrected, served

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SHA = "1bf2028cdf11aa0000000000000000000000beef"
FLEET = Fleet((ClusterInfo("c1"), ClusterInfo("c2")), "1")


def change() -> list[FieldChange]:
    return [FieldChange("data.v", "1", "2", "kubectl-edit", T0)]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return fetched_state(tmp_path / "state", SHA, T0)


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_a_target_detail_shows_its_old_open_drift_behind_25_newer_corrected_ones(
    state: Path,
) -> None:
    with Store.open(state) as store:
        # a flapping object: drifted, corrected, again and again
        record_open_drift_behind_corrected(store, SHA, T0, change())

    with served(state, FLEET) as base:
        detail = get(f"{base}/api/targets/web/c1")

    assert detail["target"]["state"] == "Drifted"
    assert [r["object"] for r in detail["drift"]] == ["ConfigMap/demo/old"]
    assert detail["drift_total"] == 1


def test_a_target_detail_counts_open_drift_beyond_what_it_lists(state: Path) -> None:
    with Store.open(state) as store, store.batch():
        store.set_status(StatusRow("web", "c1", State.DRIFTED, "drift", SHA, T0, T0))
        for i in range(MAX_DRIFT + 5):
            at = T0 + timedelta(seconds=i)
            store.record_drift("web", "c1", f"ConfigMap/demo/x{i}", "modified", change(), SHA, at)

    with served(state, FLEET) as base:
        detail = get(f"{base}/api/targets/web/c1")

    assert detail["drift_total"] == MAX_DRIFT + 5
    assert len(detail["drift"]) == MAX_DRIFT
    assert detail["drift"][0]["object"] == f"ConfigMap/demo/x{MAX_DRIFT + 4}"  # newest first


def test_the_page_counts_every_open_drift_record_and_lists_the_newest(state: Path) -> None:
    extra = 101
    with Store.open(state) as store, store.batch():
        store.set_status(StatusRow("web", "c2", State.DRIFTED, "drift", SHA, T0, T0))
        # the oldest open record, far behind the newest OPEN_DRIFT_LIMIT of the fleet
        store.record_drift("web", "c2", "ConfigMap/demo/old", "modified", change(), SHA, T0)
        for i in range(OPEN_DRIFT_LIMIT + extra):
            at = T0 + timedelta(seconds=i + 1)
            store.record_drift(f"app{i}", "c1", "ConfigMap/demo/y", "modified", change(), SHA, at)

    with served(state, FLEET) as base:
        page = get(f"{base}/api/page")
        narrowed = get(f"{base}/api/page?app=web")

    assert page["drift"]["total"] == OPEN_DRIFT_LIMIT + extra + 1
    assert len(page["drift"]["records"]) == MAX_DRIFT
    newest = f"app{OPEN_DRIFT_LIMIT + extra - 1}"
    assert page["drift"]["records"][0]["app"] == newest
    # Filtered to the app whose only record is older than the newest the snapshot holds.
    assert narrowed["drift"]["total"] == 1
    assert [r["object"] for r in narrowed["drift"]["records"]] == ["ConfigMap/demo/old"]
