"""Follow the config repo: fetch the branch, load and render a new revision; when it is invalid,
fall back to the last good revision on the branch's history. Runs on a worker thread: touches the
source only, never the store."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from reconciler.charts.lock import lock_charts
from reconciler.charts.model import ChartLock, Pin
from reconciler.charts.resolver import ChartResolver
from reconciler.config.model import Repo
from reconciler.daemon.schedule import Clock
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.loading import Rendered
from reconciler.render import TargetResult
from reconciler.source import CommitInfo


class Source(Protocol):
    """What the daemon needs of a config repo (``reconciler.source.GitSource``)."""

    display: str  # where the repo is, without credentials
    branch: str | None  # None: the remote's default branch

    def fetch(self) -> str: ...

    def commit(self, rev: str) -> CommitInfo: ...

    def tree(self, rev: str) -> Path: ...

    def watch_paths(self) -> list[Path]: ...

    def is_ancestor(self, ancestor: str, descendant: str) -> bool: ...


@dataclass
class Loaded:
    """The source job's result."""

    sha: str
    fetched_at: datetime  # when the repo was read (wall time)
    unchanged: bool = False
    commit: CommitInfo | None = None
    repo: Repo | None = None
    rendered: list[TargetResult] = field(default_factory=list)
    charts: ChartLock = field(default_factory=ChartLock)  # the remote charts it rendered
    config_error: ConfigError | None = None
    fallback: Loaded | None = None  # the last good revision, loaded when nothing runs yet
    # per app whose render failed: its last good revision, if on the followed branch's history
    last_good: dict[str, str] = field(default_factory=dict)


class SourceFailed(Exception):
    """The source job could not fetch or read the repo; ``error`` is why, ``at`` when."""

    def __init__(self, error: Exception, at: datetime) -> None:
        super().__init__(str(error))
        self.error = error
        self.at = at


class Follower:
    """The source job: what :meth:`work` returns (or raises) the loop publishes."""

    def __init__(
        self,
        source: Source,
        clock: Clock,
        load_and_render: Callable[[Path, Callable[[Repo], ChartLock]], Rendered],
        charts: Callable[[], ChartResolver] | None = None,
    ) -> None:
        self.source = source
        self.clock = clock
        self._load_and_render = load_and_render  # (tree, lock the loaded repo's charts)
        self._charts = charts
        self._pins: Mapping[str, Mapping[str, Pin]] = {}

    def work(
        self,
        head: str | None,
        fallback: list[str],
        last_good: Mapping[str, str] | None = None,
        pins: Mapping[str, Mapping[str, Pin]] | None = None,
    ) -> Loaded:
        """Runs on a worker thread: touches the source only, never the store.

        Fetching or reading the fetched commit fails with :class:`SourceFailed`; a commit
        whose config does not load is a result (``config_error``), not a failure.
        """
        try:
            sha = self.source.fetch()
        except Exception as err:
            raise SourceFailed(err, self.clock.now()) from err
        fetched_at = self.clock.now()
        if sha == head:
            return Loaded(sha, fetched_at, unchanged=True)
        self._pins = pins or {}
        try:
            loaded = self._load_revision(sha, fetched_at)
        except Exception as err:
            raise SourceFailed(err, self.clock.now()) from err
        if loaded.config_error is not None and fallback:
            loaded.fallback = self._load_fallback(
                [s for s in fallback if s != sha], sha, fetched_at
            )
        self._verify_last_good(loaded, sha, last_good or {})
        return loaded

    def _on_branch(self, candidate: str, head: str) -> bool:
        """Whether ``candidate`` is in the followed branch's history up to ``head`` (a commit
        left behind by a branch switch or a force-push is not, and is never applied)."""
        try:
            return self.source.is_ancestor(candidate, head)
        except ReconcilerError:
            return False

    def _verify_last_good(self, loaded: Loaded, head: str, last_good: Mapping[str, str]) -> None:
        """Keep the last good revision of each app whose render failed, if it is on the branch."""
        for result in (loaded, loaded.fallback):
            if result is None:
                continue
            for target in result.rendered:
                sha = last_good.get(target.app)
                if target.error is None or sha is None or target.app in result.last_good:
                    continue
                if self._on_branch(sha, head):
                    result.last_good[target.app] = sha

    def _load_revision(self, sha: str, fetched_at: datetime) -> Loaded:
        commit = self.source.commit(sha)
        tree = self.source.tree(sha)

        def lock(repo: Repo) -> ChartLock:
            if self._charts is None:
                return ChartLock()
            # One resolver per revision: a range is resolved against the source once, fresh
            # for a new commit; a revision seen before renders the charts recorded for it.
            return lock_charts(repo, self._charts(), self._pins.get(sha))

        try:
            repo, rendered, charts = self._load_and_render(tree, lock)
        except ConfigError as err:
            return Loaded(sha, fetched_at, commit=commit, config_error=err)
        return Loaded(sha, fetched_at, commit=commit, repo=repo, rendered=rendered, charts=charts)

    def _load_fallback(
        self, candidates: list[str], head: str, fetched_at: datetime
    ) -> Loaded | None:
        """The first candidate (newest first) on ``head``'s history whose config loads."""
        for sha in candidates:
            if not self._on_branch(sha, head):
                continue  # another branch, or history rewritten since: never applied
            try:
                loaded = self._load_revision(sha, fetched_at)
            except ReconcilerError:
                continue
            if loaded.repo is not None:
                return loaded
        return None
