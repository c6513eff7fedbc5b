"""Rendezvous hashing of clusters over replicas (pure)."""

from __future__ import annotations

import statistics

from reconciler.daemon.shards import assignment, owned, owner_of, score

CLUSTERS = [f"cluster-{n:04d}" for n in range(3000)]


def test_no_replicas_means_no_owner() -> None:
    assert owner_of("us-west-1", []) is None
    assert owned(["us-west-1"], [], "a") == []


def test_one_replica_owns_everything() -> None:
    assert owned(CLUSTERS, ["only"], "only") == CLUSTERS


def test_the_owner_does_not_depend_on_the_order_of_replicas() -> None:
    replicas = ["a", "b", "c", "d"]
    for key in CLUSTERS[:200]:
        assert owner_of(key, replicas) == owner_of(key, list(reversed(replicas)))


def test_the_score_is_stable_across_processes() -> None:
    # A fixed value: Python's salted hash() would change it per process, and replicas that
    # disagree on scores would both (or neither) work a cluster.
    assert score("us-west-1", "replica-a") == score("us-west-1", "replica-a")
    assert score("us-west-1", "replica-a") == 6494715274460550288


def test_every_key_has_exactly_one_owner_among_the_replicas() -> None:
    replicas = ["r1", "r2", "r3"]
    shares = [owned(CLUSTERS, replicas, me) for me in replicas]

    assert sorted(key for share in shares for key in share) == sorted(CLUSTERS)
    assert owned(CLUSTERS, replicas, "not-live") == []


def test_keys_spread_evenly_over_replicas() -> None:
    for count in (2, 3, 5, 10):
        replicas = [f"reconciler-{n}" for n in range(count)]
        sizes = [len(share) for share in assignment(CLUSTERS, replicas).values()]
        fair = len(CLUSTERS) / count
        print(f"{count} replicas: {sorted(sizes)} (fair {fair:.0f})")
        # 3000 keys: a binomial share's standard deviation is under 2 % of the total.
        assert max(abs(size - fair) for size in sizes) < 0.15 * fair
        assert statistics.pstdev(sizes) < 0.08 * fair


def test_a_leaving_replica_moves_only_its_own_keys() -> None:
    before = ["r1", "r2", "r3", "r4"]
    after = ["r1", "r2", "r4"]
    moved = [key for key in CLUSTERS if owner_of(key, before) != owner_of(key, after)]

    assert set(moved) == set(owned(CLUSTERS, before, "r3"))


def test_a_joining_replica_takes_about_its_share_and_only_from_others_to_itself() -> None:
    before = ["r1", "r2", "r3"]
    after = ["r1", "r2", "r3", "r4"]
    moved = [key for key in CLUSTERS if owner_of(key, before) != owner_of(key, after)]

    assert all(owner_of(key, after) == "r4" for key in moved)
    assert abs(len(moved) - len(CLUSTERS) / 4) < 0.15 * len(CLUSTERS) / 4


def test_assignment_lists_every_live_replica_even_with_no_keys() -> None:
    assert assignment([], ["b", "a"]) == {"a": [], "b": []}
    shares = assignment(CLUSTERS[:10], ["a", "b"])
    assert sorted(shares["a"] + shares["b"]) == CLUSTERS[:10]
