"""Several replicas, one behind: a replica that takes over driving an app's rollout before it has
fetched the commit the previous driver rolled out never supersedes (or stops) that rollout with
its older head; it decides once its own head has moved. A branch taken back by a force-push is
still rolled out again. The shared rollouts live on a real management cluster (a devenv API
server); each replica follows the config repo through its own Git mirror, as ``run`` does.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from reconciler.config.model import Repo
from reconciler.daemon.desired import RenderBook, TargetKey
from reconciler.daemon.lag import HeadLag
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.rollouts import Rollouts
from reconciler.daemon.shards import owner_of
from reconciler.daemon.sharedrollouts import Membership, SharedRollouts
from reconciler.kube.client import ClusterClient
from reconciler.kube.management import SharedObjects
from reconciler.loading import load_and_render
from reconciler.published.rollout import SharedRollout, decode
from reconciler.rollout.model import RolloutPhase
from reconciler.source import GitSource
from reconciler.store.db import Store
from tests.e2e.conftest import CLUSTERS
from tests.e2e.daemon_rig import API, ConfigRepo

MANAGEMENT = "beijing-1"
APP = "web"
# A problem no unit owns: the whole revision is invalid.
BROKEN_SETTINGS = {"apiVersion": API, "kind": "Settings", "spec": {"allowEmty": True}}


@pytest.fixture
def shared(kubeconfig: Path, namespace: str) -> SharedObjects:
    client = ClusterClient("management", context=MANAGEMENT, kubeconfig=str(kubeconfig))
    return SharedObjects(client, namespace, "default")


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[ExitStack]:
    """Each replica's store is closed with it."""
    with ExitStack() as stack:
        yield stack


class Replica:
    """One replica's rollouts as the daemon drives them: its own mirror, store and renders; the
    replicas in ``alive`` are the live ones (the app's driver is chosen among them)."""

    def __init__(
        self, me: str, repo: ConfigRepo, shared: SharedObjects, alive: list[str], stores: ExitStack
    ) -> None:
        log = structlog.get_logger("test").bind(replica=me)
        tmp = repo.root.parent / me
        self.source = GitSource(str(repo.root), "main", tmp / "source")
        self.store = stores.enter_context(Store.open(tmp / "state"))
        self.lag = HeadLag(self.source.ancestry, log)
        membership = Membership(me, lambda: alive, lambda cluster: True)
        clock = itertools.count(0, 10)  # every tick reads the shared rollouts again
        self.rollouts = Rollouts(
            self.store,
            Metrics(),
            log,
            SharedRollouts(shared, membership, log, clock.__next__, lag=self.lag),
        )
        self.book = RenderBook()

    def fetch(self) -> str:
        """A fetch as the source job makes it (the loop tells ``lag`` it started and ended)."""
        self.lag.fetch_started()
        sha = self.source.fetch()
        self.lag.fetched(sha)
        return sha

    def render(self, sha: str) -> Repo | None:
        """Load and render ``sha`` into the book; None when it is invalid as a whole."""
        result = load_and_render(self.source.tree(sha), partial=True)
        if result.invalid is not None:
            return None
        self.book.add(sha, result.targets, result.repo)
        return result.repo

    def head(self, sha: str, running: Mapping[TargetKey, str | None]) -> None:
        """``sha`` loaded as the new head: rollouts decided (``on_head``), as ``revisions``."""
        repo = self.render(sha)
        assert repo is not None
        self.rollouts.on_head(repo, sha, self.book, running, datetime.now(UTC))

    def tick(self) -> None:
        self.rollouts.tick(datetime.now(UTC))


def write_app(repo: ConfigRepo, version: str, rollout: bool = True) -> None:
    spec: dict[str, object] = {
        "namespace": "web",
        "source": {"manifests": "manifests/"},
        "placement": {"clusters": list(CLUSTERS)},
    }
    if rollout:
        spec["rollout"] = {
            "stages": [
                {"name": "canary", "target": {"clusters": [CLUSTERS[1]]}},
                {"name": "rest", "target": {"clusters": [CLUSTERS[0], CLUSTERS[2]]}},
            ],
        }
    repo.write(
        f"apps/{APP}/manifests/config.yaml",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": APP},
            "data": {"v": version},
        },
    )
    repo.app_spec(APP, spec)


def runs(revision: str) -> dict[TargetKey, str | None]:
    return {(APP, c): revision for c in CLUSTERS}


def shared_rollout(shared: SharedObjects) -> SharedRollout:
    found = shared.rollout(APP)
    assert found is not None
    return decode(found.data)


