"""Rollouts, operator commands and pins in the store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.store.db import Store
from reconciler.store.rows import ALL_CLUSTERS, RolloutRow

T0 = datetime(2026, 1, 1, tzinfo=UTC)
minute = timedelta(minutes=1)


def row(app: str, revision: str, phase: str, minutes: int) -> RolloutRow:
    at = T0 + timedelta(minutes=minutes)
    return RolloutRow(app, revision, phase, {"phase": phase}, at, at)


def test_a_rollout_step_writes_state_desired_revisions_and_taken_commands_together(
    tmp_path: Path,
) -> None:
    with Store.open(tmp_path) as store:
        command = store.add_rollout_command("web", "r1", "approve", "prod", "alice", T0)
        assert [c.id for c in store.pending_rollout_commands()] == [command.id]
        store.save_rollout(row("web", "r1", "Progressing", 1), [("web", "c1", "r1")], [command.id])
        assert store.pending_rollout_commands() == []
        assert [(t.cluster, t.desired) for t in store.list_targets()] == [("c1", "r1")]
        saved = store.rollout("web", "r1")
        assert saved is not None and saved.data == {"phase": "Progressing"}
        # A later step of the same rollout: the state's start time is the same.
        store.save_rollout(replace(row("web", "r1", "Succeeded", 2), started_at=T0 + minute))
        saved = store.rollout("web", "r1")
        assert (
            saved is not None
            and saved.phase == "Succeeded"
            and saved.started_at == T0 + timedelta(minutes=1)
        )


def test_latest_rollout_per_app(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.save_rollout(row("web", "r1", "Superseded", 1))
        store.save_rollout(row("web", "r2", "Progressing", 2))
        store.save_rollout(row("api", "r1", "Succeeded", 1))
        latest = store.latest_rollouts()
        assert [(r.app, r.revision) for r in latest] == [("api", "r1"), ("web", "r2")]
        assert [r.revision for r in store.latest_rollouts("web")] == ["r2"]
        assert [r.revision for r in store.list_rollouts("web")] == ["r2", "r1"]


def test_a_revision_rolled_out_again_is_the_latest_rollout(tmp_path: Path) -> None:
    """The branch went back to r1 after r2 superseded it: r1's new rollout is the latest,
    for the CLI and for a daemon that restarts."""
    with Store.open(tmp_path) as store:
        store.save_rollout(row("web", "r1", "Superseded", 1))
        store.save_rollout(row("web", "r2", "Superseded", 2))
        store.save_rollout(row("web", "r1", "WaitingApproval", 3))
        (latest,) = store.latest_rollouts("web")
        assert (latest.revision, latest.phase) == ("r1", "WaitingApproval")
        assert latest.started_at == T0 + 3 * minute
        assert [r.revision for r in store.list_rollouts("web")] == ["r1", "r2"]


def test_pins_and_their_release(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.pin("web", [ALL_CLUSTERS], "r0", "alice", T0)
        store.pin("api", ["c1", "c2"], "r0", "bob", T0)
        assert [(p.app, p.cluster, p.user) for p in store.list_pins()] == [
            ("api", "c1", "bob"),
            ("api", "c2", "bob"),
            ("web", "*", "alice"),
        ]
        assert store.unpin("api", ["c1"]) == 1
        assert store.unpin("web") == 1
        assert [p.cluster for p in store.list_pins()] == ["c2"]
