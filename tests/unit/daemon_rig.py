"""The daemon's test rig: a fake clock, a fake Git source, fake clusters, passes run inline.

Config repos are real directories loaded and rendered by the real stages; only the cluster
side (``engine.reconcile``) is replaced by a recorder that can play an unreachable cluster.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import repo_snippets as snip

from reconciler.config.model import Repo
from reconciler.daemon.loop import Daemon
from reconciler.daemon.schedule import Backoff, Settings
from reconciler.engine import TargetOutcome
from reconciler.errors import ClusterUnreachable
from reconciler.kube.pool import Clients
from reconciler.objects import ObjectRef
from reconciler.render import TargetResult
from reconciler.source import CommitInfo
from reconciler.store.db import Store
from reconciler.store.rows import State
from reconciler.sync.model import Action, ApplyResult, Change, TargetPlan

T = TypeVar("T")


T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


CLUSTERS = ("beijing-1", "beijing-2", "us-west-1")


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
        self.dropped: list[str] = []

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

    def drop_tree(self, sha: str) -> None:
        self.dropped.append(sha)  # the test's own directories stay

    def ancestry(self, older: str, newer: str) -> bool | None:
        if older not in self.parents or newer not in self.parents:
            return None
        return self.is_ancestor(older, newer)

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
        revisions: Mapping[tuple[str, str], str | None] | None = None,
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


def make_rig(
    tmp_path: Path,
    store: Store,
    *,
    dispatcher: Any = None,
    settings: Settings = SETTINGS,
    rand: Callable[[], float] = lambda: 0.5,
    source: FakeSource | None = None,
    gate: Any = None,
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
        gate=gate,
    )
    return Rig(daemon, clock, source, clusters, store)


def restart(tmp_path: Path, store: Store, source: FakeSource) -> Rig:
    restarted = make_rig(tmp_path, store, source=source)
    restarted.tick()
    return restarted


REF = ObjectRef("", "ConfigMap", "web", "web")


def outcome_with(changes: list[Change], result: ApplyResult | None) -> TargetOutcome:
    plan = TargetPlan("web", "b", "abc", changes, {}, None, {})
    return TargetOutcome("web", "b", plan=plan, result=result)


# A problem no unit owns: the whole revision is invalid (a broken app holds only that app).
BROKEN_REPO = {"reconciler.yaml": snip.settings("allowEmty: true")}


def series(rig: Rig, cluster: str) -> list[str]:
    text = rig.daemon.metrics.exposition().decode()
    return [line for line in text.splitlines() if f'cluster="{cluster}"' in line]
