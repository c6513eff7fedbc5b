"""The mass-prune guard's pure decisions."""

from __future__ import annotations

from reconciler.daemon.guard import DEFAULT_LIMITS, PruneLimits, estimate, held_message


def objects(app: str, n: int) -> set[str]:
    return {f"ConfigMap/ns/{app}-{i}" for i in range(n)}


MANAGED = {
    ("web", "c1"): objects("web", 4),
    ("web", "c2"): objects("web", 4),
    ("db", "c1"): objects("db", 4),
    ("db", "c2"): objects("db", 4),
}


def test_removing_every_app_prunes_everything_and_is_held() -> None:
    found = estimate(MANAGED, {}, reconciled={"c1", "c2"})

    assert (found.pruned, found.managed, found.clusters) == (16, 16, ("c1", "c2"))
    assert found.exceeds(DEFAULT_LIMITS)
    assert held_message("a" * 40, found, DEFAULT_LIMITS).startswith(
        "revision aaaaaaaaaaaa held: would prune 16 of 16 objects on 2 clusters"
    )
    assert "`reconciler release aaaaaaaaaaaa`" in held_message("a" * 40, found, DEFAULT_LIMITS)


def test_a_few_objects_always_pass_whatever_their_share() -> None:
    after = {k: v for k, v in MANAGED.items() if k[0] == "web"}
    after |= {("db", "c1"): set(), ("db", "c2"): objects("db", 1)}

    found = estimate(MANAGED, after, reconciled={"c1", "c2"})

    assert (found.pruned, found.managed) == (7, 16)
    assert not found.exceeds(DEFAULT_LIMITS)


def test_many_objects_pass_when_they_are_a_small_share_of_a_large_fleet() -> None:
    managed = {("app", f"c{i}"): objects("app", 10) for i in range(20)}  # 200 objects
    after = dict(managed) | {("app", "c0"): set(), ("app", "c1"): set()}

    found = estimate(managed, after, reconciled={f"c{i}" for i in range(20)})

    assert (found.pruned, found.managed) == (20, 200)
    assert not found.exceeds(DEFAULT_LIMITS)  # 10% of what is managed
    assert found.exceeds(PruneLimits(max_objects=10, max_percent=5))


def test_targets_on_a_cluster_without_passes_prune_nothing() -> None:
    found = estimate(MANAGED, {}, reconciled={"c1"})

    assert (found.pruned, found.clusters) == (8, ("c1",))


def test_objects_kept_by_the_caller_are_not_counted() -> None:
    found = estimate(MANAGED, dict(MANAGED), reconciled={"c1", "c2"})

    assert (found.pruned, found.clusters, dict(found.by_target)) == (0, (), {})


def test_the_limits_are_a_count_and_a_share_both_exceeded() -> None:
    limits = PruneLimits(max_objects=10, max_percent=25)

    assert limits.allows(10, 10)
    assert limits.allows(11, 44)
    assert not limits.allows(11, 43)
    assert PruneLimits(max_percent=100).allows(1000, 1000)
    assert limits.allows(0, 0)
