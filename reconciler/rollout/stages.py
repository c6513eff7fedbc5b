"""A strategy's stages resolved against the clusters an app is placed on: the rollout plan.

Each placed cluster belongs to the first stage whose target matches it; clusters no stage
matches form a last stage (``remaining``). Within a stage, clusters the stage lists by name come
first in their listed order, then the others by name, so the plan is the same on every run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from reconciler.rollout.model import OnFailure, PlannedStage, RolloutPlan

REMAINING = "remaining"
_QUANTITY = re.compile(r"^(\d+)%$")


@dataclass(frozen=True)
class Quantity:
    """A count of clusters, or a percentage of a stage's clusters."""

    value: int
    percent: bool = False

    @classmethod
    def parse(cls, raw: int | str) -> Quantity:
        """``3`` or ``"25%"``; ValueError with a message for anything else."""
        if isinstance(raw, bool):
            raise ValueError(f"{raw!r} is not a count or a percentage (e.g. 2 or 25%)")
        if isinstance(raw, int):
            if raw < 0:
                raise ValueError(f"{raw} is negative")
            return cls(raw)
        match = _QUANTITY.match(raw.strip())
        if match is None:
            raise ValueError(f"{raw!r} is not a count or a percentage (e.g. 2 or 25%)")
        value = int(match.group(1))
        if value > 100:
            raise ValueError(f"{raw!r} is more than 100%")
        return cls(value, percent=True)

    def at_most(self, total: int) -> int:
        """As a failure budget: a percentage rounds down."""
        return math.floor(total * self.value / 100) if self.percent else self.value

    def at_least_one(self, total: int) -> int:
        """As a batch size: a percentage rounds up, and a batch takes at least one cluster."""
        count = math.ceil(total * self.value / 100) if self.percent else self.value
        return max(1, count)

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


@dataclass(frozen=True)
class Policy:
    """The gates of a stage; the strategy's values fill what a stage leaves out."""

    max_concurrent: Quantity = Quantity(100, percent=True)
    min_healthy_time: float = 0.0
    interval: float = 0.0
    approval: bool = False
    progress_deadline: float = 600.0
    max_failures: Quantity = Quantity(0)
    on_failure: OnFailure = OnFailure.HALT


@dataclass(frozen=True)
class StageSpec:
    """A stage as written, with the placed clusters its target matches."""

    name: str
    matches: frozenset[str]
    policy: Policy = Policy()
    listed: tuple[str, ...] = field(default=())  # clusters named by the stage, in their order


def canary_clusters(
    placed: Sequence[str], count: int | None, names: Sequence[str]
) -> frozenset[str]:
    """The canary: the named clusters, else the first ``count`` placed clusters by name."""
    if names:
        return frozenset(n for n in names if n in placed)
    return frozenset(sorted(placed)[: count or 0])


def plan(specs: Sequence[StageSpec], placed: Collection[str], remaining: Policy) -> RolloutPlan:
    """The ordered plan: first match wins; unmatched placed clusters go last."""
    taken: set[str] = set()
    stages: list[PlannedStage] = []
    warnings: list[str] = []
    for spec in specs:
        matched = [c for c in spec.matches if c in placed]
        mine = [c for c in matched if c not in taken]
        if not matched:
            warnings.append(f"stage {spec.name} matches no cluster the app is placed on")
        elif not mine:
            warnings.append(f"stage {spec.name}: every cluster it matches is in an earlier stage")
        taken.update(mine)
        stages.append(_stage(spec.name, _ordered(mine, spec.listed), spec.policy))
    rest = sorted(c for c in placed if c not in taken)
    if rest:
        name = REMAINING
        while name in {s.name for s in stages}:
            name += "-"
        stages.append(_stage(name, tuple(rest), remaining))
    return RolloutPlan(tuple(stages), tuple(warnings))


def _ordered(clusters: Collection[str], listed: Sequence[str]) -> tuple[str, ...]:
    first = [c for c in dict.fromkeys(listed) if c in clusters]
    return (*first, *sorted(c for c in clusters if c not in first))


def _stage(name: str, clusters: tuple[str, ...], policy: Policy) -> PlannedStage:
    total = len(clusters)
    return PlannedStage(
        name=name,
        clusters=clusters,
        max_concurrent=policy.max_concurrent.at_least_one(total),
        min_healthy_time=policy.min_healthy_time,
        interval=policy.interval,
        approval=policy.approval,
        progress_deadline=policy.progress_deadline,
        max_failures=policy.max_failures.at_most(total),
        on_failure=policy.on_failure,
    )
