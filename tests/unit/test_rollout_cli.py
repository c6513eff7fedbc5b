"""`reconciler rollout ...` and `reconciler rollback` write to the daemon's store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.main import cli
from reconciler.rollout.codec import state_to_data
from reconciler.rollout.machine import start, step
from reconciler.rollout.model import PlannedStage, RolloutPlan
from reconciler.store.db import Store
from reconciler.store.rows import RolloutRow

OLD, NEW = "a" * 40, "b" * 40
PLAN = RolloutPlan(
    (PlannedStage("canary", ("c1",), 1), PlannedStage("prod", ("c2",), 1, approval=True))
)


def run(state_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*args, "--state-dir", str(state_dir)])
    return result.exit_code, result.output


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A store with the rollout of NEW waiting for approval of stage prod."""
    state = start("web", NEW, PLAN, {"c1": OLD, "c2": OLD}, 0.0)
    state = step(state, {}, (), 0.0).state
    state = state.__class__(**{**state.__dict__, "stage": 1, "phase": "WaitingApproval"})
    now = datetime.now(UTC)
    with Store.open(tmp_path / "state") as store:
        store.save_rollout(
            RolloutRow("web", NEW, "WaitingApproval", state_to_data(state), now, now)
        )
        store.record_revision(OLD, now, True, None)
        store.record_revision(NEW, now, True, None)
    return tmp_path / "state"


def test_approve_records_the_stage_that_waits_with_user_and_time(state_dir: Path) -> None:
    code, out = run(state_dir, "rollout", "approve", "web", "--user", "alice")
    assert code == 0, out
    assert "approve of stage prod of the rollout of bbbbbbbbbbbb recorded for alice" in out
    with Store.open_readonly(state_dir) as store:
        (command,) = store.pending_rollout_commands()
    assert (command.kind, command.stage, command.user, command.revision) == (
        "approve",
        "prod",
        "alice",
        NEW,
    )


def test_approve_of_an_unknown_stage_or_app_is_an_error(state_dir: Path) -> None:
    code, out = run(state_dir, "rollout", "approve", "web", "--stage", "nope")
    assert code == 2 and "has no stage 'nope' (stages: canary, prod)" in out
    code, out = run(state_dir, "rollout", "approve", "api")
    assert code == 2 and "app api: no rollout recorded" in out


def test_pause_resume_abort_are_recorded(state_dir: Path) -> None:
    for verb in ("pause", "resume", "abort"):
        code, out = run(state_dir, "rollout", verb, "web", "--user", "ops")
        assert code == 0, out
    with Store.open_readonly(state_dir) as store:
        assert [c.kind for c in store.pending_rollout_commands()] == ["pause", "resume", "abort"]


def test_rollout_status_as_table_and_json(state_dir: Path) -> None:
    code, out = run(state_dir, "rollout", "status")
    assert code == 0, out
    assert "stage prod waits for manual approval: reconciler rollout approve web" in out
    code, out = run(state_dir, "rollout", "status", "web", "-o", "json")
    assert code == 0
    (data,) = json.loads(out)["rollouts"]
    assert data["phase"] == "WaitingApproval"


def test_rollback_pins_until_released_and_status_shows_it(state_dir: Path) -> None:
    code, out = run(
        state_dir, "rollback", "web", "--to", "aaaa", "--cluster", "c2", "--user", "bob"
    )
    assert code == 0, out
    assert "web on c2 pinned to aaaaaaaaaaaa by bob" in out
    code, out = run(state_dir, "status")
    assert "pinned: web on c2 to aaaaaaaaaaaa by bob" in out
    assert "rollout web bbbbbbbbbbbb: WaitingApproval at stage prod (2/2)" in out
    code, out = run(state_dir, "status", "-o", "json")
    assert json.loads(out)["pins"][0]["cluster"] == "c2"
    code, out = run(state_dir, "rollback", "web", "--release")
    assert code == 0 and "released 1 pin" in out
    code, out = run(state_dir, "rollback", "web", "--release")
    assert code == 2 and "nothing pinned" in out


def test_rollback_to_an_unknown_revision_is_an_error(state_dir: Path) -> None:
    code, out = run(state_dir, "rollback", "web", "--to", "ffff")
    assert code == 2 and "not a valid revision the daemon has seen" in out
    code, out = run(state_dir, "rollback", "web")
    assert code == 2 and "exactly one of --to REV, --release" in out


def test_rollback_of_an_app_or_cluster_the_daemon_never_saw_is_an_error(state_dir: Path) -> None:
    """A typo is refused naming what exists, and no pin is written."""
    code, out = run(state_dir, "rollback", "wbe", "--to", "aaaa")
    assert code == 2
    assert "app wbe: the daemon has seen no such app (apps: web) (did you mean 'web'?)" in out
    code, out = run(state_dir, "rollback", "web", "--to", "aaaa", "--cluster", "c3")
    assert code == 2
    assert "--cluster c3: the daemon has seen no such cluster (clusters: c1, c2)" in out
    code, out = run(state_dir, "rollback", "wbe", "--release")
    assert code == 2 and "no such app" in out
    with Store.open_readonly(state_dir) as store:
        assert store.list_pins() == []


@pytest.mark.parametrize(
    "args",
    [
        ("rollback", "web", "--to", "aaaa"),
        ("rollback", "web", "--release"),
        ("rollout", "approve", "web"),
        ("rollout", "pause", "web"),
        ("rollout", "resume", "web"),
        ("rollout", "abort", "web"),
        ("release", "aaaa"),
    ],
)
def test_commands_on_a_state_dir_without_state_fail_and_create_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    missing = tmp_path / "nope"
    code, out = run(missing, *args)
    assert code == 2
    assert f"no state in {missing}: is the daemon running with --state-dir {missing}?" in out
    assert not missing.exists()
    code, out = run(missing, "status")
    assert code == 2 and f"no state in {missing}" in out
