"""Which revision runs: the source job's results published, held, released, chosen per target.

The source job (``follow``) fetches, loads and renders on a worker thread; here the main thread
takes its result: an invalid revision falls back to what runs (or the last good one after a
restart), broken units hold their targets (``blast``), a revision that would prune too much is
held until released (``guard``), rollouts and pins choose each target's revision (``desired``),
and the outcome is installed so that every cluster gets a pass. The head's charts whose source
could not be asked are resolved again on later polls (``chartretry``) until it answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from structlog.typing import FilteringBoundLogger

from reconciler.charts.model import Pin
from reconciler.config.model import PartialRepo, Repo
from reconciler.daemon.blast import holds
from reconciler.daemon.chartretry import ChartRetry, next_retry, settled_pins
from reconciler.daemon.desired import (
    Desired,
    TargetKey,
    build_desired,
    paused_rows,
    with_revisions,
)
from reconciler.daemon.follow import Loaded, SourceFailed
from reconciler.daemon.guard import PruneLimits, estimate, held_message
from reconciler.daemon.openfiles import needed, too_low
from reconciler.daemon.state import LoopState
from reconciler.daemon.status import invalid_revision_message, short
from reconciler.errors import ReconcilerError
from reconciler.objects import ObjectRef
from reconciler.source import redact

_FALLBACK_CANDIDATES = 50  # valid revisions from the store a restart on an invalid head tries


class RevisionJob(LoopState):
    """The daemon's part that turns the source job's results into the desired state."""

    # -- source: fetch, load, render -------------------------------------------------------------

    def _maybe_fetch(self, now: float) -> None:
        due = self._poked or now >= self._next_poll or bool(self._wanted)
        if self._once and self._sources_done:
            due = bool(self._wanted)  # one head per run: only older renders it needs are loaded
        if self._source_job is not None or not due:
            return
        self._poked = False
        self._next_poll = now + self.settings.interval * (1 + self.settings.jitter * self._rand())
        fallback = self._fallback_candidates() if self._desired is None else []
        last_good = self.store.last_goods()
        pins = {
            sha: {app: Pin(*pin) for app, pin in apps.items()}
            for sha, apps in self.store.chart_pins(limit=_FALLBACK_CANDIDATES).items()
        }
        head = self._head
        retry = self._chart_retry
        due_retry = retry if retry and retry.revision == head and now >= retry.due else None
        if self._desired is None:
            # A restart: the revisions the store says targets run, and those rollouts and pins
            # keep targets on, are loaded with head.
            self._wanted |= {t.desired for t in self.store.list_targets() if t.desired}
            self._wanted |= self.rollouts.needed()
        others = sorted(r for r in self._wanted if not self.book.has(r))
        self._wanted.clear()
        self.lag.fetch_started()
        self._source_job = self._source_dispatcher.submit(
            lambda: self._follower.work(head, fallback, last_good, pins, others, due_retry),
            name="reconciler-source",
        )

    def _fallback_candidates(self) -> list[str]:
        """The valid revisions the store remembers, most recently seen first (a restart whose
        head is invalid runs the first one on the branch's history). Apps whose render failed
        there keep their own last good revision (``_build``)."""
        return [r.sha for r in self.store.valid_revisions(limit=_FALLBACK_CANDIDATES)]

    def _collect_source(self) -> None:
        job = self._source_job
        if job is None or not job.done():
            return
        self._source_job = None
        self._sources_done += 1
        try:
            loaded = job.result()
        except Exception as failure:
            err = failure.error if isinstance(failure, SourceFailed) else failure
            at = failure.at if isinstance(failure, SourceFailed) else self.clock.now()
            self.metrics.git_errors.inc()
            if isinstance(err, ReconcilerError):
                message = redact(str(err))
                self.log.warning("cannot read the config repo", error=message)
            else:
                message = redact(
                    f"internal error while loading the repo: {type(err).__name__}: {err}"
                )
                self.log.exception("bug: loading the config repo failed")
            self._source_error = message
            self.store.record_fetch_failure(self.source.display, self.source.branch, message, at)
            return
        self._source_error = None
        self.lag.fetched(loaded.sha)
        self.store.record_fetch_success(
            self.source.display, self.source.branch, loaded.sha, loaded.fetched_at
        )
        for sha, older in loaded.others.items():
            self.book.add(sha, older.rendered, older.repo)
        if loaded.retried and loaded.unchanged:
            self._still_unsettled(loaded)
        if not loaded.unchanged:
            self._publish(loaded)
        elif loaded.others and self._head_desired is not None:
            # Older renders arrived: decide the apps that waited for them.
            missing = self.rollouts.on_head(
                self._head_desired.repo,
                loaded.sha,
                self.book,
                self._running_before,
                self.clock.now(),
                apps=set(self.rollouts.pending),
            )
            self._want(missing, loaded.others)
            self._rechoose()

    def _still_unsettled(self, loaded: Loaded) -> None:
        """The head's unsettled charts resolved as before: ask again later (backing off)."""
        retry = self._chart_retry
        if retry is None or retry.revision != loaded.sha:
            return
        now = self.clock.monotonic()
        upcoming = self._next_retry(retry, loaded, now)
        self._chart_retry = upcoming
        if upcoming is None:
            return
        log = self.log.bind(revision=short(loaded.sha))
        for app, why in sorted(upcoming.why.items()):
            log.warning(
                "chart source still not usable",
                app=app,
                reason=why,
                attempts=upcoming.attempts,
                retry_in=round(upcoming.due - now, 1),
            )

    def _next_retry(
        self, before: ChartRetry | None, loaded: Loaded, now: float
    ) -> ChartRetry | None:
        """When to resolve the unsettled charts of ``loaded`` again (None: none are)."""
        return next_retry(
            before,
            loaded.sha,
            loaded.charts,
            loaded.unsettled,
            now,
            self.settings.interval,
            self.settings.chart_retry_max,
        )

    def _retry_charts(self, loaded: Loaded, log: FilteringBoundLogger) -> None:
        """Schedule resolving the head's unsettled charts again; say which resolved now."""
        before = self._chart_retry
        now = self.clock.monotonic()
        self._chart_retry = self._next_retry(before, loaded, now)
        if loaded.retried and before is not None and before.revision == loaded.sha:
            for app in sorted(set(before.why) - set(loaded.unsettled)):
                chart = loaded.charts.charts.get(app)
                log.info(
                    "chart source answered again: chart resolved",
                    app=app,
                    chart=str(chart.source) if chart else None,
                    version=chart.version if chart else None,
                    attempts=before.attempts,
                )
        retry = self._chart_retry
        if retry is None:
            return
        for app, why in sorted(retry.why.items()):
            chart = loaded.charts.charts.get(app)
            log.warning(
                "chart source not usable, resolving the chart again later"
                if chart is None
                else "chart source not usable, rendering the cached chart until it answers",
                app=app,
                chart=str(chart.source) if chart else None,
                version=chart.version if chart else None,
                reason=why,
                retry_in=round(retry.due - now, 1),
            )

    def _publish(self, loaded: Loaded) -> None:
        wall = self.clock.now()
        log = self.log.bind(revision=short(loaded.sha))
        if loaded.sha != self._head or loaded.config_error is not None:
            self._chart_retry = None
        self._head = loaded.sha
        if loaded.commit is not None:
            log = log.bind(author=loaded.commit.author, subject=loaded.commit.message_first_line)
        err = loaded.config_error
        if err is not None:
            self.metrics.config_errors.inc()
            self.store.record_revision(loaded.sha, wall, False, str(err))
            for problem in err.problems:
                log.error("invalid config", problem=str(problem))
            base = self._desired
            if base is None and loaded.fallback is not None:
                base = build_desired(loaded.fallback, self._desired, self._generation)
                log.info("running the last good revision", applied=short(base.revision))
            message = invalid_revision_message(
                loaded.sha, err, base.revision if base is not None else None
            )
            if base is None:
                self._repo_error = message
                self.recorder.show_unapplied(message, wall)
                return
            self._install(replace(base, head=loaded.sha, repo_error=message))
            self._ready = True
            return
        partial = loaded.partial or PartialRepo(loaded.repo or Repo(Path("."), {}, {}, {}))
        held = holds(partial, self._previous_repo(loaded))
        if held.everything is not None:
            self._chart_retry = None  # nothing of it applies: nothing to resolve again
            self._hold_everything(loaded, held.everything, wall, log)
            return
        problems = partial.problems
        error = "\n".join(str(p) for p in problems) if problems else None
        self.store.record_revision(loaded.sha, wall, True, error)
        for problem in problems:
            log.error("invalid config", problem=str(problem))
        # Only a chart the source answered for (or pinned) is the revision's pin: a cached
        # fallback is replaced once the source answers.
        self.store.record_charts(loaded.sha, settled_pins(loaded.charts))
        self._retry_charts(loaded, log)
        stored = {(t.app, t.cluster): t.desired for t in self.store.list_targets()}
        desired = build_desired(loaded, self._desired, self._generation, held, stored)
        failed_apps = {t.app for t in loaded.rendered if t.error is not None}
        for app in desired.repo.apps:
            if app not in failed_apps:
                self.store.set_last_good(app, loaded.sha)
        for target in loaded.rendered:
            if target.error is not None:
                log.error(
                    "render failed", app=target.app, cluster=target.cluster, error=str(target.error)
                )
        for key, why in sorted(desired.invalid.items()):
            if held.reason(key) is not None:
                log.warning("target held on its revision", app=key[0], cluster=key[1], why=why)
        log.info("revision loaded", targets=sum(len(t) for t in desired.targets.values()))
        self._ready = True
        hold = self._prune_hold(desired)
        if hold is not None:
            self.store.set_held(loaded.sha, hold)
            log.error("revision held", reason=hold)
            self._pending = desired
            self._pending_loaded = loaded
            base = self._desired
            if base is None:
                self._repo_error = hold
                self.recorder.show_unapplied(hold, wall, held=True)
                return
            self._install(replace(base, head=loaded.sha, hold=hold, repo_error=None))
            return
        self._pending = None
        self._install(self._start_rollouts(loaded, desired, wall))

    def _start_rollouts(self, loaded: Loaded, desired: Desired, wall: datetime) -> Desired:
        """Start the rollouts ``loaded`` calls for; ``desired`` as rollouts and pins choose."""
        self.book.add(loaded.sha, loaded.rendered, loaded.repo)
        self._running_before = self._running_revisions()
        self._head_desired = desired
        # Targets kept on their revision whose app or cluster this revision does not define
        # (its file is broken): their rollouts wait as they are.
        kept = desired.revisions.keys()
        missing = self.rollouts.on_head(
            desired.repo,
            loaded.sha,
            self.book,
            self._running_before,
            wall,
            held={app for app, _ in kept if app not in desired.repo.apps},
            held_clusters={c for _, c in kept if c not in desired.repo.clusters},
        )
        self._want(missing, loaded.others)
        return self._choose(desired)

    def _previous_repo(self, loaded: Loaded) -> Repo | None:
        """The repo of what runs now (or, after a restart, of a revision targets should run):
        what a broken file defined before."""
        if self._desired is not None:
            return self._desired.repo
        return next((o.repo for o in loaded.others.values() if o.repo is not None), None)

    def _hold_everything(
        self, loaded: Loaded, why: str, wall: datetime, log: FilteringBoundLogger
    ) -> None:
        """A broken file whose reach is not known: the revision is not applied anywhere."""
        self.metrics.config_errors.inc()
        self.store.record_revision(loaded.sha, wall, False, why)
        log.error("invalid config", problem=why)
        base = self._desired
        applied = base.revision if base is not None else None
        stays = f"; {short(applied)} stays applied" if applied else "; nothing applied yet"
        message = f"revision {short(loaded.sha)} invalid: {why}{stays}"
        if base is None:
            self._repo_error = message
            self.recorder.show_unapplied(message, wall)
            return
        self._install(replace(base, head=loaded.sha, repo_error=message, hold=None))
        self._ready = True

    def _limits(self, repo: Repo) -> PruneLimits:
        """The daemon's prune limits, with the repo's ``reconciler.yaml`` winning."""
        limits, settings = self.settings.prune_limits, repo.settings
        return PruneLimits(
            max_objects=limits.max_objects
            if settings.max_prune_objects is None
            else settings.max_prune_objects,
            max_percent=limits.max_percent
            if settings.max_prune_percent is None
            else settings.max_prune_percent,
        )

    def _prune_hold(self, desired: Desired) -> str | None:
        """Why the prune guard holds ``desired`` (None: it may apply)."""
        managed = {(t.app, t.cluster): t.objects for t in self.store.list_targets() if t.objects}
        if not managed or self.store.released(desired.revision) is not None:
            return None
        after: dict[TargetKey, tuple[str, ...] | list[str]] = {}
        for name, results in desired.targets.items():
            view = desired.view(name)
            for target in results:
                key = (target.app, name)
                app = view.apps.get(target.app)
                kept = managed.get(key, ())
                if target.rendered is None or app is None or not app.sync.prune:
                    after[key] = kept
                elif not target.rendered.objects and not app.sync.allow_empty:
                    after[key] = kept  # an empty render prunes nothing without allowEmpty
                else:
                    after[key] = [str(ObjectRef.of(o)) for o in target.rendered.objects]
        for key, objects in managed.items():
            app = desired.repo.apps.get(key[0])
            if key not in after and app is not None and not app.sync.prune:
                after[key] = objects
        found = estimate(managed, after, reconciled=set(desired.targets))
        limits = self._limits(desired.repo)
        if not found.exceeds(limits):
            return None
        return held_message(desired.revision, found, limits)

    def _maybe_release(self) -> None:
        """Apply the held revision once someone released it (``reconciler release``)."""
        pending = self._pending
        if pending is None or self._stopping:
            return
        release = self.store.released(pending.revision)
        if release is None:
            return
        self._pending = None
        self.store.set_held(pending.revision, None)
        self.log.warning(
            "held revision released",
            revision=short(pending.revision),
            released_by=release.user,
            released_at=release.at.isoformat(),
        )
        loaded, self._pending_loaded = self._pending_loaded, None
        released = replace(pending, hold=None)
        if loaded is not None:
            released = self._start_rollouts(loaded, released, self.clock.now())
        self._install(released)

    # -- rollouts and pins: which revision each target runs --------------------------------------

    def _running_revisions(self) -> dict[TargetKey, str | None]:
        """What each target runs before a new head: the current desired state, else (after a
        restart) what the store says it should run or last ran."""
        if self._desired is not None:
            return dict(self._desired.revisions)
        out: dict[TargetKey, str | None] = {
            (r.app, r.cluster): r.revision for r in self.store.list_status() if r.revision
        }
        for target in self.store.list_targets():
            if target.desired is not None:
                out[(target.app, target.cluster)] = target.desired
        return out

    def _want(self, revisions: set[str], tried: Mapping[str, object]) -> None:
        """Ask the source job for these renders, once each (one that did not load is said)."""
        for sha in sorted(revisions):
            if self.book.has(sha):
                continue
            if sha in tried or sha == self._head:
                self.log.warning("revision could not be loaded", revision=short(sha))
                continue
            self._wanted.add(sha)

    def _choose(self, head: Desired) -> Desired:
        """``head`` with the targets that pins and rollouts keep elsewhere rendered from there;
        apps waiting for older renders keep what they run."""
        keys = [(t.app, t.cluster) for results in head.targets.values() for t in results]
        chosen = self.rollouts.chosen(keys)
        for key in keys:
            if key[0] in self.rollouts.pending and key not in chosen:
                before = self._running_before.get(key)
                if before is not None:
                    chosen[key] = before
        self._want({r for r in chosen.values() if not self.book.has(r)}, {})
        return with_revisions(head, chosen, self.book)

    def _rechoose(self) -> None:
        """Rollouts or pins moved some targets: same generation, only those clusters repass."""
        current = self._desired
        if current is None or self._head_desired is None:
            return
        desired = replace(
            self._choose(self._head_desired),
            generation=current.generation,
            head=current.head,
            repo_error=current.repo_error,
            hold=current.hold,
        )
        moved = {
            (t.app, cluster)
            for cluster, results in desired.targets.items()
            for t in results
            if desired.revisions.get((t.app, cluster)) != current.revisions.get((t.app, cluster))
        }
        self._desired = desired
        self.store.set_desired(
            (app, cluster, desired.revisions.get((app, cluster))) for app, cluster in moved
        )
        self._repass |= {cluster for _, cluster in moved}

    def _step_rollouts(self) -> None:
        moved = self.rollouts.tick(self.clock.now())
        if moved:
            self._rechoose()
        self.book.keep(
            self.rollouts.needed()
            | {r for r in (self._desired.revisions.values() if self._desired else ()) if r}
            | ({self._head} if self._head else set())
        )

    def _install(self, desired: Desired) -> None:
        """Make ``desired`` current: every cluster gets a pass; paused and gone ones are shown."""
        self._generation += 1
        desired = replace(desired, generation=self._generation)
        self._desired = desired
        self._repo_error = None
        wall = self.clock.now()
        if desired.hold is None and desired.repo_error is None:
            self.store.set_desired(
                (app, cluster, revision) for (app, cluster), revision in desired.revisions.items()
            )
        clusters = set(desired.repo.clusters) | set(desired.targets)
        known = set(self._schedules) | set(self._known_clusters)
        if len(clusters) != len(self._known_clusters):
            low = too_low(self.settings.open_files, len(clusters))
            if low is not None:
                self.log.warning(
                    "open-file limit too low for the clusters",
                    limit=self.settings.open_files,
                    clusters=len(clusters),
                    needed=needed(len(clusters)),
                    problem=low,
                )
        self._known_clusters = clusters
        for name in sorted(known - clusters):
            self.metrics.forget_cluster(name)
        for name in list(self._schedules):
            if name not in desired.targets and name not in self._running:
                del self._schedules[name]
        existing = {(r.app, r.cluster): r for r in self.store.list_status()}
        for app, cluster in existing:
            gone = cluster not in clusters
            paused = cluster not in desired.targets
            if gone or (paused and (app, cluster) not in desired.paused):
                self.recorder.forget(app, cluster)
        self.recorder.write(paused_rows(desired, existing, wall))
