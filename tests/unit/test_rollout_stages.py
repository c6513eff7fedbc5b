"""Resolving a strategy's stages against the placed clusters."""

from __future__ import annotations

import pytest

from reconciler.rollout.model import OnFailure
from reconciler.rollout.stages import (
    Policy,
    Quantity,
    StageSpec,
    canary_clusters,
    plan,
)

PLACED = ["us-west-1", "beijing-2", "beijing-1", "eu-1", "eu-2"]


def spec(name: str, clusters: str, **kw: object) -> StageSpec:
    return StageSpec(name, frozenset(clusters.split()), **kw)  # type: ignore[arg-type]


def test_first_match_wins_and_unmatched_clusters_go_last_by_name() -> None:
    p = plan(
        [spec("beijing", "beijing-1 beijing-2"), spec("asia-and-eu", "beijing-1 eu-1")],
        PLACED,
        Policy(),
    )
    assert [(s.name, s.clusters) for s in p.stages] == [
        ("beijing", ("beijing-1", "beijing-2")),
        ("asia-and-eu", ("eu-1",)),
        ("remaining", ("eu-2", "us-west-1")),
    ]
    assert p.warnings == ()


def test_listed_clusters_keep_their_order_then_the_rest_by_name() -> None:
    p = plan([spec("all", " ".join(PLACED), listed=("us-west-1", "eu-2"))], PLACED, Policy())
    assert p.stages[0].clusters == ("us-west-1", "eu-2", "beijing-1", "beijing-2", "eu-1")


def test_a_stage_matching_nothing_is_a_warning() -> None:
    p = plan(
        [spec("mars", "mars-1"), spec("all", " ".join(PLACED)), spec("late", "eu-1")],
        PLACED,
        Policy(),
    )
    assert p.warnings == (
        "stage mars matches no cluster the app is placed on",
        "stage late: every cluster it matches is in an earlier stage",
    )
    assert next(s.clusters for s in p.stages) == ()


def test_the_remaining_stage_name_never_collides() -> None:
    p = plan([spec("remaining", "eu-1")], PLACED, Policy())
    assert [s.name for s in p.stages] == ["remaining", "remaining-"]


def test_quantities_resolve_per_stage() -> None:
    policy = Policy(
        max_concurrent=Quantity.parse("25%"),
        max_failures=Quantity.parse("50%"),
        on_failure=OnFailure.ROLLBACK,
    )
    p = plan([spec("all", " ".join(PLACED), policy=policy)], PLACED, Policy())
    stage = p.stages[0]
    assert (stage.max_concurrent, stage.max_failures) == (2, 2)  # ceil(1.25), floor(2.5)
    assert stage.batches() == (("beijing-1", "beijing-2"), ("eu-1", "eu-2"), ("us-west-1",))
    assert stage.on_failure == OnFailure.ROLLBACK


def test_a_zero_batch_size_still_takes_one_cluster() -> None:
    assert Quantity.parse(0).at_least_one(5) == 1
    assert Quantity.parse("0%").at_least_one(5) == 1
    assert Quantity.parse("100%").at_least_one(5) == 5


@pytest.mark.parametrize("raw", ["x", "101%", -1, "1.5", True, "%"])
def test_bad_quantities_say_why(raw: object) -> None:
    with pytest.raises(ValueError):
        Quantity.parse(raw)  # type: ignore[arg-type]


def test_canary_by_name_or_by_count() -> None:
    assert canary_clusters(PLACED, None, ["eu-2", "nope"]) == {"eu-2"}
    assert canary_clusters(PLACED, 2, []) == {"beijing-1", "beijing-2"}
