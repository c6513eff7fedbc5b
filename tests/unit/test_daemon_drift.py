"""The daemon's drift history: recorded once, closed when gone, stamped, pruned by age."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import repo_snippets as snip

from reconciler.fields import Drift, FieldChange
from reconciler.store.db import Store
from reconciler.store.rows import State
from reconciler.sync.model import Action, Change
from tests.unit.daemon_rig import (
    CLUSTERS,
    REF,
    SETTINGS,
    T0,
    Rig,
    configmap,
    make_rig,
    repo_files,
    series,
)


def test_drift_is_recorded_once_and_closed_when_it_is_gone(rig: Rig) -> None:
    edit = FieldChange(
        "data.value", "1", "edited", "kubectl-edit", datetime(2026, 11, 22, 11, 59, tzinfo=UTC)
    )
    change = Change(
        REF, Action.UPDATE, fields=[edit], drift=Drift.MODIFIED, managers=["kubectl-edit"]
    )
    rig.clusters.drift[("web", "beijing-1")] = [change]
    sha = rig.source.commit_files(repo_files())
    rig.tick()
    rig.clock.advance(60.0)
    rig.tick()

    (record,) = rig.store.list_drift()
    assert (record.app, record.cluster, record.object, record.revision) == (
        "web",
        "beijing-1",
        "ConfigMap/web/web",
        sha,
    )
    (f,) = record.fields
    assert (f.path, f.git, f.live, f.manager) == ("data.value", "1", "edited", "kubectl-edit")
    assert f.time == datetime(2026, 11, 22, 11, 59, tzinfo=UTC)
    assert record.open and record.detected_at == T0
    assert rig.states()[("web", "beijing-1")] is State.DRIFTED

    rig.clusters.drift.clear()
    rig.clock.advance(60.0)
    rig.tick()
    (record,) = rig.store.list_drift()
    assert record.corrected_at == T0 + timedelta(seconds=120)
    assert rig.states()[("web", "beijing-1")] is State.SYNCED


def test_a_pass_that_read_before_a_heal_by_hand_opens_no_new_record(rig: Rig) -> None:
    change = Change(REF, Action.UPDATE, drift=Drift.MODIFIED, managers=["kubectl-edit"])
    rig.clusters.drift[("web", "beijing-1")] = [change]
    rig.source.commit_files(repo_files())
    rig.tick()
    (first,) = rig.store.list_drift()
    rig.clock.advance(60.0)
    # `apply --heal` closes the record while a pass that read the object earlier is running.
    rig.store.mark_healed([first.id], "alice", rig.clock.now())
    rig.tick()
    assert [(r.id, r.open, r.healed_by) for r in rig.store.list_drift()] == [
        (first.id, False, "alice")
    ]

    rig.clock.advance(60.0)  # a pass reading after the heal still sees drift: a new record
    rig.tick()
    assert [r.open for r in rig.store.list_drift(app="web")] == [True, False]


def test_drift_undone_by_self_heal_is_closed_in_the_same_pass(rig: Rig) -> None:
    change = Change(REF, Action.UPDATE, drift=Drift.MODIFIED, managers=["kubectl-edit"])
    rig.clusters.drift[("web", "us-west-1")] = [change]
    rig.clusters.heal = True
    rig.source.commit_files(repo_files())
    rig.tick()

    (record,) = rig.store.list_drift()
    assert record.detected_at == record.corrected_at == T0
    assert rig.states()[("web", "us-west-1")] is State.SYNCED
    drifted = rig.daemon.metrics.drifted_objects.labels("web", "us-west-1")._value.get()
    assert drifted == 0


def test_a_cluster_removed_from_the_repo_closes_its_drift_and_drops_its_series(rig: Rig) -> None:
    change = Change(REF, Action.UPDATE, drift=Drift.MODIFIED, managers=["kubectl-edit"])
    rig.clusters.drift[("web", "us-west-1")] = [change]
    rig.source.commit_files(repo_files())
    rig.tick()
    rig.daemon.metrics.objects_applied.labels("us-west-1", "created").inc()
    (record,) = rig.store.list_drift()
    assert record.open and series(rig, "us-west-1")

    files = repo_files(placement="clusters: [beijing-1, beijing-2]")
    del files["clusters/us-west-1.yaml"]
    rig.source.commit_files(files)
    rig.daemon.poke()
    rig.clock.advance(1.0)
    rig.tick()

    (record,) = rig.store.list_drift()
    assert record.corrected_at == T0 + timedelta(seconds=1)
    assert series(rig, "us-west-1") == []
    assert series(rig, "beijing-1")
    assert set(rig.states()) == {("web", "beijing-1"), ("web", "beijing-2")}


def test_drift_of_a_target_on_its_previous_render_is_stamped_with_that_revision(
    rig: Rig,
) -> None:
    good = rig.source.commit_files(repo_files())
    rig.tick()
    templated = configmap("web", "${cluster.vars.zone}")
    files = repo_files(extra={"apps/web/manifests/cm.yaml": templated})
    for name in ("beijing-2", "us-west-1"):
        files[f"clusters/{name}.yaml"] = snip.cluster(name, vars="{zone: z}")
    bad = rig.source.commit_files(files)  # beijing-1 keeps good's render
    for name in CLUSTERS:
        change = Change(REF, Action.UPDATE, drift=Drift.MODIFIED, managers=["kubectl-edit"])
        rig.clusters.drift[("web", name)] = [change]
    rig.daemon.poke()
    rig.tick()

    revisions = {r.cluster: r.revision for r in rig.store.list_drift()}
    assert revisions == {"beijing-1": good, "beijing-2": bad, "us-west-1": bad}


def test_corrected_drift_older_than_the_retention_is_deleted_at_most_hourly(
    tmp_path: Path, store: Store
) -> None:
    rig = make_rig(tmp_path, store, settings=replace(SETTINGS, drift_retention=86400.0))

    def corrected(object: str, days_ago: float) -> int:
        row = store.record_drift(
            "web", "beijing-1", object, "missing", [], "r", T0 - timedelta(days=days_ago + 1)
        )
        store.mark_corrected(row.id, T0 - timedelta(days=days_ago))
        return row.id

    corrected("ConfigMap/web/old", 2)
    recent = corrected("ConfigMap/web/recent", 0.5)
    still_open = store.record_drift(
        "web", "beijing-1", "ConfigMap/web/open", "missing", [], "r", T0
    )
    rig.source.commit_files(repo_files())
    rig.tick()
    assert {r.id for r in store.list_drift()} == {recent, still_open.id}

    later = corrected("ConfigMap/web/later", 3)
    rig.clock.advance(60.0)
    rig.tick()
    assert later in {r.id for r in store.list_drift()}  # less than an hour since the last prune
    rig.clock.advance(3600.0)
    rig.tick()
    assert later not in {r.id for r in store.list_drift()}
