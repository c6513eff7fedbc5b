"""One app's shared rollout (state, commands, pins) as ConfigMap data (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.published.rollout import SharedRollout, decode, encode
from reconciler.rollout.model import ClusterState, PlannedStage, RolloutPlan, RolloutState
from reconciler.store.rows import ALL_CLUSTERS

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def _state() -> RolloutState:
    plan = RolloutPlan(
        (
            PlannedStage("one", ("c1",), 1),
            PlannedStage("two", ("c2",), 1, approval=True),
        )
    )
    clusters = (ClusterState("c1", 0, 0, "old"), ClusterState("c2", 1, 0, "old"))
    return RolloutState("web", "new", plan, clusters, 10.0, 10.0)


def test_a_shared_rollout_round_trips() -> None:
    shared, _ = SharedRollout("web", _state()).with_command("approve", "two", "ann", T0)
    shared = shared.pinned(["c1"], "old", "bob", T0)
    shared = SharedRollout(shared.app, shared.state, shared.commands, shared.pins, "replica-2")

    back = decode(encode(shared))

    assert back == shared


def test_commands_get_new_ids_and_the_driver_removes_those_it_took() -> None:
    shared, first = SharedRollout("web", _state()).with_command("pause", None, "ann", T0)
    shared, second = shared.with_command("approve", "two", "bob", T0)

    assert (first.id, second.id) == (1, 2)
    assert (second.revision, second.stage, second.user) == ("new", "two", "bob")
    stepped = shared.stepped(_state(), {1}, "replica-1")
    assert [c.id for c in stepped.commands] == [2]
    assert stepped.driver == "replica-1"


def test_pins_replace_one_on_the_same_cluster_and_release() -> None:
    shared = SharedRollout("web").pinned([], "r1", "ann", T0)
    assert [(p.cluster, p.revision) for p in shared.pins] == [(ALL_CLUSTERS, "r1")]
    shared = shared.pinned(["c1"], "r2", "ann", T0).pinned(["c1"], "r3", "ann", T0)
    assert sorted((p.cluster, p.revision) for p in shared.pins) == [("*", "r1"), ("c1", "r3")]

    released, count = shared.unpinned({"c1"})
    assert count == 1 and [p.cluster for p in released.pins] == [ALL_CLUSTERS]
    assert shared.unpinned(None)[1] == 2


def test_an_object_without_a_rollout_yet_holds_only_pins() -> None:
    shared = SharedRollout("web").pinned(["c1"], "r1", "ann", T0)

    assert decode(encode(shared)).state is None


def test_a_document_of_another_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        decode({"format": "v0", "app": "web"})
    with pytest.raises(ValueError, match="app web"):
        decode({"format": "v1", "app": "web", "commands": "[{}]"})
