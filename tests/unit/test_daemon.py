"""The daemon's loop without clusters: a fake clock, a fake Git source, passes run inline.

Config repos are real directories loaded and rendered by the real stages; only the cluster
side (``engine.reconcile``) is replaced by a recorder that can play an unreachable cluster.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import repo_snippets as snip

from reconciler.config.model import Repo
from reconciler.daemon.loop import Daemon
from reconciler.daemon.schedule import Backoff, ClusterSchedule, PassKind, Settings, classify
from reconciler.daemon.status import target_status
from reconciler.engine import TargetOutcome
from reconciler.errors import ClusterUnreachable, KubeError, RenderError, SourceError
from reconciler.fields import FieldChange
from reconciler.kube.pool import Clients
from reconciler.objects import ObjectRef
from reconciler.render import TargetResult
from reconciler.source import CommitInfo
from reconciler.store.db import Store
from reconciler.store.rows import SourceStatus, State, StatusRow
from reconciler.sync.model import Action, ApplyResult, Change, Drift, TargetPlan

T = TypeVar("T")
T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
CLUSTERS = ("beijing-1", "beijing-2", "us-west-1")


# ---- fakes ----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t - 1000.0)

    def advance(self, seconds: float) -> None:
        self.t += seconds


class InlineDispatcher:
    """Runs every job at once, on the calling thread."""

    def submit(self, job: Callable[[], T], name: str) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(job())
        except Exception as err:
            future.set_exception(err)
        return future


class HeldDispatcher:
    """Keeps cluster passes (and, if asked, source jobs) pending until the test releases them."""

    def __init__(self, hold_source: bool = False) -> None:
        self.hold_source = hold_source
        self.held: dict[str, tuple[Callable[[], Any], Future[Any]]] = {}
        self.submitted: list[str] = []

    def submit(self, job: Callable[[], T], name: str) -> Future[T]:
        future: Future[T] = Future()
        self.submitted.append(name.removeprefix("reconciler-"))
        if name == "reconciler-source" and not self.hold_source:
            future.set_result(job())
        else:
            self.held[name.removeprefix("reconciler-")] = (job, future)
        return future

    def release(self, cluster: str) -> None:
        job, future = self.held.pop(cluster)
        future.set_result(job())


class FakeSource:
    """A branch whose head the test moves; each revision is a directory written by the test.

    While ``fail`` is set, every fetch raises it (an unreachable remote, bad credentials...).
    Each commit's parent is the head before it; :meth:`orphan` starts an unrelated history
    (a force-push or a switch to another branch).
    """

    display = "fake-repo"
    branch: str | None = "main"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.trees: dict[str, Path] = {}
        self.head: str | None = None
        self.parents: dict[str, str | None] = {}
        self.fetches = 0
        self.fail: Exception | None = None

    def commit_files(self, files: dict[str, str]) -> str:
        sha = f"c{len(self.trees) + 1:03d}".ljust(40, "0")  # distinct in its short form too
        tree = self.root / sha
        for rel, text in files.items():
            path = tree / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"))
        self.trees[sha] = tree
        self.parents[sha] = self.head
        self.head = sha
        return sha

    def orphan(self) -> None:
        """The next commit starts a history of its own (what was the branch is left behind)."""
        self.head = None

    def fetch(self) -> str:
        self.fetches += 1
        if self.fail is not None:
            raise self.fail
        assert self.head is not None
        return self.head

    def commit(self, rev: str) -> CommitInfo:
        index = list(self.trees).index(rev)
        return CommitInfo(rev, rev[:7], "tester", f"commit {index}", T0 + timedelta(minutes=index))

    def tree(self, rev: str) -> Path:
        return self.trees[rev]

    def watch_paths(self) -> list[Path]:
        return []

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        current: str | None = descendant
        while current is not None:
            if current == ancestor:
                return True
            current = self.parents.get(current)
        return False


@dataclass
class FakeClusters:
    """Plays ``engine.reconcile``: records calls, can be down, can report drift."""

    down: set[str] = field(default_factory=set)
    drift: dict[tuple[str, str], list[Change]] = field(default_factory=dict)
    heal: bool = False
    calls: list[tuple[str, str, list[str]]] = field(default_factory=list)

    def __call__(
        self,
        repo: Repo,
        rendered: Iterable[TargetResult],
        clients: Clients,
        revision: str,
        *,
        apply: bool,
        clusters: Iterable[str] | None = None,
        prune_departed: bool = True,
        instance: str = "default",
    ) -> list[TargetOutcome]:
        assert apply and clusters is not None and instance == "default"
        (name,) = list(clusters)
        targets = list(rendered)
        assert all(t.cluster == name for t in targets)
        self.calls.append((name, revision, sorted(t.app for t in targets)))
        if name in self.down:
            error = ClusterUnreachable(
                "unreachable at https://127.0.0.1:1: timed out", cluster=name
            )
            return [TargetOutcome(t.app, name, error=error, unreachable=True) for t in targets]
        outcomes = []
        for t in targets:
            if t.error is not None:
                outcomes.append(TargetOutcome(t.app, name, error=t.error))
                continue
            changes = self.drift.get((t.app, name), [])
            plan = TargetPlan(t.app, name, revision, changes, {}, None, {})
            result = ApplyResult(t.app, name, revision)
            if self.heal:
                result.corrected = [c.ref for c in changes if c.action is not Action.KEEP]
            outcomes.append(TargetOutcome(t.app, name, plan=plan, result=result))
        return outcomes

    def passes(self, cluster: str) -> list[str]:
        """Revisions of the passes a cluster got, in order."""
        return [rev for name, rev, _ in self.calls if name == cluster]


# ---- config repos ---------------------------------------------------------------------------


def configmap(name: str, value: str = "1") -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: '{value}'\n"
    )


def repo_files(
    value: str = "1",
    placement: str = "clusters: [beijing-1, beijing-2, us-west-1]",
    paused: Iterable[str] = (),
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    files = {
        f"clusters/{name}.yaml": snip.cluster(name, paused=name in set(paused)) for name in CLUSTERS
    }
    files["apps/web/app.yaml"] = snip.app(
        "web",
        f"""
        namespace: web
        source: {{manifests: manifests/}}
        placement: {{{placement}}}
        """,
    )
    files["apps/web/manifests/cm.yaml"] = configmap("web", value)
    files.update(extra or {})
    return files


# ---- fixtures -------------------------------------------------------------------------------


@dataclass
class Rig:
    daemon: Daemon
    clock: FakeClock
    source: FakeSource
    clusters: FakeClusters
    store: Store

    def tick(self, times: int = 1) -> None:
        for _ in range(times):
            self.daemon.tick()

    def states(self) -> dict[tuple[str, str], State]:
        return {(r.app, r.cluster): r.state for r in self.store.list_status()}


SETTINGS = Settings(
    interval=30.0,
    drift_interval=60.0,
    jitter=0.1,
    backoff=Backoff(initial=5.0, factor=2.0, maximum=40.0),
    cluster_timeout=100.0,
    watch=False,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "state") as opened:
        yield opened


def make_rig(
    tmp_path: Path,
    store: Store,
    *,
    dispatcher: Any = None,
    settings: Settings = SETTINGS,
    rand: Callable[[], float] = lambda: 0.5,
    source: FakeSource | None = None,
) -> Rig:
    clock = FakeClock()
    source = source or FakeSource(tmp_path / "trees")
    clusters = FakeClusters()
    daemon = Daemon(
        source,
        store,
        Clients(None),
        settings=settings,
        clock=clock,
        dispatcher=dispatcher or InlineDispatcher(),
        reconcile_fn=clusters,
        rand=rand,
    )
    return Rig(daemon, clock, source, clusters, store)


def restart(tmp_path: Path, store: Store, source: FakeSource) -> Rig:
    restarted = make_rig(tmp_path, store, source=source)
    restarted.tick()
    return restarted


@pytest.fixture
def rig(tmp_path: Path, store: Store) -> Rig:
    return make_rig(tmp_path, store)


# ---- backoff and per-cluster schedules (pure) -----------------------------------------------


def test_backoff_doubles_per_failure_up_to_its_maximum() -> None:
    backoff = Backoff(initial=2.0, factor=2.0, maximum=30.0)

    assert [backoff.delay(n) for n in range(7)] == [0.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_an_unreachable_cluster_blocks_its_schedule_until_the_backoff_expires() -> None:
    schedule = ClusterSchedule("us-west-1")
    schedule.start(100.0)
    schedule.finish(101.0, 1, PassKind.CLUSTER_FAILED, SETTINGS)

    assert not schedule.due(105.9, generation=2)  # even a new revision waits
    assert schedule.due(106.0, generation=2)
    assert schedule.wake_at(2, SETTINGS.cluster_timeout) == 106.0


def test_an_app_failure_retries_soon_without_blocking_new_revisions() -> None:
    schedule = ClusterSchedule("beijing-1")
    schedule.start(100.0)
    schedule.finish(100.0, 1, PassKind.APPS_FAILED, SETTINGS)

    assert schedule.due(100.0, generation=2)
    assert not schedule.due(104.9, generation=1)
    assert schedule.due(105.0, generation=1)


def test_a_success_resets_the_failures_and_waits_one_drift_interval() -> None:
    schedule = ClusterSchedule("beijing-1", failures=3, blocked_until=50.0)
    schedule.start(100.0)
    schedule.finish(102.0, 1, PassKind.OK, SETTINGS)

    assert schedule.failures == 0
    assert not schedule.due(161.9, generation=1)
    assert schedule.due(162.0, generation=1)


def test_a_running_pass_is_never_started_twice() -> None:
    schedule = ClusterSchedule("beijing-1")
    schedule.start(100.0)

    assert not schedule.due(10_000.0, generation=5)


def test_render_errors_do_not_count_as_failures_to_retry() -> None:
    error = RenderError("apps/web/manifests/cm.yaml:4: unknown variable", app="web", cluster="b")
    assert classify([TargetOutcome("web", "b", error=error)]) is PassKind.OK
    kube = KubeError("HTTP 422: invalid", cluster="b")
    assert classify([TargetOutcome("web", "b", error=kube)]) is PassKind.APPS_FAILED
    down = ClusterUnreachable("refused", cluster="b")
    assert classify([TargetOutcome("web", "b", error=down, unreachable=True)]) is (
        PassKind.CLUSTER_FAILED
    )


# ---- status of one target (pure) ------------------------------------------------------------


REF = ObjectRef("", "ConfigMap", "web", "web")


def outcome_with(changes: list[Change], result: ApplyResult | None) -> TargetOutcome:
    plan = TargetPlan("web", "b", "abc", changes, {}, None, {})
    return TargetOutcome("web", "b", plan=plan, result=result)


def test_a_conflict_left_unapplied_is_out_of_sync_naming_the_other_manager() -> None:
    why = "fields owned by helm; set sync.force to take them over"
    conflict = Change(REF, Action.CONFLICT, managers=["helm"], message=why)
    result = ApplyResult("web", "b", "abc", skipped=[(REF, why)])

    row = target_status(outcome_with([conflict], result), revision="abc", problem=None, now=T0)

    assert row.state is State.OUT_OF_SYNC
    assert row.message == f"1 object: ConfigMap/web/web: {why}"
    assert row.last_synced_at is None


def test_drift_that_was_not_corrected_is_drifted_and_names_the_manager() -> None:
    edited = Change(REF, Action.UPDATE, drift=Drift.MODIFIED, managers=["kubectl-edit"])
    result = ApplyResult("web", "b", "abc", skipped=[(REF, "drifted; selfHeal is off")])

    row = target_status(outcome_with([edited], result), revision="abc", problem=None, now=T0)

    assert row.state is State.DRIFTED
    assert "ConfigMap/web/web modified by kubectl-edit" in row.message


def test_corrected_drift_is_synced_and_says_what_was_corrected() -> None:
    edited = Change(REF, Action.UPDATE, drift=Drift.MODIFIED, managers=["kubectl-edit"])
    result = ApplyResult("web", "b", "abc", configured=[REF], corrected=[REF])

    row = target_status(outcome_with([edited], result), revision="abc", problem=None, now=T0)

    assert (row.state, row.message, row.last_synced_at) == (
        State.SYNCED,
        "configured 1, corrected drift on 1",
        T0,
    )


def test_an_invalid_config_wins_over_the_cluster_state_and_keeps_it_in_the_message() -> None:
    down = ClusterUnreachable("unreachable at https://x: timed out", cluster="b")
    outcome = TargetOutcome("web", "b", error=down, unreachable=True)

    row = target_status(outcome, revision="abc", problem="apps/web/app.yaml:3: bad", now=T0)

    assert row.state is State.INVALID_CONFIG
    assert row.message.startswith("apps/web/app.yaml:3: bad (meanwhile Unreachable: cluster b")


# ---- the loop ------------------------------------------------------------------------------


def test_a_new_revision_is_applied_to_every_placed_cluster_and_recorded(rig: Rig) -> None:
    sha = rig.source.commit_files(repo_files(placement="clusters: [beijing-1, us-west-1]"))

    rig.tick()

    assert sorted(rig.clusters.calls) == [
        ("beijing-1", sha, ["web"]),
        ("beijing-2", sha, []),  # still visited: departed apps are pruned from it
        ("us-west-1", sha, ["web"]),
    ]
    assert rig.states() == {("web", "beijing-1"): State.SYNCED, ("web", "us-west-1"): State.SYNCED}
    assert {r.revision for r in rig.store.list_status()} == {sha}
    assert rig.store.last_good("web") == sha
    assert rig.daemon.ready


def test_polls_wait_the_interval_plus_at_most_the_jitter(tmp_path: Path, store: Store) -> None:
    rig = make_rig(tmp_path, store, rand=lambda: 1.0)  # the longest jitter
    rig.source.commit_files(repo_files())
    rig.tick()
    assert rig.source.fetches == 1

    rig.clock.advance(32.9)  # interval 30s + 10% jitter = 33s
    rig.tick()
    assert rig.source.fetches == 1
    rig.clock.advance(0.1)
    rig.tick()
    assert rig.source.fetches == 2


def test_a_poke_fetches_at_once_without_waiting_for_the_poll(rig: Rig) -> None:
    rig.source.commit_files(repo_files())
    rig.tick()
    second = rig.source.commit_files(repo_files(value="2"))

    rig.daemon.poke()
    rig.tick()

    assert rig.clusters.passes("beijing-1")[-1] == second


def test_a_commit_landing_during_a_fetch_is_fetched_right_after_it(
    tmp_path: Path, store: Store
) -> None:
    held = HeldDispatcher(hold_source=True)
    rig = make_rig(tmp_path, store, dispatcher=held)
    rig.source.commit_files(repo_files())
    rig.tick()
    rig.daemon.poke()  # the watch fires while the first fetch runs
    held.release("source")

    rig.tick()

    assert held.submitted.count("source") == 2


def test_at_most_max_parallel_passes_run_and_the_rest_wait_for_a_free_slot(
    tmp_path: Path, store: Store
) -> None:
    held = HeldDispatcher()
    rig = make_rig(tmp_path, store, dispatcher=held, settings=replace(SETTINGS, max_parallel=2))
    rig.source.commit_files(repo_files())
    rig.tick()
    assert set(held.held) == {"beijing-1", "beijing-2"}

    held.release("beijing-2")
    rig.tick()

    assert set(held.held) == {"beijing-1", "us-west-1"}


def test_a_drift_check_runs_every_drift_interval_without_new_commits(rig: Rig) -> None:
    sha = rig.source.commit_files(repo_files())
    rig.tick()

    rig.clock.advance(59.0)
    rig.tick()
    assert rig.clusters.passes("beijing-1") == [sha]
    rig.clock.advance(1.0)
    rig.tick()
    assert rig.clusters.passes("beijing-1") == [sha, sha]


def test_a_dead_cluster_is_skipped_until_its_backoff_expires_while_the_others_proceed(
    rig: Rig,
) -> None:
    rig.clusters.down.add("us-west-1")
    first = rig.source.commit_files(repo_files())
    rig.tick()
    assert rig.states()[("web", "us-west-1")] is State.UNREACHABLE

    second = rig.source.commit_files(repo_files(value="2"))
    rig.daemon.poke()
    rig.tick()
    assert rig.clusters.passes("beijing-1") == [first, second]
    assert rig.clusters.passes("us-west-1") == [first]  # backing off for 5s

    rig.clock.advance(5.0)
    rig.tick()
    assert rig.clusters.passes("us-west-1") == [first, second]
    rig.clock.advance(9.9)  # second failure: 10s
    rig.tick()
    assert len(rig.clusters.passes("us-west-1")) == 2

    rig.clusters.down.clear()
    rig.clock.advance(0.1)
    rig.tick()
    assert rig.clusters.passes("us-west-1") == [first, second, second]
    assert rig.states()[("web", "us-west-1")] is State.SYNCED


def test_a_pass_over_its_timeout_is_failed_and_not_restarted_until_it_returns(
    tmp_path: Path, store: Store
) -> None:
    held = HeldDispatcher()
    rig = make_rig(tmp_path, store, dispatcher=held)
    first = rig.source.commit_files(repo_files())
    rig.tick()
    for name in ("beijing-1", "beijing-2"):
        held.release(name)
    rig.tick()

    rig.clock.advance(100.0)
    rig.tick()
    row = {r.cluster: r for r in rig.store.list_status()}["us-west-1"]
    assert row.state is State.FAILED
    assert "did not finish within 100s" in row.message

    second = rig.source.commit_files(repo_files(value="2"))
    rig.daemon.poke()
    rig.clock.advance(10.0)  # past the 5s backoff, but the first pass still runs
    rig.tick()
    assert set(held.held) == {"us-west-1", "beijing-1", "beijing-2"}
    assert rig.clusters.calls.count(("us-west-1", second, ["web"])) == 0

    held.release("us-west-1")  # the late result is discarded, the new revision goes next
    rig.tick()
    held.release("us-west-1")
    rig.tick()
    assert rig.clusters.passes("us-west-1") == [first, second]
    assert rig.states()[("web", "us-west-1")] is State.SYNCED


def test_an_invalid_commit_keeps_the_last_good_revision_and_the_next_good_one_applies(
    rig: Rig,
) -> None:
    good = rig.source.commit_files(repo_files())
    rig.tick()
    broken_app = snip.app("web", "source: {manifests: manifests/}\nplacment: {}\n")
    bad = rig.source.commit_files(repo_files(value="2", extra={"apps/web/app.yaml": broken_app}))
    rig.daemon.poke()
    rig.tick()

    assert rig.clusters.passes("beijing-1") == [good, good]  # still the last good revision
    rows = rig.store.list_status()
    assert {r.state for r in rows} == {State.INVALID_CONFIG}
    assert {r.revision for r in rows} == {good}
    assert "apps/web/app.yaml:7: spec.placment: unknown field 'placment'" in rows[0].message
    assert f"revision {bad[:12]} invalid" in rows[0].message
    assert f"{good[:12]} stays applied" in rows[0].message
    revision = rig.store.last_revision()
    assert revision is not None and (revision.sha, revision.valid) == (bad, False)
    assert rig.store.last_good("web") == good

    fixed = rig.source.commit_files(repo_files(value="3"))
    rig.daemon.poke()
    rig.tick()
    assert rig.clusters.passes("beijing-1")[-1] == fixed
    assert {r.state for r in rig.store.list_status()} == {State.SYNCED}


def test_a_failed_render_keeps_that_targets_previous_render(rig: Rig) -> None:
    per_cluster = snip.app(
        "web",
        """
        namespace: web
        source: {manifests: manifests/}
        placement: {clusters: [beijing-1, beijing-2, us-west-1]}
        """,
    )
    good = rig.source.commit_files(repo_files(extra={"apps/web/app.yaml": per_cluster}))
    rig.tick()
    # A variable only beijing-1 lacks: the render fails there and only there.
    templated = configmap("web", "${cluster.vars.zone}")
    vars_ = "{zone: z}"
    files = repo_files(extra={"apps/web/manifests/cm.yaml": templated})
    for name in ("beijing-2", "us-west-1"):
        files[f"clusters/{name}.yaml"] = snip.cluster(name, vars=vars_)
    bad = rig.source.commit_files(files)
    rig.daemon.poke()
    rig.tick()

    rows = {r.cluster: r for r in rig.store.list_status()}
    assert rows["beijing-1"].state is State.INVALID_CONFIG
    assert rows["beijing-1"].revision == good
    assert "cluster.vars.zone" in rows["beijing-1"].message
    assert f"{good[:12]} stays applied" in rows["beijing-1"].message
    assert (rows["us-west-1"].state, rows["us-west-1"].revision) == (State.SYNCED, bad)
    assert rig.clusters.calls[-3:] == [
        ("beijing-1", bad, ["web"]),  # planned with its previous render: drift still checked
        ("beijing-2", bad, ["web"]),
        ("us-west-1", bad, ["web"]),
    ]
    assert rig.store.last_good("web") == good


def test_a_paused_cluster_shows_paused_and_is_never_reconciled(rig: Rig) -> None:
    rig.source.commit_files(repo_files(paused=["beijing-2"]))
    rig.tick()

    assert "beijing-2" not in {name for name, _, _ in rig.clusters.calls}
    assert rig.states()[("web", "beijing-2")] is State.PAUSED


def test_drift_is_recorded_once_and_closed_when_it_is_gone(rig: Rig) -> None:
    edit = FieldChange(
        "data.value", "1", "edited", "kubectl-edit", datetime(2026, 11, 22, 11, 59, tzinfo=UTC)
    )
    change = Change(
        REF, Action.UPDATE, fields=[edit], drift=Drift.MODIFIED, managers=["kubectl-edit"]
    )
    rig.clusters.drift[("web", "beijing-1")] = [change]
    sha = rig.source.commit_files(repo_files())
    rig.tick()
    rig.clock.advance(60.0)
    rig.tick()

    (record,) = rig.store.list_drift()
    assert (record.app, record.cluster, record.object, record.revision) == (
        "web",
        "beijing-1",
        "ConfigMap/web/web",
        sha,
    )
    (f,) = record.fields
    assert (f.path, f.git, f.live, f.manager) == ("data.value", "1", "edited", "kubectl-edit")
    assert f.time == datetime(2026, 11, 22, 11, 59, tzinfo=UTC)
    assert record.open and record.detected_at == T0
    assert rig.states()[("web", "beijing-1")] is State.DRIFTED

    rig.clusters.drift.clear()
    rig.clock.advance(60.0)
    rig.tick()
    (record,) = rig.store.list_drift()
    assert record.corrected_at == T0 + timedelta(seconds=120)
    assert rig.states()[("web", "beijing-1")] is State.SYNCED


def test_drift_undone_by_self_heal_is_closed_in_the_same_pass(rig: Rig) -> None:
    change = Change(REF, Action.UPDATE, drift=Drift.MODIFIED, managers=["kubectl-edit"])
    rig.clusters.drift[("web", "us-west-1")] = [change]
    rig.clusters.heal = True
    rig.source.commit_files(repo_files())
    rig.tick()

    (record,) = rig.store.list_drift()
    assert record.detected_at == record.corrected_at == T0
    assert rig.states()[("web", "us-west-1")] is State.SYNCED
    drifted = rig.daemon.metrics.drifted_objects.labels("web", "us-west-1")._value.get()
    assert drifted == 0


def test_an_app_that_leaves_a_cluster_loses_its_status_row_there(rig: Rig) -> None:
    rig.source.commit_files(repo_files())
    rig.tick()
    rig.source.commit_files(repo_files(placement="clusters: [beijing-1]"))
    rig.daemon.poke()
    rig.tick()

    assert set(rig.states()) == {("web", "beijing-1")}


def test_once_exits_0_when_every_target_synced_and_2_when_a_cluster_is_down(
    tmp_path: Path, store: Store
) -> None:
    rig = make_rig(tmp_path / "ok", store)
    rig.source.commit_files(repo_files())
    assert rig.daemon.run(once=True) == 0

    with Store.open(tmp_path / "other") as other:
        down = make_rig(tmp_path / "down", other)
        down.clusters.down.add("beijing-2")
        down.source.commit_files(repo_files())
        assert down.daemon.run(once=True) == 2


def test_a_restart_on_an_invalid_head_runs_the_last_good_revision_from_the_store(
    tmp_path: Path, store: Store
) -> None:
    first = make_rig(tmp_path, store)
    good = first.source.commit_files(repo_files())
    first.tick()
    broken = snip.app("web", "source: {manifests: manifests/}\nplacment: {}\n")
    first.source.commit_files(repo_files(extra={"apps/web/app.yaml": broken}))

    restarted = restart(tmp_path, store, first.source)

    assert restarted.clusters.passes("beijing-1") == [good]
    assert restarted.daemon.ready
    rows = restarted.store.list_status()
    assert {(r.state, r.revision) for r in rows} == {(State.INVALID_CONFIG, good)}


def test_a_restart_runs_the_newest_valid_revision_even_where_no_app_rendered(
    tmp_path: Path, store: Store
) -> None:
    first = make_rig(tmp_path, store)
    older = first.source.commit_files(repo_files())
    first.tick()
    # Valid, but web does not render anywhere: its own last good revision stays the older one.
    extra = {
        "apps/web/manifests/cm.yaml": configmap("web", "${cluster.vars.x}"),
        "clusters/edge.yaml": snip.cluster("edge", vars="{x: '1'}"),  # not a target of web
    }
    unrendered = first.source.commit_files(repo_files(extra=extra))
    first.daemon.poke()
    first.tick()
    assert store.last_good("web") == older
    broken = snip.app("web", "source: {manifests: manifests/}\nplacment: {}\n")
    first.source.commit_files(repo_files(extra={"apps/web/app.yaml": broken}))

    restarted = restart(tmp_path, store, first.source)

    assert restarted.clusters.passes("beijing-1") == [unrendered]
    rows = restarted.store.list_status()
    assert {(r.state, r.revision) for r in rows} == {(State.INVALID_CONFIG, older)}
    assert all("cluster.vars.x" in r.message for r in rows)


def test_a_failing_fetch_is_recorded_for_status_and_the_next_success_clears_it(
    rig: Rig,
) -> None:
    good = rig.source.commit_files(repo_files())
    rig.tick()
    assert rig.store.source_status() == SourceStatus("fake-repo", "main", T0, good)

    rig.source.fail = SourceError(
        "fake-repo: fetch failed: unable to access 'https://deploy:s3cr3t-t0ken@git.example/r/':"
        " The requested URL returned error: 403"
    )
    for _ in range(3):
        rig.clock.advance(33.0)
        rig.tick()

    status = rig.store.source_status()
    assert status is not None
    assert (status.consecutive_failures, status.failing_since, status.last_error_at) == (
        3,
        T0 + timedelta(seconds=33),
        T0 + timedelta(seconds=99),
    )
    assert (status.last_success_at, status.last_success_sha) == (T0, good)
    assert status.last_error == (
        "fake-repo: fetch failed: unable to access 'https://git.example/r/':"
        " The requested URL returned error: 403"
    )
    assert rig.daemon.metrics.git_errors._value.get() == 3
    # The clusters keep being reconciled to what was fetched last.
    assert rig.clusters.passes("beijing-1") == [good, good]
    assert set(rig.states().values()) == {State.SYNCED}

    rig.source.fail = None
    rig.clock.advance(33.0)
    rig.tick()
    assert rig.store.source_status() == SourceStatus(
        "fake-repo", "main", T0 + timedelta(seconds=132), good
    )


def test_a_repo_never_fetched_shows_the_failure_and_no_last_success(rig: Rig) -> None:
    rig.source.fail = SourceError("fake-repo: branch 'main' not found")

    rig.tick()

    assert rig.store.source_status() == SourceStatus(
        "fake-repo", "main", None, None, "fake-repo: branch 'main' not found", T0, T0, 1
    )
    assert not rig.daemon.ready
    assert rig.daemon.exit_code() == 2


def test_a_bug_while_reading_the_repo_is_recorded_as_a_failed_fetch(rig: Rig) -> None:
    rig.source.commit_files(repo_files())
    rig.source.fail = RuntimeError("boom")

    rig.tick()

    status = rig.store.source_status()
    assert status is not None and status.consecutive_failures == 1
    assert status.last_error == "internal error while loading the repo: RuntimeError: boom"


def test_a_pass_reads_only_its_own_clusters_status_rows(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.source.commit_files(repo_files())
    rig.tick()
    reads: list[tuple[str | None, str | None]] = []
    real = rig.store.list_status

    def spy(cluster: str | None = None, app: str | None = None) -> list[StatusRow]:
        reads.append((cluster, app))
        return real(cluster, app)

    monkeypatch.setattr(rig.store, "list_status", spy)
    rig.clock.advance(60.0)  # a drift pass on every cluster
    rig.tick()

    assert sorted(reads) == [(name, None) for name in CLUSTERS]


def test_a_crashing_pass_marks_its_cluster_failed_and_the_others_carry_on(rig: Rig) -> None:
    real = rig.clusters

    def crash_on_beijing_2(*args: Any, **kwargs: Any) -> list[TargetOutcome]:
        if list(kwargs["clusters"]) == ["beijing-2"]:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    rig.daemon._reconcile = crash_on_beijing_2
    rig.source.commit_files(repo_files())
    rig.tick()

    rows = {r.cluster: r for r in rig.store.list_status()}
    assert rows["beijing-2"].state is State.FAILED
    assert rows["beijing-2"].message == "internal error: RuntimeError: boom"
    assert rows["beijing-1"].state is State.SYNCED


def test_a_cluster_paused_during_its_pass_is_reconciled_again_once_unpaused(
    tmp_path: Path, store: Store
) -> None:
    held = HeldDispatcher()
    rig = make_rig(tmp_path, store, dispatcher=held)
    first = rig.source.commit_files(repo_files())
    rig.tick()
    for name in ("beijing-1", "us-west-1"):
        held.release(name)
    rig.source.commit_files(repo_files(paused=["beijing-2"]))  # while beijing-2's pass runs
    rig.daemon.poke()
    rig.tick()
    held.release("beijing-2")  # its result arrives after it was paused
    rig.tick()
    for name in list(held.held):
        held.release(name)
    rig.tick()

    third = rig.source.commit_files(repo_files())  # unpaused
    rig.daemon.poke()
    rig.tick()
    held.release("beijing-2")
    rig.tick()
    assert rig.clusters.passes("beijing-2") == [first, third]
    assert rig.states()[("web", "beijing-2")] is State.SYNCED


# ---- fallbacks only on the followed branch's history ------------------------------------------


BROKEN_APP = snip.app("web", "source: {manifests: manifests/}\nplacment: {}\n")


def test_a_restart_after_a_force_push_never_falls_back_to_a_commit_off_the_branch(
    tmp_path: Path, store: Store
) -> None:
    first = make_rig(tmp_path, store)
    left_behind = first.source.commit_files(repo_files())
    first.tick()
    first.source.orphan()  # force-pushed: the branch no longer holds left_behind
    broken = first.source.commit_files(repo_files(extra={"apps/web/app.yaml": BROKEN_APP}))

    restarted = restart(tmp_path, store, first.source)

    assert restarted.clusters.calls == []
    assert not restarted.daemon.ready
    rows = restarted.store.list_status()
    assert {(r.state, r.revision) for r in rows} == {(State.INVALID_CONFIG, left_behind)}
    assert all(f"revision {broken[:12]} invalid" in r.message for r in rows)
    assert all("nothing applied yet" in r.message for r in rows)
    assert restarted.daemon.exit_code() == 2


def test_a_restart_falls_back_on_the_newest_valid_revision_on_the_branch(
    tmp_path: Path, store: Store
) -> None:
    first = make_rig(tmp_path, store)
    on_branch = first.source.commit_files(repo_files())
    first.tick()
    first.source.orphan()  # another branch was followed for a while...
    first.source.commit_files(repo_files(value="2"))
    first.daemon.poke()
    first.tick()
    first.source.head = on_branch  # ...and the branch is back, with a broken commit on top
    first.source.commit_files(repo_files(extra={"apps/web/app.yaml": BROKEN_APP}))

    restarted = restart(tmp_path, store, first.source)

    assert restarted.clusters.passes("beijing-1") == [on_branch]
    rows = restarted.store.list_status()
    assert {(r.state, r.revision) for r in rows} == {(State.INVALID_CONFIG, on_branch)}


def test_an_apps_last_good_revision_off_the_branch_is_not_its_fallback(
    tmp_path: Path, store: Store
) -> None:
    first = make_rig(tmp_path, store)
    left_behind = first.source.commit_files(repo_files())
    first.tick()
    assert store.last_good("web") == left_behind
    first.source.orphan()
    extra = {
        "apps/web/manifests/cm.yaml": configmap("web", "${cluster.vars.x}"),
        "clusters/edge.yaml": snip.cluster("edge", vars="{x: '1'}"),
    }
    unrendered = first.source.commit_files(repo_files(extra=extra))  # valid; web fails to render
    first.daemon.poke()
    first.tick()
    first.source.commit_files(repo_files(extra={"apps/web/app.yaml": BROKEN_APP}))

    restarted = restart(tmp_path, store, first.source)

    assert restarted.clusters.passes("beijing-1") == [unrendered]
    rows = restarted.store.list_status()
    assert {(r.state, r.revision) for r in rows} == {(State.INVALID_CONFIG, None)}


# ---- clusters leaving the repo, drift history -------------------------------------------------


def series(rig: Rig, cluster: str) -> list[str]:
    text = rig.daemon.metrics.exposition().decode()
    return [line for line in text.splitlines() if f'cluster="{cluster}"' in line]


def test_a_cluster_removed_from_the_repo_closes_its_drift_and_drops_its_series(rig: Rig) -> None:
    change = Change(REF, Action.UPDATE, drift=Drift.MODIFIED, managers=["kubectl-edit"])
    rig.clusters.drift[("web", "us-west-1")] = [change]
    rig.source.commit_files(repo_files())
    rig.tick()
    rig.daemon.metrics.objects_applied.labels("us-west-1", "created").inc()
    (record,) = rig.store.list_drift()
    assert record.open and series(rig, "us-west-1")

    files = repo_files(placement="clusters: [beijing-1, beijing-2]")
    del files["clusters/us-west-1.yaml"]
    rig.source.commit_files(files)
    rig.daemon.poke()
    rig.clock.advance(1.0)
    rig.tick()

    (record,) = rig.store.list_drift()
    assert record.corrected_at == T0 + timedelta(seconds=1)
    assert series(rig, "us-west-1") == []
    assert series(rig, "beijing-1")
    assert set(rig.states()) == {("web", "beijing-1"), ("web", "beijing-2")}


def test_drift_of_a_target_on_its_previous_render_is_stamped_with_that_revision(
    rig: Rig,
) -> None:
    good = rig.source.commit_files(repo_files())
    rig.tick()
    templated = configmap("web", "${cluster.vars.zone}")
    files = repo_files(extra={"apps/web/manifests/cm.yaml": templated})
    for name in ("beijing-2", "us-west-1"):
        files[f"clusters/{name}.yaml"] = snip.cluster(name, vars="{zone: z}")
    bad = rig.source.commit_files(files)  # beijing-1 keeps good's render
    for name in CLUSTERS:
        change = Change(REF, Action.UPDATE, drift=Drift.MODIFIED, managers=["kubectl-edit"])
        rig.clusters.drift[("web", name)] = [change]
    rig.daemon.poke()
    rig.tick()

    revisions = {r.cluster: r.revision for r in rig.store.list_drift()}
    assert revisions == {"beijing-1": good, "beijing-2": bad, "us-west-1": bad}


def test_corrected_drift_older_than_the_retention_is_deleted_at_most_hourly(
    tmp_path: Path, store: Store
) -> None:
    rig = make_rig(tmp_path, store, settings=replace(SETTINGS, drift_retention=86400.0))

    def corrected(object: str, days_ago: float) -> int:
        row = store.record_drift(
            "web", "beijing-1", object, "missing", [], "r", T0 - timedelta(days=days_ago + 1)
        )
        store.mark_corrected(row.id, T0 - timedelta(days=days_ago))
        return row.id

    corrected("ConfigMap/web/old", 2)
    recent = corrected("ConfigMap/web/recent", 0.5)
    still_open = store.record_drift(
        "web", "beijing-1", "ConfigMap/web/open", "missing", [], "r", T0
    )
    rig.source.commit_files(repo_files())
    rig.tick()
    assert {r.id for r in store.list_drift()} == {recent, still_open.id}

    later = corrected("ConfigMap/web/later", 3)
    rig.clock.advance(60.0)
    rig.tick()
    assert later in {r.id for r in store.list_drift()}  # less than an hour since the last prune
    rig.clock.advance(3600.0)
    rig.tick()
    assert later not in {r.id for r in store.list_drift()}


# ---- kube clients follow the kubeconfig file ---------------------------------------------------


def kubeconfig_text(*contexts: str, token: str = "t0") -> str:
    clusters = "".join(
        f"- name: {c}\n  cluster: {{server: 'https://127.0.0.1:1'}}\n" for c in contexts
    )
    ctxs = "".join(f"- name: {c}\n  context: {{cluster: {c}, user: u}}\n" for c in contexts)
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n{clusters}contexts:\n{ctxs}"
        f"users:\n- name: u\n  user: {{token: {token}}}\n"
    )


class Ticker:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_clients_see_a_context_added_to_the_kubeconfig_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text("one"))
    ticker = Ticker()
    clients = Clients(str(path), monotonic=ticker)
    one = clients.get("one", "one")
    assert clients.get("one", "one") is one

    path.write_text(kubeconfig_text("one", "two"))
    ticker.t = 0.5  # within the recheck interval: the file is not looked at yet
    assert "two" not in clients.parse().contexts
    ticker.t = 1.5
    two = clients.get("two", "two")
    assert two.context == "two"
    assert "two" in clients.parse().contexts
    renewed = clients.get("one", "one")
    assert renewed is not one  # rebuilt from the new kubeconfig (rotated credentials)
    ticker.t = 3.0
    assert clients.get("one", "one") is renewed  # unchanged file: kept
    clients.close()


def test_clients_keep_the_last_kubeconfig_while_the_file_does_not_parse(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text("one"))
    ticker = Ticker()
    clients = Clients(str(path), monotonic=ticker)
    one = clients.get("one", "one")

    path.write_text("clusters: [")  # half written
    ticker.t = 2.0
    assert clients.get("one", "one") is one
    path.write_text(kubeconfig_text("one", token="t1"))
    ticker.t = 4.0
    assert clients.get("one", "one") is not one
    clients.close()


def test_clients_stat_every_file_of_the_kubeconfig_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_text(kubeconfig_text("one"))
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(first), str(second)]))
    clients = Clients(None)

    assert clients.files() == [first, second]
