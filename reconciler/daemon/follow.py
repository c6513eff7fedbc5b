"""Follow the config repo: fetch the branch, load and render a new revision; when it is invalid,
fall back to the last good revision on the branch's history. Runs on a worker thread: touches the
source only, never the store.

A revision is loaded and rendered as far as it goes (``loading.load_and_render``, partial):
broken apps, clusters and groups are left out and listed, and only problems no unit owns make
it invalid as a whole. Older revisions
some targets still run (``others``: after a restart, what the store says they should run) are
loaded too, so a target held on its revision is rendered from that revision. Each exported tree
is deleted as soon as its revision is rendered: it holds plaintext Secrets from Git.

The head's charts are resolved once, except those whose source could not be asked
(``chartretry``): when the daemon asks, the head is loaded again with them resolved afresh (every
settled chart from its pin), and rendered only if one of them resolves otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from reconciler.charts.lock import lock_charts
from reconciler.charts.model import ChartLock, Pin
from reconciler.charts.resolver import ChartResolver
from reconciler.config.model import PartialRepo, Repo
from reconciler.daemon.chartretry import ChartRetry, changed, told, unsettled
from reconciler.daemon.schedule import Clock
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.loading import load_and_render
from reconciler.render import Capabilities, RenderCache, TargetResult
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

    def ancestry(self, older: str, newer: str) -> bool | None: ...  # None: one not fetched here

    def drop_tree(self, sha: str) -> None: ...


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
    partial: PartialRepo | None = None  # what did not load (``repo`` is what did)
    # older revisions targets should still run: after a restart, what the store says they
    # run; a rollout's bases and pins on request
    others: dict[str, Loaded] = field(default_factory=dict)
    fallback: Loaded | None = None  # the last good revision, loaded when nothing runs yet
    # per app whose render failed: its last good revision, if on the followed branch's history
    last_good: dict[str, str] = field(default_factory=dict)
    # app -> why its chart is to be resolved again (the source could not be asked)
    unsettled: dict[str, str] = field(default_factory=dict)
    # the head loaded again to resolve its unsettled charts (``unchanged``: none resolved
    # otherwise, ``charts`` and ``unsettled`` say how they went; nothing was rendered)
    retried: bool = False


class SourceFailed(Exception):
    """The source job could not fetch or read the repo; ``error`` is why, ``at`` when."""

    def __init__(self, error: Exception, at: datetime) -> None:
        super().__init__(str(error))
        self.error = error
        self.at = at


@dataclass
class Follower:
    """The source job: what :meth:`work` returns (or raises) the loop publishes. ``charts``
    resolves remote charts; ``capabilities`` says per cluster what Helm is told (each revision
    renders with a fresh cache: tool output is shared within one revision)."""

    source: Source
    clock: Clock
    charts: Callable[[], ChartResolver] | None = None
    capabilities: Callable[[Repo], Mapping[str, Capabilities]] | None = None
    _pins: Mapping[str, Mapping[str, Pin]] = field(default_factory=dict, init=False)

    def work(
        self,
        head: str | None,
        fallback: list[str],
        last_good: Mapping[str, str] | None = None,
        pins: Mapping[str, Mapping[str, Pin]] | None = None,
        others: Collection[str] = (),
        retry: ChartRetry | None = None,
    ) -> Loaded:
        """Runs on a worker thread: touches the source only, never the store.

        Fetching or reading the fetched commit fails with :class:`SourceFailed`; a commit
        whose config does not load is a result (``config_error``), not a failure. ``others``
        are older revisions to load and render too (those that do not load are left out).
        ``retry``: the head's unsettled charts as they last resolved; when the fetched commit
        is still ``head``, they are resolved again (``Loaded.retried``), the rest from their
        pins (or as the error they were).
        """
        try:
            sha = self.source.fetch()
        except Exception as err:
            raise SourceFailed(err, self.clock.now()) from err
        fetched_at = self.clock.now()
        if sha == head and retry:
            self._pins = pins or {}
            try:
                loaded = self._load_revision(sha, fetched_at, retry=retry)
            except _Same as same:
                loaded = Loaded(
                    sha,
                    fetched_at,
                    unchanged=True,
                    charts=same.charts,
                    unsettled=same.unsettled,
                    retried=True,
                )
            except Exception as err:
                raise SourceFailed(err, self.clock.now()) from err
            self._verify_last_good(loaded, sha, last_good or {})
        elif sha == head:
            loaded = Loaded(sha, fetched_at, unchanged=True)
        else:
            self._pins = pins or {}
            try:
                loaded = self._load_revision(sha, fetched_at, head=True)
            except Exception as err:
                raise SourceFailed(err, self.clock.now()) from err
            if loaded.config_error is not None and fallback:
                loaded.fallback = self._load_fallback(
                    [s for s in fallback if s != sha], sha, fetched_at
                )
            self._verify_last_good(loaded, sha, last_good or {})
        self._pins = pins or {}
        for other in others:
            # Only revisions on the followed branch's history (never a left-behind commit).
            if other == sha or not self._on_branch(other, sha):
                continue
            try:
                older = self._load_revision(other, fetched_at)
            except ReconcilerError:
                continue  # gone from the repo: its targets keep waiting, the log says so
            if older.repo is not None:
                loaded.others[other] = older
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

    def _load_revision(
        self,
        sha: str,
        fetched_at: datetime,
        head: bool = False,
        retry: ChartRetry | None = None,
    ) -> Loaded:
        """Load and render ``sha``. ``head``: its unsettled charts are found (and their errors
        say they are retried); ``retry``: the head again, raising :class:`_Same` before
        rendering when none of these charts resolves otherwise."""
        commit = self.source.commit(sha)
        tree = self.source.tree(sha)
        charts = self.charts
        pins = self._pins.get(sha)
        found: dict[str, str] = {}

        def lock(repo: Repo) -> ChartLock:
            # One resolver per revision: a range is resolved against the source once, fresh
            # for a new commit; a revision seen before renders the charts recorded for it.
            # Only a chart whose source could not be asked is resolved again (``retry``).
            if retry is None:
                result = lock_charts(repo, charts(), pins) if charts else ChartLock()
            else:  # a chart the source answered for stays as it was: never asked again
                kept = retry.kept
                asked = [a for a in repo.apps if a not in kept]
                result = lock_charts(repo, charts(), pins, asked) if charts else ChartLock()
                result = replace(result, errors={**kept, **result.errors})
            if not (head or retry):
                return result
            found.update(unsettled(result, pins or {}))
            if (
                retry is not None
                and not changed(retry.outcomes, result)
                and found.keys() == retry.outcomes.keys()
            ):
                raise _Same(result, found)
            return told(result, found)

        try:
            result = load_and_render(
                tree,
                partial=True,
                lock=lock,
                cache=RenderCache(),
                capabilities=self.capabilities,
            )
        finally:
            self.source.drop_tree(sha)  # rendered: nothing needs its files any more
        if result.invalid is not None:
            return Loaded(
                sha, fetched_at, commit=commit, config_error=result.invalid, partial=result.partial
            )
        return Loaded(
            sha,
            fetched_at,
            commit=commit,
            repo=result.repo,
            rendered=result.targets,
            charts=result.charts,
            partial=result.partial,
            unsettled=found,
            retried=retry is not None,
        )

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


class _Same(Exception):
    """Resolving the head's unsettled charts again changed none of them (each resolved as
    before and is still unsettled): nothing to render."""

    def __init__(self, charts: ChartLock, unsettled: dict[str, str]) -> None:
        super().__init__("the unsettled charts resolved as before")
        self.charts = charts
        self.unsettled = unsettled
