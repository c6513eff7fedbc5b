"""Per-target revisions: a broken app stays on its revision while others move; a revision that
would prune too much is held until released."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import repo_snippets as snip

from reconciler.daemon.guard import PruneLimits
from reconciler.store.db import Store
from reconciler.store.rows import State
from tests.unit.daemon_rig import CLUSTERS, SETTINGS, T0, Rig, configmap, make_rig, repo_files


def other_app(name: str = "other") -> dict[str, str]:
    spec = "namespace: o\nsource: {manifests: manifests/}\nplacement: {clusters: [beijing-1]}\n"
    return {f"apps/{name}/app.yaml": snip.app(name, spec),
            f"apps/{name}/manifests/cm.yaml": configmap(name)}  # fmt: skip


def test_a_broken_app_stays_on_its_revision_while_another_app_moves(rig: Rig) -> None:
    first = rig.source.commit_files(repo_files(extra=other_app()))
    rig.tick()
    broken = snip.app("other", "source: {manifests: manifests/}\nplacment: {}\n")
    second = rig.source.commit_files(
        repo_files(value="2", extra={**other_app(), "apps/other/app.yaml": broken})
    )
    rig.daemon.poke()
    rig.tick()

    rows = {(r.app, r.cluster): (r.state, r.revision) for r in rig.store.list_status()}
    assert rows[("other", "beijing-1")] == (State.INVALID_CONFIG, first)
    assert {rows[("web", c)] for c in CLUSTERS} == {(State.SYNCED, second)}
    desired = rig.daemon.desired
    assert desired is not None
    (kept,) = [t for t in desired.targets["beijing-1"] if t.app == "other"]
    assert kept.rendered is not None  # still rendered from the first revision
    assert {(t.app, t.cluster, t.desired) for t in rig.store.list_targets()} == {
        ("other", "beijing-1", first),
        *(("web", c, second) for c in CLUSTERS),
    }


def test_a_revision_pruning_too_much_is_held_until_released(tmp_path: Path, store: Store) -> None:
    limits = PruneLimits(max_objects=1, max_percent=25)
    rig = make_rig(tmp_path, store, settings=replace(SETTINGS, prune_limits=limits))
    first = rig.source.commit_files(repo_files(extra=other_app()))
    rig.tick()
    assert sum(len(t.objects) for t in store.list_targets()) == 4  # web on 3 clusters, other

    files = repo_files()
    del files["apps/web/app.yaml"], files["apps/web/manifests/cm.yaml"]
    removed = rig.source.commit_files({**files, **other_app()})
    rig.daemon.poke()
    rig.tick()

    rows = store.list_status()
    assert {r.state for r in rows} == {State.HELD}
    assert {r.revision for r in rows} == {first}
    message = rows[0].message
    assert message.startswith(
        f"revision {removed[:12]} held: would prune 3 of 4 objects on 3 clusters"
    )
    assert f"reconciler release {removed[:12]}" in message
    held = store.revision(removed)
    assert held is not None and held.held == message

    store.release(removed, "alice", T0)
    rig.tick()
    assert store.revision(removed).held is None  # type: ignore[union-attr]
    assert {(r.app, r.state) for r in store.list_status()} == {("other", State.SYNCED)}
