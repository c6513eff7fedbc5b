"""Replicas' Leases on a real API server (the management cluster): the Lease API with
optimistic concurrency, and ``ReplicaLeases`` rounds driven step by step on a fake clock, so
expiry needs no waiting. The daemon processes themselves: ``test_replicas``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from kubernetes import client

from reconciler.daemon.metrics import Metrics
from reconciler.daemon.replicas import ReplicaLeases, ShardSettings
from reconciler.daemon.shards import owner_of
from reconciler.kube.kubeconfig import Kubeconfig
from reconciler.kube.leases import Lease, LeaseApi, LeaseConflict

MANAGEMENT = "beijing-1"
CLUSTERS = [f"edge-{n:02d}" for n in range(30)]


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def lease_namespace(api_clients: dict[str, client.ApiClient]) -> Iterator[str]:
    name = f"leases-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api_clients[MANAGEMENT])
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture
def api(kubeconfig: Path, lease_namespace: str) -> Iterator[LeaseApi]:
    leases = LeaseApi(Kubeconfig(str(kubeconfig)), MANAGEMENT, lease_namespace)
    yield leases
    leases.close()


def replica(
    api: LeaseApi, name: str, clock: Clock, metrics: Metrics | None = None
) -> ReplicaLeases:
    settings = ShardSettings(api.namespace, name, "test", duration=15.0, renew=5.0)
    return ReplicaLeases(api, settings, monotonic=clock, metrics=metrics)


def rounds(replicas: list[ReplicaLeases], claims: dict[str, set[str]] | None = None) -> None:
    """One lease round of each replica, then every loop claims; no cluster claimed twice."""
    for r in replicas:
        r.claim(CLUSTERS, ())  # the loop says which clusters there are
        r.step()
    seen: dict[str, str] = {}
    for r in replicas:
        mine = r.claim(CLUSTERS, ())
        for cluster in mine:
            assert cluster not in seen, f"{cluster} claimed by {seen.get(cluster)} and {r.me}"
            seen[cluster] = r.me
        if claims is not None:
            claims[r.me] = set(mine)


def test_an_update_from_a_stale_read_is_refused(api: LeaseApi) -> None:
    created = api.create(Lease("x", holder="a", duration=15, labels={"k": "v"}))
    assert api.get("x") == created
    assert api.get("missing") is None
    with pytest.raises(LeaseConflict):
        api.create(Lease("x", holder="b"))

    updated = api.update(replace(created, holder="b"))
    with pytest.raises(LeaseConflict, match="update Lease x: HTTP 409"):
        api.update(Lease("x", holder="c", duration=15, resource_version=created.resource_version))

    assert api.get("x") == updated
    assert [lease.name for lease in api.list("k=v")] == ["x"]
    assert api.delete(updated)
    assert not api.delete(updated)


def test_replicas_split_the_clusters_and_a_dead_ones_clusters_move_after_the_lease_duration(
    api: LeaseApi,
) -> None:
    clock = Clock()
    a, b, c = (replica(api, name, clock) for name in ("a", "b", "c"))
    claims: dict[str, set[str]] = {}
    for _ in range(3):
        rounds([a, b, c], claims)
    assert set().union(*claims.values()) == set(CLUSTERS)
    assert all(5 <= len(share) <= 15 for share in claims.values()), claims
    dead = claims["c"]
    taken = sorted(dead)[0]
    before = api.get(f"test.cluster.{taken}")
    assert before is not None and before.holder == "c"

    c.stop(release=False)  # SIGKILL: nothing released
    for _ in range(2):
        clock.t += 5.0
        rounds([a, b], claims)
    assert not dead & (claims["a"] | claims["b"])  # not before the lease duration

    # Its last renewal was seen (at worst) one round after it was written, at 105.
    clock.t += 10.0
    rounds([a, b], claims)
    rounds([a, b], claims)
    assert claims["a"] | claims["b"] == set(CLUSTERS)
    lease = api.get(f"test.cluster.{taken}")
    assert lease is not None and lease.holder in {"a", "b"}
    assert lease.transitions == before.transitions + 1

    # Long gone: its Lease is deleted (names of pods are new at every rollout).
    assert api.get("test.replica.c") is not None
    clock.t += 150.0
    rounds([a, b], claims)
    assert api.get("test.replica.c") is None
    assert api.get("test.replica.a") is not None


def test_a_joining_replica_takes_its_share_once_the_holders_give_it_back(api: LeaseApi) -> None:
    clock = Clock()
    metrics, metrics_a = Metrics(), Metrics()
    a, b = replica(api, "a", clock, metrics_a), replica(api, "b", clock)
    rounds([a, b])
    rounds([a, b])
    c = replica(api, "c", clock, metrics)

    claims: dict[str, set[str]] = {}
    for _ in range(3):
        clock.t += 1.0
        rounds([a, b, c], claims)

    assert set().union(*claims.values()) == set(CLUSTERS)
    assert 5 <= len(claims["c"]) <= 15
    text = metrics.exposition().decode()
    assert f'reconciler_shard_owned_clusters{{replica="c"}} {len(claims["c"])}.0' in text
    assert "reconciler_shard_replicas 3.0" in text
    owners = metrics_a.exposition().decode()
    assert owners.count('reconciler_shard_cluster_owner{cluster="') == len(claims["a"])


def test_a_cleanly_stopped_replicas_clusters_move_at_once(api: LeaseApi) -> None:
    clock = Clock()
    a, b = replica(api, "a", clock), replica(api, "b", clock)
    rounds([a, b])
    rounds([a, b])

    b.stop()
    assert api.get("test.replica.b") is None  # a clean stop leaves nothing behind
    claims: dict[str, set[str]] = {}
    clock.t += 1.0
    rounds([a], claims)

    assert claims["a"] == set(CLUSTERS)


def test_a_replica_whose_session_lapses_stops_claiming_until_it_renews(api: LeaseApi) -> None:
    clock = Clock()
    a = replica(api, "a", clock)
    rounds([a])
    assert a.claim(CLUSTERS, ()) == set(CLUSTERS)

    clock.t += 10.0  # renew sent at 100: valid until 100 + 15 - 5
    assert a.claim(CLUSTERS, ()) == frozenset()
    a.step()
    assert a.claim(CLUSTERS, ()) == set(CLUSTERS)


def test_a_cluster_with_a_pass_in_flight_is_kept_until_it_ends(api: LeaseApi) -> None:
    clock = Clock()
    busy = next(c for c in CLUSTERS if owner_of(c, ["a", "b"]) == "b")
    a = replica(api, "a", clock)
    rounds([a])
    b = replica(api, "b", clock)

    a.claim(CLUSTERS, (busy,))  # a pass runs there
    b.claim(CLUSTERS, ())
    b.step()
    a.step()
    b.step()
    assert busy not in a.claim(CLUSTERS, (busy,))  # b owns it now: no new pass
    assert busy not in b.claim(CLUSTERS, ())  # but a still holds it
    lease = api.get(f"test.cluster.{busy}")
    assert lease is not None and lease.holder == "a"

    a.claim(CLUSTERS, ())  # the pass ended
    a.step()
    b.step()
    assert busy in b.claim(CLUSTERS, ())


def holder_of(api: LeaseApi, cluster: str) -> str | None:
    lease = api.get(f"test.cluster.{cluster}")
    assert lease is not None
    return lease.holder


def test_a_release_refused_is_retried_until_the_lease_no_longer_names_us(api: LeaseApi) -> None:
    clock = Clock()
    a = replica(api, "a", clock)
    rounds([a])
    moving = sorted(c for c in CLUSTERS if owner_of(c, ["a", "b"]) == "b")
    # Someone writes a Lease a holds (still naming a): a's release, from its older read, gets
    # a 409 although the Lease is still a's.
    lease = api.get(f"test.cluster.{moving[0]}")
    assert lease is not None and lease.holder == "a"
    api.update(replace(lease, labels={**lease.labels, "touched": "yes"}))

    b = replica(api, "b", clock)
    claims: dict[str, set[str]] = {}
    for _ in range(4):
        clock.t += 1.0
        rounds([b, a], claims)

    assert holder_of(api, moving[0]) == "b"
    assert claims["b"] == set(moving)
    assert claims["a"] | claims["b"] == set(CLUSTERS)


def test_after_a_lapse_the_leases_no_longer_ours_are_given_back(api: LeaseApi) -> None:
    clock = Clock()
    a, b = replica(api, "a", clock), replica(api, "b", clock)
    rounds([a, b])
    rounds([a, b])
    held_by_a = a.claim(CLUSTERS, ())
    assert held_by_a

    # a cannot renew for 12 s (its session lapses after 10 s; the others still see it live,
    # until 15 s), and c joins meanwhile: some of a's clusters are c's now.
    c = replica(api, "c", clock)
    for _ in range(3):
        clock.t += 4.0
        rounds([b, c])
    claims: dict[str, set[str]] = {}
    for _ in range(3):
        clock.t += 1.0
        rounds([a, b, c], claims)

    to_c = {x for x in held_by_a if owner_of(x, ["a", "b", "c"]) == "c"}
    assert to_c
    assert {x: holder_of(api, x) for x in to_c} == dict.fromkeys(to_c, "c")
    assert to_c <= claims["c"]
    assert set().union(*claims.values()) == set(CLUSTERS)


def test_a_renewal_refused_for_a_stale_read_is_read_again_and_retried_at_once(
    api: LeaseApi,
) -> None:
    clock = Clock()
    a = replica(api, "a", clock)
    rounds([a])
    session = api.get("test.replica.a")
    assert session is not None
    api.update(replace(session, labels={**session.labels, "touched": "yes"}))

    clock.t += 5.0
    a.step()  # its renewal from the older read gets a 409
    clock.t += 5.5  # past what the renewal at 100 allows (100 + 15 - 5)

    assert a.claim(CLUSTERS, ()) == set(CLUSTERS)


def test_leases_say_whole_seconds_and_the_holder_judges_itself_by_them(api: LeaseApi) -> None:
    clock = Clock()
    settings = ShardSettings(api.namespace, "a", "test", duration=10.9, renew=2.0)
    a = ReplicaLeases(api, settings, monotonic=clock)
    a.claim(CLUSTERS, ())
    a.step()
    session = api.get("test.replica.a")
    assert session is not None and session.duration == 10

    clock.t += 10.0 - 2.0  # renewed at 100: valid until 100 + 10 - margin (2)
    assert a.claim(CLUSTERS, ()) == frozenset()


def test_the_session_starts_only_once_the_loop_claims(api: LeaseApi) -> None:
    settings = ShardSettings(api.namespace, "a", "test", duration=15.0, renew=5.0)
    a = ReplicaLeases(api, settings, start_on_claim=True)
    try:
        assert api.get("test.replica.a") is None  # no revision loaded yet: no share
        a.claim(CLUSTERS, ())
        deadline = time.monotonic() + 30.0
        while api.get("test.replica.a") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert api.get("test.replica.a") is not None
    finally:
        a.stop()