def test_a_replica_behind_does_not_supersede_a_newer_rollout_with_its_older_head(
    tmp_path: Path, shared: SharedObjects, stores: ExitStack
) -> None:
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters(CLUSTERS)
    write_app(repo, "1")
    h0 = repo.commit("v1")
    alive = ["a", "b"]
    a = Replica("a", repo, shared, alive, stores)
    b = Replica("b", repo, shared, alive, stores)
    driver, other = (a, b) if shared_owner(alive) == "a" else (b, a)
    assert other.fetch() == h0  # its source job is still rendering h0 meanwhile

    # The driver decides h0 (the app runs nowhere yet), then h1 starts a rollout.
    assert driver.fetch() == h0
    driver.tick()
    driver.head(h0, {})
    write_app(repo, "2")
    h1 = repo.commit("v2")
    assert driver.fetch() == h1
    driver.head(h1, runs(h0))
    driver.tick()  # the canary moves to h1
    started = shared_rollout(shared)
    assert started.head == h1 and started.state is not None and started.state.revision == h1

    # The other replica's h0 arrives late: it waits for the driver's decision on h0. What its
    # clusters run: the rollout's choice (the canary moved to h1), h0 elsewhere.
    other.tick()
    running = {**runs(h0), **other.rollouts.chosen_all()}
    assert running[(APP, CLUSTERS[1])] == h1
    other.head(h0, running)
    assert APP in other.rollouts.pending
    # Its next fetch brings h2, invalid as a whole: h0 stays its head; h1 (which the rollout
    # has clusters run) is rendered as an older revision.
    repo.write("reconciler.yaml", BROKEN_SETTINGS)
    h2 = repo.commit("broken settings")
    assert other.fetch() == h2 and other.render(h2) is None
    assert other.render(h1) is not None

    # The driver dies: the other replica drives the app now, its head still h0.
    alive.remove("a" if driver is a else "b")
    with capture_logs() as logs:
        other.tick()
        other.tick()
    after = shared_rollout(shared)
    assert after.state is not None and after.state.revision == h1, "superseded by an older head"
    assert after.state.phase != RolloutPhase.SUPERSEDED and after.head == h1
    assert other.rollouts.states[APP].revision == h1 and APP in other.rollouts.pending
    waits = [e for e in logs if e["event"].startswith("rollout waits")]
    assert [(e["app"], e["revision"], e["decided"]) for e in waits] == [(APP, h0[:12], h1[:12])]

    # Fixed: its head moves past h1 and it decides (h3 renders as h1: the rollout goes on).
    repo.git("rm", "-q", "reconciler.yaml")
    h3 = repo.commit("fix settings")
    assert other.fetch() == h3
    other.head(h3, running)
    after = shared_rollout(shared)
    assert after.head == h3 and after.state is not None and after.state.revision == h1
    assert APP not in other.rollouts.pending


def test_a_replica_behind_does_not_stop_a_rollout_its_older_head_has_no_rollout_for(
    tmp_path: Path, shared: SharedObjects, stores: ExitStack
) -> None:
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters(CLUSTERS)
    write_app(repo, "1", rollout=False)
    h0 = repo.commit("v1, no rollout")
    alive = ["a", "b"]
    a = Replica("a", repo, shared, alive, stores)
    b = Replica("b", repo, shared, alive, stores)
    driver, other = (a, b) if shared_owner(alive) == "a" else (b, a)
    assert other.fetch() == h0  # and it renders h0 slowly

    write_app(repo, "2")
    h1 = repo.commit("v2 with a rollout")
    assert driver.fetch() == h1
    driver.tick()
    assert driver.render(h0) is not None  # what its clusters run
    driver.head(h1, runs(h0))
    assert shared_rollout(shared).state is not None

    # The driver dies before the other replica's h0 arrives: it drives the app at h0, where
    # the app has no rollout, and has never fetched h1.
    alive.remove("a" if driver is a else "b")
    other.tick()
    other.head(h0, runs(h0))
    after = shared_rollout(shared)
    assert after.state is not None and after.state.revision == h1
    assert not after.state.finished, f"stopped by an older head: {after.state.phase}"
    assert APP in other.rollouts.pending

    assert other.fetch() == h1  # its next fetch: the rollout is its own
    other.head(h1, runs(h0))
    after = shared_rollout(shared)
    assert after.state is not None and not after.state.finished and after.head == h1
    assert APP not in other.rollouts.pending


def test_a_branch_taken_back_by_a_force_push_is_rolled_out_again_with_replicas(
    tmp_path: Path, shared: SharedObjects, stores: ExitStack
) -> None:
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters(CLUSTERS)
    write_app(repo, "1")
    repo.commit("v1")
    write_app(repo, "2")
    h1 = repo.commit("v2")
    alive = ["a"]
    a = Replica("a", repo, shared, alive, stores)
    assert a.fetch() == h1
    a.tick()
    a.head(h1, {})
    write_app(repo, "3")
    h2 = repo.commit("v3")
    assert a.fetch() == h2
    a.head(h2, runs(h1))
    assert shared_rollout(shared).head == h2

    repo.git("reset", "-q", "--hard", h1)  # force-pushed back to h1
    assert a.fetch() == h1
    a.tick()
    a.head(h1, {**runs(h1), **a.rollouts.chosen_all()})
    after = shared_rollout(shared)
    assert after.head == h1 and after.state is not None and after.state.revision == h1
    assert after.state.phase != RolloutPhase.SUPERSEDED


def shared_owner(alive: list[str]) -> str:
    owner = owner_of(APP, alive)
    assert owner is not None
    return owner
