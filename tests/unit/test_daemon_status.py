"""A pass outcome as a status row (pure)."""

from __future__ import annotations

from reconciler.daemon.status import target_status
from reconciler.engine import TargetOutcome
from reconciler.errors import ClusterUnreachable
from reconciler.fields import Drift
from reconciler.store.rows import State
from reconciler.sync.model import Action, ApplyResult, Change
from tests.unit.daemon_rig import REF, T0, outcome_with


def test_a_conflict_left_unapplied_is_out_of_sync_naming_the_other_manager() -> None:
    why = "fields owned by helm; set sync.force to take them over"
    conflict = Change(REF, Action.CONFLICT, managers=["helm"], message=why)
    result = ApplyResult("web", "b", "abc", skipped=[(REF, why)])

    row = target_status(outcome_with([conflict], result), revision="abc", problem=None, now=T0)

    assert row.state is State.OUT_OF_SYNC
    assert row.message == f"1 object: ConfigMap/web/web: {why}"
    assert row.last_synced_at is None


def test_drift_that_was_not_corrected_is_drifted_and_names_the_manager() -> None:
    edited = Change(REF, Action.UPDATE, drift=Drift.MODIFIED, managers=["kubectl-edit"])
    result = ApplyResult("web", "b", "abc", skipped=[(REF, "drifted; selfHeal is off")])

    row = target_status(outcome_with([edited], result), revision="abc", problem=None, now=T0)

    assert row.state is State.DRIFTED
    assert "ConfigMap/web/web modified by kubectl-edit" in row.message


def test_corrected_drift_is_synced_and_says_what_was_corrected() -> None:
    edited = Change(REF, Action.UPDATE, drift=Drift.MODIFIED, managers=["kubectl-edit"])
    result = ApplyResult("web", "b", "abc", configured=[REF], corrected=[REF])

    row = target_status(outcome_with([edited], result), revision="abc", problem=None, now=T0)

    assert (row.state, row.message, row.last_synced_at) == (
        State.SYNCED,
        "configured 1, corrected drift on 1",
        T0,
    )


def test_an_invalid_config_wins_over_the_cluster_state_and_keeps_it_in_the_message() -> None:
    down = ClusterUnreachable("unreachable at https://x: timed out", cluster="b")
    outcome = TargetOutcome("web", "b", error=down, unreachable=True)

    row = target_status(outcome, revision="abc", problem="apps/web/app.yaml:3: bad", now=T0)

    assert row.state is State.INVALID_CONFIG
    assert row.message.startswith("apps/web/app.yaml:3: bad (meanwhile Unreachable: cluster b")


def test_a_patch_that_matched_nothing_is_a_located_warning_in_the_status() -> None:
    warning = (
        "apps/web/app.yaml:15: app web: override gold: patches[1] (kind=Service name=web) "
        "matches no object on cluster b"
    )
    result = ApplyResult("web", "b", "abc", created=[REF])
    row = target_status(
        outcome_with([], result), revision="abc", problem=None, now=T0, warnings=[warning]
    )
    assert row.state is State.SYNCED
    assert row.message == f"created 1; 1 warning: {warning}"
