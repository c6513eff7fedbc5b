"""Invalid revisions and failed renders: the last good revision (or render) stays applied, also
across restarts, and never one off the followed branch."""

from __future__ import annotations

from pathlib import Path

import repo_snippets as snip

from reconciler.store.db import Store
from reconciler.store.rows import State
from tests.unit.daemon_rig import BROKEN_REPO, Rig, configmap, make_rig, repo_files, restart


def test_an_invalid_commit_keeps_the_last_good_revision_and_the_next_good_one_applies(
    rig: Rig,
) -> None:
    good = rig.source.commit_files(repo_files())
    rig.tick()
    broken_app = snip.app("web", "source: {manifests: manifests/}\nplacment: {}\n")
    bad = rig.source.commit_files(repo_files(value="2", extra={"apps/web/app.yaml": broken_app}))
    rig.daemon.poke()
    rig.tick()

    # A problem in the app's own file holds that app's targets on their revision.
    assert len(rig.clusters.passes("beijing-1")) == 2
    rows = rig.store.list_status()
    assert {r.state for r in rows} == {State.INVALID_CONFIG}
    assert {r.revision for r in rows} == {good}
    assert "apps/web/app.yaml:7: spec.placment: unknown field 'placment'" in rows[0].message
    assert f"{good[:12]} stays applied" in rows[0].message
    assert {t.desired for t in rig.store.list_targets()} == {good}
    revision = rig.store.last_revision()
    assert revision is not None and (revision.sha, revision.valid) == (bad, True)
    assert "apps/web/app.yaml:7: spec.placment" in (revision.error or "")
    assert rig.store.last_good("web") == good

    fixed = rig.source.commit_files(repo_files(value="3"))
    rig.daemon.poke()
    rig.tick()
    assert rig.clusters.passes("beijing-1")[-1] == fixed
    assert {r.state for r in rig.store.list_status()} == {State.SYNCED}


def test_a_failed_render_keeps_that_targets_previous_render(rig: Rig) -> None:
    per_cluster = snip.app(
        "web",
        """
        namespace: web
        source: {manifests: manifests/}
        placement: {clusters: [beijing-1, beijing-2, us-west-1]}
        """,
    )
    good = rig.source.commit_files(repo_files(extra={"apps/web/app.yaml": per_cluster}))
    rig.tick()
    # A variable only beijing-1 lacks: the render fails there and only there.
    templated = configmap("web", "${cluster.vars.zone}")
    vars_ = "{zone: z}"
    files = repo_files(extra={"apps/web/manifests/cm.yaml": templated})
    for name in ("beijing-2", "us-west-1"):
        files[f"clusters/{name}.yaml"] = snip.cluster(name, vars=vars_)
    bad = rig.source.commit_files(files)
    rig.daemon.poke()
    rig.tick()

    rows = {r.cluster: r for r in rig.store.list_status()}
    assert rows["beijing-1"].state is State.INVALID_CONFIG
    assert rows["beijing-1"].revision == good
    assert "cluster.vars.zone" in rows["beijing-1"].message
    assert f"{good[:12]} stays applied" in rows["beijing-1"].message
    assert (rows["us-west-1"].state, rows["us-west-1"].revision) == (State.SYNCED, bad)
    assert rig.clusters.calls[-3:] == [
        ("beijing-1", bad, ["web"]),  # planned with its previous render: drift still checked
        ("beijing-2", bad, ["web"]),
        ("us-west-1", bad, ["web"]),
    ]
    assert rig.store.last_good("web") == good


def test_a_restart_on_an_invalid_head_runs_the_last_good_revision_from_the_store(
    tmp_path: Path, store: Store
) -> None:
    first = make_rig(tmp_path, store)
    good = first.source.commit_files(repo_files())
    first.tick()
    first.source.commit_files(repo_files(extra=BROKEN_REPO))

    restarted = restart(tmp_path, store, first.source)

    assert restarted.clusters.passes("beijing-1") == [good]
    assert restarted.daemon.ready
    rows = restarted.store.list_status()
    assert {(r.state, r.revision) for r in rows} == {(State.INVALID_CONFIG, good)}


