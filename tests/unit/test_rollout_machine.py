"""The rollout state machine, driven by a simulated fleet and an injected clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from reconciler.rollout import codec
from reconciler.rollout.machine import start, step, supersede
from reconciler.rollout.model import (
    ClusterPhase,
    Command,
    CommandKind,
    Observation,
    OnFailure,
    PlannedStage,
    RolloutPhase,
    RolloutPlan,
    RolloutState,
)

OLD, NEW, NEWER = "a" * 40, "b" * 40, "c" * 40


@dataclass
class Target:
    applied: str | None = OLD
    applied_at: float = 0.0
    reachable: bool = True
    pinned: bool = False
    targeted: bool = True


@dataclass
class Fleet:
    """Clusters that apply what the rollout says; Healthy (or Degraded) ``delay`` s later."""

    names: Iterable[str]
    delay: float = 2.0
    bad: set[tuple[str, str]] = field(default_factory=set)  # (cluster, revision) that degrade
    targets: dict[str, Target] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = {n: Target() for n in self.names}

    def observe(self, now: float) -> dict[str, Observation]:
        out = {}
        for name, t in self.targets.items():
            if not t.reachable:
                out[name] = Observation(
                    t.applied, t.applied_at, reachable=False, pinned=t.pinned, targeted=t.targeted
                )
                continue
            ready = now >= t.applied_at + self.delay
            health = "Progressing"
            if ready:
                health = "Degraded" if (name, t.applied) in self.bad else "Healthy"
            since = t.applied_at + self.delay if ready else t.applied_at
            out[name] = Observation(
                t.applied,
                t.applied_at,
                health,
                since,
                now,
                "1/1 ready",
                pinned=t.pinned,
                targeted=t.targeted,
            )
        return out

    def sync(self, state: RolloutState, now: float) -> None:
        for c in state.clusters:
            t = self.targets[c.cluster]
            want = state.desired(c.cluster)
            if t.reachable and not t.pinned and t.targeted and want != t.applied:
                t.applied, t.applied_at = want, now


def plan(*stages: PlannedStage) -> RolloutPlan:
    return RolloutPlan(stages)


def stage(name: str, clusters: str, **kw: object) -> PlannedStage:
    kw.setdefault("max_concurrent", 1)
    return PlannedStage(name, tuple(clusters.split()), **kw)  # type: ignore[arg-type]


@dataclass
class Run:
    state: RolloutState
    fleet: Fleet
    now: float = 0.0
    max_in_flight: int = 0
    started: list[str] = field(default_factory=list)  # clusters in the order they were reached
    events: list[str] = field(default_factory=list)

    def tick(self, commands: tuple[Command, ...] = (), dt: float = 1.0) -> None:
        result = step(self.state, self.fleet.observe(self.now), commands, self.now)
        self.state = result.state
        self.started += [a.cluster for a in result.actions if a.revision == self.state.revision]
        self.events += [f"{e.stage}/{e.cluster}: {e.message}" for e in result.events]
        in_flight = [c for c in self.state.clusters if c.phase.name in ("PROGRESSING", "SOAKING")]
        self.max_in_flight = max(self.max_in_flight, len(in_flight))
        self.fleet.sync(self.state, self.now)
        self.now += dt

    def until(self, *phases: RolloutPhase, limit: float = 2000) -> None:
        while self.state.phase not in phases and self.now < limit:
            self.tick()
        assert self.state.phase in phases, (self.state.phase, self.events)

    def phase(self, cluster: str) -> ClusterPhase:
        return self.state.cluster(cluster).phase


def new_run(p: RolloutPlan, fleet: Fleet, revision: str = NEW) -> Run:
    bases = {n: t.applied for n, t in fleet.targets.items()}
    return Run(start("app", revision, p, bases, 0.0), fleet)


FIVE = "c1 c2 c3 c4 c5"


def test_a_good_revision_goes_stage_by_stage_never_more_than_max_concurrent() -> None:
    p = plan(
        stage("canary", "c1", min_healthy_time=5),
        stage("rest", "c2 c3 c4 c5", max_concurrent=2, interval=3),
    )
    run = new_run(p, Fleet(FIVE.split()))
    run.until(RolloutPhase.SUCCEEDED)
    assert run.started == ["c1", "c2", "c3", "c4", "c5"]
    assert run.max_in_flight == 2
    assert all(t.applied == NEW for t in run.fleet.targets.values())
    c1, c2 = run.state.cluster("c1"), run.state.cluster("c2")
    # soak: the canary stayed healthy 5 s before the next stage started
    assert c1.healthy_since is not None and c1.finished_at is not None
    assert c1.finished_at - c1.healthy_since >= 5
    assert c2.started_at is not None and c2.started_at >= c1.finished_at
    # interval: the second batch started 3 s after the first ended
    c4 = run.state.cluster("c4")
    assert c4.started_at is not None
    assert c4.started_at >= max(run.state.cluster(c).finished_at or 0 for c in ("c2", "c3")) + 3


def test_max_concurrent_as_a_share_of_the_stage() -> None:
    from reconciler.rollout.stages import Policy, Quantity, StageSpec
    from reconciler.rollout.stages import plan as make_plan

    policy = Policy(max_concurrent=Quantity(40, percent=True))
    p = make_plan([StageSpec("all", frozenset(FIVE.split()), policy)], FIVE.split(), Policy())
    assert p.stages[0].max_concurrent == 2  # 40% of 5 rounds up
    run = new_run(p, Fleet(FIVE.split()))
    run.until(RolloutPhase.SUCCEEDED)
    assert run.max_in_flight == 2


def test_manual_approval_blocks_until_approved_and_records_who_and_when() -> None:
    p = plan(stage("canary", "c1"), stage("prod", "c2 c3", approval=True))
    run = new_run(p, Fleet(["c1", "c2", "c3"]))
    run.until(RolloutPhase.WAITING_APPROVAL)
    for _ in range(100):
        run.tick()
    assert run.state.phase == RolloutPhase.WAITING_APPROVAL
    assert run.fleet.targets["c2"].applied == OLD
    run.tick((Command(CommandKind.APPROVE, "alice", run.now),))
    run.until(RolloutPhase.SUCCEEDED)
    approval = run.state.approved("prod")
    assert approval is not None and approval.user == "alice" and approval.at > 100
    assert run.fleet.targets["c3"].applied == NEW


def test_approval_ahead_of_time_for_a_named_stage() -> None:
    p = plan(stage("canary", "c1"), stage("prod", "c2", approval=True))
    run = new_run(p, Fleet(["c1", "c2"]))
    run.tick((Command(CommandKind.APPROVE, "bob", 0.0, stage="prod"),))
    run.until(RolloutPhase.SUCCEEDED)
    assert not any("waits for manual approval" in e for e in run.events)


def test_approval_of_an_unknown_stage_or_with_nothing_waiting_is_ignored() -> None:
    p = plan(stage("canary", "c1"), stage("prod", "c2", approval=True))
    run = new_run(p, Fleet(["c1", "c2"]))
    run.tick((Command(CommandKind.APPROVE, "bob", 0.0),))
    run.tick((Command(CommandKind.APPROVE, "bob", 0.0, stage="nope"),))
    assert run.state.approvals == ()
    run.until(RolloutPhase.WAITING_APPROVAL)


def test_a_failing_revision_halts_at_the_canary_and_later_stages_stay_untouched() -> None:
    fleet = Fleet(FIVE.split(), bad={("c1", NEW)})
    p = plan(stage("canary", "c1"), stage("rest", "c2 c3 c4 c5", max_concurrent=2))
    run = new_run(p, fleet)
    run.until(RolloutPhase.HALTED)
    assert run.phase("c1") == ClusterPhase.FAILED
    assert "Degraded" in run.state.cluster("c1").reason
    assert [t.applied for t in fleet.targets.values()] == [NEW, OLD, OLD, OLD, OLD]
    assert all(run.phase(c) == ClusterPhase.PENDING for c in ["c2", "c3", "c4", "c5"])
    for _ in range(50):
        run.tick()
    assert fleet.targets["c2"].applied == OLD


def test_rollback_restores_the_base_revision_on_every_cluster_it_updated() -> None:
    fleet = Fleet(FIVE.split(), bad={("c3", NEW)})
    p = plan(
        stage("canary", "c1", on_failure=OnFailure.ROLLBACK),
        stage("rest", "c2 c3 c4 c5", max_concurrent=2, on_failure=OnFailure.ROLLBACK),
    )
    run = new_run(p, fleet)
    run.until(RolloutPhase.ROLLED_BACK)
    assert [t.applied for t in fleet.targets.values()] == [OLD] * 5
    assert [run.phase(c) for c in FIVE.split()] == [
        ClusterPhase.ROLLED_BACK,
        ClusterPhase.ROLLED_BACK,
        ClusterPhase.ROLLED_BACK,
        ClusterPhase.PENDING,
        ClusterPhase.PENDING,
    ]
    assert "c3" in run.state.reason


def test_rollback_waits_for_an_unreachable_cluster() -> None:
    fleet = Fleet(["c1", "c2"], bad={("c2", NEW)})
    p = plan(stage("one", "c1"), stage("two", "c2", on_failure=OnFailure.ROLLBACK))
    run = new_run(p, fleet)
    while run.phase("c2") != ClusterPhase.PROGRESSING:
        run.tick()
    fleet.targets["c1"].reachable = False
    run.until(RolloutPhase.ROLLING_BACK)
    for _ in range(20):
        run.tick()
    assert run.state.phase == RolloutPhase.ROLLING_BACK
    assert run.phase("c1") == ClusterPhase.ROLLING_BACK
    fleet.targets["c1"].reachable = True
    run.until(RolloutPhase.ROLLED_BACK)


def test_continue_notes_failures_and_goes_on() -> None:
    fleet = Fleet(FIVE.split(), bad={("c1", NEW)})
    p = plan(
        stage("canary", "c1", on_failure=OnFailure.CONTINUE),
        stage("rest", "c2 c3 c4 c5", max_concurrent=2),
    )
    run = new_run(p, fleet)
    run.until(RolloutPhase.SUCCEEDED)
    assert run.phase("c1") == ClusterPhase.FAILED
    assert all(t.applied == NEW for t in fleet.targets.values())
    assert any("continuing" in e for e in run.events)


def test_max_failures_tolerates_that_many_then_applies_the_policy() -> None:
    fleet = Fleet(FIVE.split(), bad={("c1", NEW), ("c2", NEW)})
    p = plan(stage("all", FIVE, max_concurrent=1, max_failures=1))
    run = new_run(p, fleet)
    run.until(RolloutPhase.HALTED)
    assert run.phase("c1") == ClusterPhase.FAILED and run.phase("c2") == ClusterPhase.FAILED
    assert run.phase("c3") == ClusterPhase.PENDING


def test_an_unreachable_cluster_fails_after_the_deadline_without_blocking_its_batch() -> None:
    fleet = Fleet(["c1", "c2", "c3"])
    fleet.targets["c2"].reachable = False
    p = plan(stage("all", "c1 c2 c3", max_concurrent=3, progress_deadline=30, max_failures=1))
    run = new_run(p, fleet)
    for _ in range(10):
        run.tick()
    assert run.phase("c1") == ClusterPhase.SUCCEEDED
    assert run.phase("c2") == ClusterPhase.PROGRESSING
    run.until(RolloutPhase.SUCCEEDED)
    c2 = run.state.cluster("c2")
    assert c2.phase == ClusterPhase.FAILED and "unreachable" in c2.reason
    assert c2.finished_at == 30


def test_progressing_past_the_deadline_fails() -> None:
    fleet = Fleet(["c1"], delay=100)
    run = new_run(plan(stage("all", "c1", progress_deadline=20)), fleet)
    run.until(RolloutPhase.HALTED)
    assert "Progressing" in run.state.cluster("c1").reason
    assert run.state.cluster("c1").finished_at == 20


def test_health_read_before_the_apply_does_not_count() -> None:
    state = start("app", NEW, plan(stage("all", "c1")), {"c1": OLD}, 0.0)
    result = step(state, {"c1": Observation(OLD, 0.0, "Healthy", 0.0, 0.0)}, (), 1.0)
    assert result.state.cluster("c1").phase == ClusterPhase.PROGRESSING
    stale = Observation(NEW, 5.0, "Healthy", 0.0, 4.0)  # read at 4, applied at 5
    result = step(result.state, {"c1": stale}, (), 6.0)
    assert result.state.cluster("c1").phase == ClusterPhase.PROGRESSING
    fresh = Observation(NEW, 5.0, "Healthy", 0.0, 6.0)
    result = step(result.state, {"c1": fresh}, (), 7.0)
    assert result.state.phase == RolloutPhase.SUCCEEDED


def test_a_suspended_target_passes_the_gate() -> None:
    """Its worst object is deliberately not running (a suspended CronJob), the rest healthy."""
    state = start("app", NEW, plan(stage("all", "c1", progress_deadline=20)), {"c1": OLD}, 0.0)
    state = step(state, {}, (), 0.0).state
    suspended = Observation(NEW, 1.0, "Suspended", 2.0, 3.0, "CronJob.batch/demo/backup")
    assert step(state, {"c1": suspended}, (), 3.0).state.phase == RolloutPhase.SUCCEEDED


def test_degraded_since_before_the_apply_waits_for_the_deadline_not_fails_at_once() -> None:
    """Revision 1 left the Deployment past its deadline (a ConfigMap key missing); revision 2
    adds the key. Until the Deployment recovers it reads Degraded, as it did before the apply:
    that is the state the revision may fix, not one it caused."""
    state = start("app", NEW, plan(stage("all", "c1", progress_deadline=20)), {"c1": OLD}, 0.0)
    state = step(state, {}, (), 0.0).state
    inherited = Observation(NEW, 1.0, "Degraded", 0.5, 3.0, "ProgressDeadlineExceeded")
    state = step(state, {"c1": inherited}, (), 3.0).state
    c1 = state.cluster("c1")
    assert c1.phase == ClusterPhase.PROGRESSING
    assert c1.reason == "Degraded since before the apply: ProgressDeadlineExceeded"
    healthy = Observation(NEW, 1.0, "Healthy", 8.0, 9.0)
    assert step(state, {"c1": healthy}, (), 9.0).state.phase == RolloutPhase.SUCCEEDED
    # Never recovers: it fails at the deadline.
    halted = step(state, {"c1": inherited}, (), 20.0).state
    assert halted.phase == RolloutPhase.HALTED
    assert "Degraded since before the apply" in halted.cluster("c1").reason
    # Degraded anew after the apply still fails at once.
    anew = Observation(NEW, 1.0, "Degraded", 4.0, 4.0, "CrashLoopBackOff")
    assert step(state, {"c1": anew}, (), 4.0).state.phase == RolloutPhase.HALTED


def test_soak_restarts_when_health_drops_and_a_degraded_soak_fails() -> None:
    state = start("app", NEW, plan(stage("all", "c1", min_healthy_time=10)), {"c1": OLD}, 0.0)
    state = step(state, {}, (), 0.0).state
    healthy = Observation(NEW, 1.0, "Healthy", 2.0, 3.0)
    state = step(state, {"c1": healthy}, (), 3.0).state
    assert state.cluster("c1").phase == ClusterPhase.SOAKING
    assert state.cluster("c1").healthy_since == 2.0
    wobble = Observation(NEW, 1.0, "Progressing", 5.0, 5.0)
    state = step(state, {"c1": wobble}, (), 5.0).state
    assert state.cluster("c1").phase == ClusterPhase.PROGRESSING
    again = Observation(NEW, 1.0, "Healthy", 6.0, 7.0)
    result = step(state, {"c1": again}, (), 12.0)
    assert result.state.cluster("c1").phase == ClusterPhase.SOAKING
    assert result.wake_at == 16.0
    assert step(result.state, {"c1": again}, (), 16.0).state.phase == RolloutPhase.SUCCEEDED
    degraded = Observation(NEW, 1.0, "Degraded", 13.0, 13.0, "CrashLoopBackOff")
    failed = step(result.state, {"c1": degraded}, (), 13.0).state
    assert failed.phase == RolloutPhase.HALTED
    assert failed.cluster("c1").reason == "Degraded: CrashLoopBackOff"


def test_pause_holds_the_next_batch_and_resume_goes_on() -> None:
    p = plan(stage("all", "c1 c2 c3", max_concurrent=1))
    run = new_run(p, Fleet(["c1", "c2", "c3"]))
    run.tick((Command(CommandKind.PAUSE, "ops", 0.0),))
    assert run.state.paused and run.fleet.targets["c1"].applied == OLD
    for _ in range(20):
        run.tick()
    assert run.started == []
    run.tick((Command(CommandKind.RESUME, "ops", run.now),))
    run.until(RolloutPhase.SUCCEEDED)
    assert run.started == ["c1", "c2", "c3"]


def test_pause_lets_the_batch_in_flight_finish() -> None:
    p = plan(stage("all", "c1 c2", max_concurrent=1))
    run = new_run(p, Fleet(["c1", "c2"]))
    run.tick()
    run.tick((Command(CommandKind.PAUSE, "ops", 1.0),))
    for _ in range(20):
        run.tick()
    assert run.phase("c1") == ClusterPhase.SUCCEEDED and run.phase("c2") == ClusterPhase.PENDING


def test_abort_stops_where_it_is() -> None:
    p = plan(stage("all", "c1 c2", max_concurrent=1))
    run = new_run(p, Fleet(["c1", "c2"]))
    run.tick()
    run.tick((Command(CommandKind.ABORT, "ops", 1.0),))
    assert run.state.phase == RolloutPhase.ABORTED and run.state.reason == "aborted by ops"
    for _ in range(20):
        run.tick()
    assert run.fleet.targets["c1"].applied == NEW and run.fleet.targets["c2"].applied == OLD
    assert run.state.desired("c1") == NEW and run.state.desired("c2") == OLD


def test_a_newer_revision_supersedes_and_starts_from_the_first_stage() -> None:
    fleet = Fleet(FIVE.split())
    p = plan(stage("canary", "c1"), stage("rest", "c2 c3 c4 c5", max_concurrent=1))
    run = new_run(p, fleet)
    while run.phase("c2") != ClusterPhase.SUCCEEDED:
        run.tick()
    old = supersede(run.state, NEWER, run.now)
    assert old.phase == RolloutPhase.SUPERSEDED and old.finished
    assert step(old, fleet.observe(run.now), (), run.now).actions == ()
    bases = {c: old.desired(c) for c in FIVE.split()}
    assert bases == {"c1": NEW, "c2": NEW, "c3": NEW, "c4": OLD, "c5": OLD}
    newer = Run(start("app", NEWER, p, bases, run.now), fleet, now=run.now)
    newer.until(RolloutPhase.SUCCEEDED, limit=run.now + 2000)
    assert newer.started == ["c1", "c2", "c3", "c4", "c5"]
    assert all(t.applied == NEWER for t in fleet.targets.values())


def test_pinned_clusters_are_skipped_and_never_count_as_failures() -> None:
    fleet = Fleet(["c1", "c2"])
    fleet.targets["c2"].pinned = True
    run = new_run(plan(stage("all", "c1 c2", max_concurrent=1)), fleet)
    run.until(RolloutPhase.SUCCEEDED)
    assert run.phase("c2") == ClusterPhase.SKIPPED and fleet.targets["c2"].applied == OLD


def test_a_cluster_skipped_for_a_pin_runs_the_new_revision_once_the_pin_is_released() -> None:
    fleet = Fleet(["c1", "c2"])
    fleet.targets["c2"].pinned = True
    run = new_run(plan(stage("all", "c1 c2", max_concurrent=1)), fleet)
    run.until(RolloutPhase.SUCCEEDED)
    skipped = run.state.cluster("c2")
    assert skipped.phase == ClusterPhase.SKIPPED and skipped.pinned
    assert "once the pin is released" in skipped.reason
    # The pin wins while it exists (the daemon's choice); the rollout's word is the revision.
    assert run.state.desired("c2") == NEW
    assert codec.state_from_data(codec.state_to_data(run.state)) == run.state
    fleet.targets["c2"].pinned = False
    run.tick()
    assert fleet.targets["c2"].applied == NEW


def test_a_cluster_pinned_while_in_flight_follows_the_rollout_once_released() -> None:
    fleet = Fleet(["c1", "c2"])
    run = new_run(plan(stage("all", "c1 c2", max_concurrent=1)), fleet)
    while run.phase("c1") != ClusterPhase.PROGRESSING:
        run.tick()
    fleet.targets["c1"].pinned = True
    run.until(RolloutPhase.SUCCEEDED)
    assert run.phase("c1") == ClusterPhase.SKIPPED and run.state.desired("c1") == NEW


def test_a_rollback_takes_back_the_clusters_skipped_for_a_pin_too() -> None:
    fleet = Fleet(["c1", "c2", "c3"], bad={("c3", NEW)})
    fleet.targets["c1"].pinned = True
    p = plan(stage("all", "c1 c2 c3", max_concurrent=1, on_failure=OnFailure.ROLLBACK))
    run = new_run(p, fleet)
    fleet.targets["c1"].applied = NEWER  # the pin holds it on another revision
    run.until(RolloutPhase.ROLLED_BACK)
    c1 = run.state.cluster("c1")
    assert c1.phase == ClusterPhase.ROLLED_BACK and "pinned" in c1.reason
    assert run.state.desired("c1") == OLD  # once released
    assert [t.applied for t in fleet.targets.values()] == [NEWER, OLD, OLD]


def test_a_released_cluster_skipped_for_a_pin_is_rolled_back_like_the_others() -> None:
    fleet = Fleet(["c1", "c2", "c3"], bad={("c3", NEW)})
    fleet.targets["c1"].pinned = True
    p = plan(stage("all", "c1 c2 c3", max_concurrent=1, on_failure=OnFailure.ROLLBACK))
    run = new_run(p, fleet)
    while run.phase("c1") != ClusterPhase.SKIPPED:
        run.tick()
    fleet.targets["c1"].pinned = False  # released: runs NEW, then the rollback takes it back
    run.until(RolloutPhase.ROLLED_BACK)
    assert run.phase("c1") == ClusterPhase.ROLLED_BACK and run.state.cluster("c1").reason == ""
    assert [t.applied for t in fleet.targets.values()] == [OLD] * 3


def _rolling_back_with_c1_stuck(fleet: Fleet) -> Run:
    """c1 updated, then c2 degrades: the rollback waits for c1 to apply its base."""
    p = plan(stage("all", "c1 c2", max_concurrent=1, on_failure=OnFailure.ROLLBACK))
    run = new_run(p, fleet)
    while run.phase("c2") != ClusterPhase.PROGRESSING:
        run.tick()
    fleet.targets["c1"].reachable = False
    run.until(RolloutPhase.ROLLING_BACK)
    run.tick()
    assert run.phase("c1") == ClusterPhase.ROLLING_BACK
    fleet.targets["c1"].reachable = True
    return run


def test_a_rollback_does_not_wait_for_a_cluster_pinned_elsewhere() -> None:
    fleet = Fleet(["c1", "c2"], bad={("c2", NEW)})
    run = _rolling_back_with_c1_stuck(fleet)
    fleet.targets["c1"].pinned = True  # the operator pins it (to NEWER, say)
    run.until(RolloutPhase.ROLLED_BACK, limit=run.now + 3)
    c1 = run.state.cluster("c1")
    assert c1.phase == ClusterPhase.ROLLED_BACK and "pinned" in c1.reason
    assert run.state.desired("c1") == OLD  # once released


def test_a_rollback_does_not_wait_for_a_cluster_the_app_left() -> None:
    fleet = Fleet(["c1", "c2"], bad={("c2", NEW)})
    run = _rolling_back_with_c1_stuck(fleet)
    fleet.targets["c1"].targeted = False  # left the inventory, or the app's placement
    run.until(RolloutPhase.ROLLED_BACK, limit=run.now + 3)
    assert "no longer a target" in run.state.cluster("c1").reason


def test_unchanged_clusters_move_at_once_and_take_no_batch() -> None:
    fleet = Fleet(["c1", "c2", "c3"])
    p = plan(stage("all", "c1 c2 c3", max_concurrent=1, interval=100))
    state = start("app", NEW, p, {c: OLD for c in ("c1", "c2", "c3")}, 0.0, frozenset({"c1"}))
    assert state.cluster("c1").phase == ClusterPhase.SUCCEEDED
    assert state.desired("c1") == NEW
    assert state.batch_count(0) == 2
    run = Run(state, fleet)
    run.until(RolloutPhase.SUCCEEDED)
    assert run.started == ["c2", "c3"]


def test_a_stage_without_clusters_is_passed_over_even_with_an_approval_gate() -> None:
    p = plan(stage("empty", "", approval=True), stage("all", "c1"))
    p = RolloutPlan((replace(p.stages[0], clusters=()), p.stages[1]))
    run = new_run(p, Fleet(["c1"]))
    run.until(RolloutPhase.SUCCEEDED)


def test_a_restart_at_any_step_resumes_exactly() -> None:
    """Encode and decode the state after every step: the run is the same as without."""
    fleet_a, fleet_b = Fleet(FIVE.split()), Fleet(FIVE.split())
    p = plan(
        stage("canary", "c1", min_healthy_time=4),
        stage("rest", "c2 c3 c4 c5", max_concurrent=2, interval=3, approval=True),
    )
    a, b = new_run(p, fleet_a), new_run(p, fleet_b)
    for i in range(200):
        approve = (Command(CommandKind.APPROVE, "ops", float(i)),) if i == 30 else ()
        a.tick(approve)
        b.tick(approve)
        b.state = codec.state_from_data(codec.state_to_data(b.state))
        assert a.state == b.state
    assert a.state.phase == RolloutPhase.SUCCEEDED
    assert a.started == b.started == ["c1", "c2", "c3", "c4", "c5"]


def test_a_step_without_news_changes_nothing() -> None:
    state = start("app", NEW, plan(stage("all", "c1", approval=True)), {"c1": OLD}, 0.0)
    first = step(state, {}, (), 0.0)
    again = step(first.state, {}, (), 5.0)
    assert first.changed and not again.changed and again.state == first.state


def soaking(deadline: float = 60.0) -> RolloutState:
    """c1 healthy since t=10, soaking 30 min with a 1 min progress deadline."""
    soak = plan(stage("canary", "c1", min_healthy_time=1800, progress_deadline=deadline))
    state = step(start("app", NEW, soak, {"c1": OLD}, 0.0), {}, (), 0.0).state
    healthy = Observation(NEW, 1.0, "Healthy", 5.0, 10.0)
    state = step(state, {"c1": healthy}, (), 10.0).state
    assert state.cluster("c1").phase == ClusterPhase.SOAKING
    return state


def test_a_cluster_that_drops_out_of_its_soak_gets_the_deadline_from_then() -> None:
    state = soaking()
    blip = {"c1": Observation(NEW, 1.0, reachable=False)}
    dropped = step(state, blip, (), 900.0).state  # long after started_at + deadline
    assert dropped.cluster("c1").phase == ClusterPhase.PROGRESSING
    assert step(dropped, blip, (), 959.0).state.cluster("c1").phase == ClusterPhase.PROGRESSING
    failed = step(dropped, blip, (), 960.0).state
    assert failed.cluster("c1").phase == ClusterPhase.FAILED
    assert "unreachable after the progress deadline" in failed.cluster("c1").reason


def test_after_a_restart_the_deadline_counts_from_when_watching_started() -> None:
    state = soaking()
    unread = {"c1": Observation(NEW, 1.0)}  # applied, as the store says; no health read yet
    restarted = step(state, unread, (), 900.0, watching_since=900.0)
    c1 = restarted.state.cluster("c1")
    assert (c1.phase, c1.reason) == (ClusterPhase.PROGRESSING, "health not yet read")
    assert restarted.wake_at == 960.0
    healthy = {"c1": Observation(NEW, 1.0, "Healthy", 905.0, 905.0)}
    again = step(restarted.state, healthy, (), 905.0, watching_since=900.0).state
    assert again.cluster("c1").phase == ClusterPhase.SOAKING  # the soak starts again
    assert again.cluster("c1").healthy_since == 905.0
    late = step(restarted.state, unread, (), 960.0, watching_since=900.0).state
    assert late.cluster("c1").phase == ClusterPhase.FAILED


def test_after_a_restart_a_cluster_in_progress_gets_a_whole_deadline_again() -> None:
    slow = plan(stage("canary", "c1", progress_deadline=60.0))
    state = step(start("app", NEW, slow, {"c1": OLD}, 0.0), {}, (), 0.0).state
    assert state.cluster("c1").phase == ClusterPhase.PROGRESSING
    unread = {"c1": Observation(NEW, 1.0)}
    restarted = step(state, unread, (), 900.0, watching_since=900.0)
    assert restarted.state.cluster("c1").phase == ClusterPhase.PROGRESSING
    assert restarted.wake_at == 960.0
    late = step(restarted.state, unread, (), 960.0, watching_since=900.0).state
    assert late.cluster("c1").phase == ClusterPhase.FAILED


def test_progress_from_survives_the_codec() -> None:
    state = soaking()
    dropped = step(state, {"c1": Observation(NEW, 1.0, reachable=False)}, (), 900.0).state
    assert dropped.cluster("c1").progress_from == 900.0
    assert codec.state_from_data(codec.state_to_data(dropped)) == dropped
