"""A rollout plan in words and a rollout's status as a table and JSON."""

from __future__ import annotations

import json

from reconciler.rollout.describe import duration, stage_lines, summary
from reconciler.rollout.machine import start, step
from reconciler.rollout.model import OnFailure, PlannedStage, RolloutPlan
from reconciler.rollout.report import status_json, status_text

PLAN = RolloutPlan(
    (
        PlannedStage("canary", ("beijing-1",), 1, min_healthy_time=60),
        PlannedStage("beijing", ("beijing-2", "beijing-3"), 1, interval=20),
        PlannedStage(
            "prod-eu", ("eu-1",), 1, approval=True, max_failures=1, on_failure=OnFailure.ROLLBACK
        ),
    )
)


def test_durations_read_like_the_config() -> None:
    assert [duration(s) for s in (0, 0.25, 20, 600, 5400)] == ["0s", "250ms", "20s", "10m", "1h30m"]


def test_the_summary_names_each_manual_gate_after_what_comes_before_it() -> None:
    assert summary(PLAN) == (
        "canary beijing-1, then beijing beijing-2, beijing-3 (1 at a time), "
        "then prod-eu eu-1 waits for manual approval after beijing beijing-2, beijing-3"
    )


def test_stage_lines_list_gates() -> None:
    assert stage_lines(PLAN) == [
        "1. canary: beijing-1 — soak 1m; healthy within 10m; halts on a failure",
        "2. beijing: beijing-2, beijing-3 — 1 at a time; 20s between batches; healthy within 10m;"
        " halts on a failure",
        "3. prod-eu: eu-1 — waits for manual approval; healthy within 10m;"
        " rolls back after more than 1 failure",
    ]


def test_status_says_what_it_waits_for_and_shows_every_cluster() -> None:
    state = start("web", "b" * 40, PLAN, {c: "a" * 40 for c in PLAN.clusters}, 0.0)
    state = step(state, {}, (), 0.0).state
    text = status_text([state], 10.0)
    assert "web  revision bbbbbbbbbbbb  Progressing  stage 1/3" in text
    assert "beijing-1 healthy by 1970-01-01T00:10:00Z" in text
    assert "canary   1      beijing-1  Progressing  bbbbbbbbbbbb" in text
    assert "prod-eu  1      eu-1       Pending      aaaaaaaaaaaa" in text
    data = json.loads(status_json([state], 10.0))["rollouts"][0]
    assert data["phase"] == "Progressing"
    assert [c["desired"][:1] for c in data["clusters"]] == ["b", "a", "a", "a"]
