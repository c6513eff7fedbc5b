"""Several replicas: the loop works only the clusters the gate (the replica's Leases) gives it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.store.db import Store
from tests.unit.daemon_rig import HeldDispatcher, make_rig, repo_files


@dataclass
class FakeGate:
    ours: set[str] = field(default_factory=set)
    told: list[tuple[frozenset[str], frozenset[str]]] = field(default_factory=list)
    given_back: set[str] = field(default_factory=set)  # released after claim, before dispatch

    def claim(self, clusters: Collection[str], busy: Collection[str]) -> frozenset[str]:
        self.told.append((frozenset(clusters), frozenset(busy)))
        return frozenset(self.ours) & frozenset(clusters)

    def begin(self, cluster: str) -> bool:
        return cluster in self.ours and cluster not in self.given_back


def test_only_the_clusters_the_gate_gives_are_passed(tmp_path: Path, store: Store) -> None:
    gate = FakeGate({"beijing-1"})
    rig = make_rig(tmp_path, store, gate=gate)
    sha = rig.source.commit_files(repo_files())

    sleep = rig.daemon.tick()

    assert rig.clusters.calls == [("beijing-1", sha, ["web"])]
    assert gate.told[-1][0] == {"beijing-1", "beijing-2", "us-west-1"}
    assert sleep > 0  # the clusters of other replicas are no reason to wake up
    assert rig.daemon.once_done()


def test_no_pass_starts_on_a_cluster_given_back_since_the_claim(
    tmp_path: Path, store: Store
) -> None:
    gate = FakeGate({"beijing-1", "beijing-2"}, given_back={"beijing-2"})
    rig = make_rig(tmp_path, store, gate=gate)
    sha = rig.source.commit_files(repo_files())

    rig.daemon.tick()

    assert rig.clusters.calls == [("beijing-1", sha, ["web"])]


def test_a_cluster_that_becomes_ours_is_passed_at_once(tmp_path: Path, store: Store) -> None:
    gate = FakeGate({"beijing-1"})
    rig = make_rig(tmp_path, store, gate=gate)
    sha = rig.source.commit_files(repo_files())
    rig.tick()

    gate.ours.add("us-west-1")
    rig.clock.advance(1.0)
    rig.tick()

    assert rig.clusters.passes("us-west-1") == [sha]
    assert rig.clusters.passes("beijing-1") == [sha]  # not before its drift interval


def test_a_cluster_we_lost_gets_no_more_passes_and_one_we_regain_is_passed_at_once(
    tmp_path: Path, store: Store
) -> None:
    gate = FakeGate({"beijing-1", "beijing-2"})
    rig = make_rig(tmp_path, store, gate=gate)
    sha = rig.source.commit_files(repo_files())
    rig.tick()

    gate.ours.discard("beijing-2")
    rig.clock.advance(120.0)
    rig.tick()
    assert rig.clusters.passes("beijing-2") == [sha]
    assert rig.clusters.passes("beijing-1") == [sha, sha]

    gate.ours.add("beijing-2")
    rig.clock.advance(1.0)
    rig.tick()
    assert rig.clusters.passes("beijing-2") == [sha, sha]


def test_a_cluster_we_regain_keeps_its_backoff(tmp_path: Path, store: Store) -> None:
    gate = FakeGate({"beijing-1", "beijing-2"})
    rig = make_rig(tmp_path, store, gate=gate)
    rig.clusters.down.add("beijing-2")
    sha = rig.source.commit_files(repo_files())
    rig.tick()  # unreachable: backs off for 5 s
    assert rig.clusters.passes("beijing-2") == [sha]

    gate.ours.discard("beijing-2")  # our session lapsed a moment
    rig.clock.advance(1.0)
    rig.tick()
    gate.ours.add("beijing-2")
    rig.clock.advance(1.0)
    rig.tick()
    assert rig.clusters.passes("beijing-2") == [sha]  # still backing off

    rig.clock.advance(3.0)
    rig.tick()
    assert rig.clusters.passes("beijing-2") == [sha, sha]


def test_a_cluster_another_replica_works_now_exports_no_frozen_gauges(
    tmp_path: Path, store: Store
) -> None:
    held = HeldDispatcher()
    gate = FakeGate({"beijing-1", "beijing-2", "us-west-1"})
    rig = make_rig(tmp_path, store, gate=gate, dispatcher=held)
    rig.source.commit_files(repo_files())
    rig.tick()
    rig.tick()
    for name in ("beijing-1", "beijing-2", "us-west-1"):
        held.release(name)
    rig.tick()
    text = rig.daemon.metrics.exposition().decode()
    assert 'reconciler_cluster_reachable{cluster="beijing-2"} 1.0' in text
    assert 'reconciler_drifted_objects{app="web",cluster="beijing-2"}' in text
    rig.clock.advance(120.0)
    rig.tick()  # drift checks in flight on beijing-2 and us-west-1

    gate.ours -= {"beijing-2", "us-west-1"}  # moved to another replica
    rig.tick()
    held.release("us-west-1")  # its pass ends after it moved
    rig.tick()

    text = rig.daemon.metrics.exposition().decode()
    assert 'cluster="beijing-1"' in text
    assert 'reconciler_cluster_reachable{cluster="us-west-1"}' not in text
    assert 'reconciler_drifted_objects{app="web",cluster="us-west-1"}' not in text
    assert 'reconciler_cluster_reachable{cluster="beijing-2"}' in text  # its pass still runs
    held.release("beijing-2")
    rig.tick()
    text = rig.daemon.metrics.exposition().decode()
    assert 'reconciler_cluster_reachable{cluster="beijing-2"}' not in text
    assert 'reconciler_drifted_objects{app="web",cluster="beijing-2"}' not in text


def test_the_gate_is_told_which_passes_are_in_flight_and_a_lost_one_is_still_recorded(
    tmp_path: Path, store: Store
) -> None:
    held = HeldDispatcher()
    gate = FakeGate({"beijing-1", "us-west-1"})
    rig = make_rig(tmp_path, store, gate=gate, dispatcher=held)
    rig.source.commit_files(repo_files())
    rig.tick()
    rig.tick()
    assert gate.told[-1][1] == {"beijing-1", "us-west-1"}

    gate.ours.discard("us-west-1")
    rig.tick()
    held.release("us-west-1")
    rig.tick()

    assert ("web", "us-west-1") in rig.states()
    assert gate.told[-1][1] == {"beijing-1"}
    assert "us-west-1" not in held.held