def test_a_restart_runs_the_newest_valid_revision_even_where_no_app_rendered(
    tmp_path: Path, store: Store
) -> None:
    first = make_rig(tmp_path, store)
    older = first.source.commit_files(repo_files())
    first.tick()
    # Valid, but web does not render anywhere: its own last good revision stays the older one.
    extra = {
        "apps/web/manifests/cm.yaml": configmap("web", "${cluster.vars.x}"),
        "clusters/edge.yaml": snip.cluster("edge", vars="{x: '1'}"),  # not a target of web
    }
    unrendered = first.source.commit_files(repo_files(extra=extra))
    first.daemon.poke()
    first.tick()
    assert store.last_good("web") == older
    first.source.commit_files(repo_files(extra=BROKEN_REPO))

    restarted = restart(tmp_path, store, first.source)

    assert restarted.clusters.passes("beijing-1") == [unrendered]
    rows = restarted.store.list_status()
    assert {(r.state, r.revision) for r in rows} == {(State.INVALID_CONFIG, older)}
    assert all("cluster.vars.x" in r.message for r in rows)


def test_a_restart_after_a_force_push_never_falls_back_to_a_commit_off_the_branch(
    tmp_path: Path, store: Store
) -> None:
    first = make_rig(tmp_path, store)
    left_behind = first.source.commit_files(repo_files())
    first.tick()
    first.source.orphan()  # force-pushed: the branch no longer holds left_behind
    broken = first.source.commit_files(repo_files(extra=BROKEN_REPO))

    restarted = restart(tmp_path, store, first.source)

    assert restarted.clusters.calls == []
    assert not restarted.daemon.ready
    rows = restarted.store.list_status()
    assert {(r.state, r.revision) for r in rows} == {(State.INVALID_CONFIG, left_behind)}
    assert all(f"revision {broken[:12]} invalid" in r.message for r in rows)
    assert all("nothing applied yet" in r.message for r in rows)
    assert restarted.daemon.exit_code() == 2


def test_a_restart_falls_back_on_the_newest_valid_revision_on_the_branch(
    tmp_path: Path, store: Store
) -> None:
    first = make_rig(tmp_path, store)
    on_branch = first.source.commit_files(repo_files())
    first.tick()
    first.source.orphan()  # another branch was followed for a while...
    first.source.commit_files(repo_files(value="2"))
    first.daemon.poke()
    first.tick()
    first.source.head = on_branch  # ...and the branch is back, with a broken commit on top
    first.source.commit_files(repo_files(extra=BROKEN_REPO))

    restarted = restart(tmp_path, store, first.source)

    assert restarted.clusters.passes("beijing-1") == [on_branch]
    rows = restarted.store.list_status()
    assert {(r.state, r.revision) for r in rows} == {(State.INVALID_CONFIG, on_branch)}


def test_an_apps_last_good_revision_off_the_branch_is_not_its_fallback(
    tmp_path: Path, store: Store
) -> None:
    first = make_rig(tmp_path, store)
    left_behind = first.source.commit_files(repo_files())
    first.tick()
    assert store.last_good("web") == left_behind
    first.source.orphan()
    extra = {
        "apps/web/manifests/cm.yaml": configmap("web", "${cluster.vars.x}"),
        "clusters/edge.yaml": snip.cluster("edge", vars="{x: '1'}"),
    }
    unrendered = first.source.commit_files(repo_files(extra=extra))  # valid; web fails to render
    first.daemon.poke()
    first.tick()
    first.source.commit_files(repo_files(extra=BROKEN_REPO))

    restarted = restart(tmp_path, store, first.source)

    assert restarted.clusters.passes("beijing-1") == [unrendered]
    rows = restarted.store.list_status()
    assert {(r.state, r.revision) for r in rows} == {(State.INVALID_CONFIG, None)}
