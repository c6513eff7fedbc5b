"""An app's rollout strategy (``spec.rollout``, else the repo's default) as a plan for the
clusters it is placed on (pure: config and placement only)."""

from __future__ import annotations

from reconciler.config.model import App, Repo
from reconciler.config.schema import CANARY, RolloutGates, RolloutSpec
from reconciler.placement import select, targets
from reconciler.rollout.model import OnFailure, RolloutPlan
from reconciler.rollout.stages import Policy, Quantity, StageSpec, canary_clusters, plan

BUILTIN = Policy()


def strategy_of(repo: Repo, app: App) -> RolloutSpec | None:
    """The app's own strategy, else the repo-wide one (``reconciler.yaml``), else None."""
    return app.rollout if app.rollout is not None else repo.settings.rollout


def plan_for(repo: Repo, app: App) -> RolloutPlan | None:
    """The rollout plan of ``app`` over its placed, unpaused clusters; None without a strategy."""
    spec = strategy_of(repo, app)
    if spec is None:
        return None
    placed = [c.name for c in targets(repo, app)]
    defaults = policy(spec, BUILTIN)
    specs: list[StageSpec] = []
    if spec.canary is not None:
        canary = spec.canary
        members = canary_clusters(placed, canary.count, canary.clusters)
        gate = policy(canary, defaults, approval=canary.approval == "manual")
        specs.append(StageSpec(CANARY, members, gate, tuple(canary.clusters)))
    for stage in spec.stages:
        matches = frozenset(
            name
            for name in placed
            if select(repo, stage.target, repo.clusters[name], f"stage {stage.name}")[0]
        )
        gate = policy(stage, defaults, approval=stage.approval == "manual")
        specs.append(StageSpec(stage.name, matches, gate, tuple(stage.target.clusters)))
    return plan(specs, placed, defaults)


def policy(gates: RolloutGates, base: Policy, approval: bool = False) -> Policy:
    """``base`` with what ``gates`` sets."""

    def quantity(raw: int | str | None, fallback: Quantity) -> Quantity:
        return fallback if raw is None else Quantity.parse(raw)

    def seconds(raw: float | None, fallback: float) -> float:
        return fallback if raw is None else raw

    return Policy(
        max_concurrent=quantity(gates.max_concurrent, base.max_concurrent),
        min_healthy_time=seconds(gates.min_healthy_time, base.min_healthy_time),
        interval=seconds(gates.interval, base.interval),
        approval=approval,
        progress_deadline=seconds(gates.progress_deadline, base.progress_deadline),
        max_failures=quantity(gates.max_failures, base.max_failures),
        on_failure=OnFailure(gates.on_failure) if gates.on_failure else base.on_failure,
    )
