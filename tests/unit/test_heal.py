"""A one-shot heal (`reconciler apply --heal`): what it prints, and how the daemon's drift record
keeps who healed it and when."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.engine import TargetOutcome
from reconciler.fields import Drift, FieldChange
from reconciler.objects import ObjectRef
from reconciler.outcomes import healed_objects, healed_text
from reconciler.report import drift_document, drift_markdown, drift_table
from reconciler.store.db import Store
from reconciler.sync.model import Action, ApplyResult, Change, TargetPlan

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
WEB = ObjectRef("apps", "Deployment", "demo", "web")
CONFIG = ObjectRef("", "ConfigMap", "demo", "web")
GONE = ObjectRef("", "ConfigMap", "demo", "gone")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "state") as opened:
        yield opened


def _outcome() -> TargetOutcome:
    replicas = FieldChange("spec.replicas", 3, 5, "kubectl-scale", T0)
    image = FieldChange("spec.template.spec.containers[0].image", "web:2", "web:1")
    drifted = Change(WEB, Action.UPDATE, {}, "apps/v1", [replicas, image], drift=Drift.MODIFIED)
    drifted.drift_paths = frozenset({"spec.replicas"})  # the image is Git's own change
    missing = Change(GONE, Action.CREATE, {}, "v1", drift=Drift.MISSING)
    plain = Change(CONFIG, Action.UPDATE, {}, "v1", [FieldChange("data.a", "1", "2")])
    plan = TargetPlan("web", "c1", "abc", [drifted, missing, plain], {}, None, {})
    result = ApplyResult("web", "c1", "abc", created=[GONE], configured=[WEB, CONFIG])
    result.corrected = [WEB, GONE]
    return TargetOutcome("web", "c1", plan=plan, result=result)


def test_a_heal_lists_each_drifted_field_live_value_then_git() -> None:
    text = healed_text([_outcome()], color=False)
    assert text.splitlines() == [
        "healed 1 field on Deployment.apps/demo/web (app web, cluster c1):",
        "  spec.replicas: live 5 → git 3 (live set by kubectl-scale at 2026-11-22T12:00:00Z)",
        "healed ConfigMap/demo/gone (app web, cluster c1): re-created",
    ]
    assert healed_objects([_outcome()]) == [
        ("web", "c1", "Deployment.apps/demo/web"),
        ("web", "c1", "ConfigMap/demo/gone"),
    ]


def test_a_heal_with_no_drift_says_so() -> None:
    outcome = _outcome()
    assert outcome.result is not None
    outcome.result.corrected = []
    assert healed_text([outcome], color=False) == "nothing to heal: no drift found"


def test_a_healed_record_is_closed_and_names_who_healed_it_and_when(store: Store) -> None:
    fields = [FieldChange("spec.replicas", 3, 5, "kubectl-scale", T0)]
    row = store.record_drift("web", "c1", "Deployment.apps/demo/web", "modified", fields, "abc", T0)
    healed_at = T0 + timedelta(minutes=5)

    assert store.mark_healed([row.id], "alice", healed_at) == 1

    (healed,) = store.list_drift()
    assert (healed.healed_by, healed.healed_at, healed.corrected_at) == (
        "alice",
        healed_at,
        healed_at,
    )
    assert not healed.open
    assert "2026-11-22T12:05:00Z healed by alice" in drift_table([healed], color=False)
    (doc,) = drift_document([healed])
    assert (doc["healed_by"], doc["healed_at"]) == ("alice", "2026-11-22T12:05:00Z")
    assert "healed by alice at 2026-11-22T12:05:00Z" in drift_markdown([healed])


def test_a_record_the_daemon_closed_meanwhile_keeps_its_time_and_is_marked(store: Store) -> None:
    row = store.record_drift("web", "c1", "Deployment.apps/demo/web", "modified", [], "abc", T0)
    closed_at = T0 + timedelta(minutes=1)
    assert store.mark_corrected(row.id, closed_at)

    assert store.mark_healed([row.id], "alice", T0 + timedelta(minutes=2)) == 1

    (healed,) = store.list_drift()
    assert (healed.corrected_at, healed.healed_by) == (closed_at, "alice")


def test_records_the_daemon_closed_by_itself_name_no_healer(store: Store) -> None:
    row = store.record_drift("web", "c1", "Deployment.apps/demo/web", "modified", [], "abc", T0)
    store.mark_corrected(row.id, T0)
    (closed,) = store.list_drift()
    assert (closed.healed_by, closed.healed_at) == (None, None)
    assert drift_document([closed])[0]["healed_by"] is None
