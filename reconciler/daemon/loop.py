"""The daemon: follow a branch of a config repo and keep every cluster reconciled to it.

One main thread decides; worker threads do the slow I/O:

- the *source job* (fetch, load + validate, render) runs when the poll interval (plus jitter)
  expires or, for a local repo, as soon as its refs change (watchfiles);
- one *reconcile pass* per cluster runs when a new revision is published, when the cluster's
  drift interval expires, or when its backoff after a failure expires. Each cluster keeps its
  own schedule, so a slow or dead cluster never holds back the others;
- results are recorded by the main thread only (status, drift, last good revision and how the
  last fetch went in the SQLite store, metrics, logs). Every store call is one transaction, and
  stopping happens between two ticks, so nothing is ever half written.

Each target (app x cluster) runs its own revision (``desired``). A revision whose files are
broken in places moves every target it can: a broken app's targets, a broken cluster's targets,
the apps of a broken group stay on the revision they run, with the located problem in their
status (``blast``); only problems no unit owns (the repo, ``reconciler.yaml``) hold everything,
as an invalid revision. A target whose render fails keeps its previous good render the same way.

A revision that would prune more than the prune limits allow (``guard``) is held: nothing of it
is applied, every target shows ``Held`` and why, until ``reconciler release REV`` records a
release in the store (checked every tick) or a later commit changes things.

Time, randomness and thread dispatch are injected (``Clock``, ``rand``, ``Dispatcher``): unit
tests drive :meth:`Daemon.tick` with a fake clock and run passes inline.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import structlog
from structlog.typing import FilteringBoundLogger

from reconciler.charts.model import ChartLock, Pin
from reconciler.charts.resolver import ChartResolver
from reconciler.config.load import load_partial
from reconciler.config.model import PartialRepo, Repo
from reconciler.daemon.blast import holds
from reconciler.daemon.desired import (
    Desired,
    RenderBook,
    TargetKey,
    build_desired,
    crashed_rows,
    paused_rows,
    timed_out_rows,
    with_revisions,
)
from reconciler.daemon.follow import Follower, Loaded, Source, SourceFailed
from reconciler.daemon.guard import PruneLimits, estimate, held_message
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.publish import StatusPublisher
from reconciler.daemon.record import ERROR_STATES, HealthReport, PassReport, Recorder
from reconciler.daemon.rollouts import Rollouts
from reconciler.daemon.schedule import (
    Clock,
    ClusterSchedule,
    Dispatcher,
    PassKind,
    Settings,
    SystemClock,
    ThreadDispatcher,
    Waker,
)
from reconciler.daemon.status import invalid_revision_message, short
from reconciler.daemon.watch import RepoWatcher
from reconciler.discovery import cluster_capabilities
from reconciler.engine import TargetOutcome, check_health, reconcile
from reconciler.errors import ReconcilerError
from reconciler.health import TargetHealth
from reconciler.kube.management import SharedObjects
from reconciler.kube.pool import Clients
from reconciler.objects import ObjectRef
from reconciler.render import RenderCache, TargetResult, render_all
from reconciler.rollout.model import Observation
from reconciler.source import redact
from reconciler.store.db import Store
from reconciler.sync.model import DEFAULT_INSTANCE
from reconciler.toolchain import Toolchain

_MAX_SLEEP = 10.0  # the main loop wakes at least this often (health, timeouts)
_HEALTHY_WITHIN = 60.0  # /healthz fails when the main loop has not ticked for this long
_FALLBACK_CANDIDATES = 50  # valid revisions from the store a restart on an invalid head tries
_PRUNE_EVERY = 3600.0  # drift history retention is enforced at most this often
_ROLLOUT_TICK = 1.0  # while a rollout runs, the loop reads operators' commands this often


class ReconcileFn(Protocol):
    """``engine.reconcile``'s signature (injected so scheduling is testable without clusters)."""

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
        instance: str = DEFAULT_INSTANCE,
        revisions: Mapping[tuple[str, str], str | None] | None = None,
    ) -> list[TargetOutcome]: ...


class CheckFn(Protocol):
    """``engine.check_health``'s signature (injected like ``ReconcileFn``)."""

    def __call__(
        self, repo: Repo, targets: Iterable[TargetResult], clients: Clients, cluster: str
    ) -> dict[str, TargetHealth]: ...


@dataclass
class _Running:
    future: Future[PassReport]
    desired: Desired


class Daemon:
    """Follows a config repo and reconciles every cluster to it; see the module docstring."""

    def __init__(
        self,
        source: Source,
        store: Store,
        clients: Clients,
        *,
        settings: Settings | None = None,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        dispatcher: Dispatcher | None = None,
        load: Callable[[Path], PartialRepo] = load_partial,
        render: Callable[[Repo, ChartLock], list[TargetResult]] | None = None,
        charts: Callable[[], ChartResolver] | None = None,
        reconcile_fn: ReconcileFn = reconcile,
        check_fn: CheckFn = check_health,
        tools: Toolchain | None = None,
        rand: Callable[[], float] = random.random,
        shared: SharedObjects | None = None,
        replica: str | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.clients = clients
        self.settings = settings or Settings()
        self.metrics = metrics or Metrics()
        self.clock = clock or SystemClock()
        self.waker = Waker()
        self._dispatcher = dispatcher or ThreadDispatcher(self.waker.wake)
        # Each revision renders with a fresh cache: tool output is shared within one revision.
        self._follower = Follower(
            source,
            self.clock,
            load,
            render
            or (
                lambda repo, charts: render_all(
                    repo,
                    tools=tools,
                    cache=RenderCache(),
                    charts=charts,
                    capabilities=cluster_capabilities(repo, clients),
                )
            ),
            charts,
        )
        self._reconcile = reconcile_fn
        self._check = check_fn
        self._checks: dict[str, Future[HealthReport]] = {}
        self._check_started: dict[str, datetime] = {}  # wall time each check was dispatched
        self._rand = rand
        self.log = structlog.get_logger("reconciler.daemon").bind(repo=source.display)

        self._desired: Desired | None = None
        self._head_desired: Desired | None = None  # head's renders, before rollouts and pins
        self._generation = 0
        self.book = RenderBook()  # renders of every revision some target may run
        self.rollouts = Rollouts(store, self.metrics, self.log)
        self._wanted: set[str] = set()  # older revisions to load (rollout bases, pins)
        self._running_before: dict[TargetKey, str | None] = {}
        self._repass: set[str] = set()  # clusters whose revision changed: pass them again
        self._head: str | None = None
        self._source_job: Future[Loaded] | None = None
        self._source_error: str | None = None
        self._repo_error: str | None = None  # head invalid and nothing to fall back on
        self._sources_done = 0
        self._next_poll = 0.0
        self._poked = False
        self._stopping = False
        self._ready = False
        self._last_tick = self.clock.monotonic()
        self._schedules: dict[str, ClusterSchedule] = {}
        self._running: dict[str, _Running] = {}
        self.recorder = Recorder(store, self.metrics, self.clock, self.log)
        self._watcher = RepoWatcher(source.watch_paths, self.poke, self.log)
        self._known_clusters: set[str] = set()  # the clusters of the installed repo
        self._pending: Desired | None = None  # held by the prune guard until released
        self._pending_loaded: Loaded | None = None  # what it was built from (for rollouts)
        self._next_prune = self.clock.monotonic()
        # Sharding on: the status of the clusters this replica owns is published there.
        self.publisher = (
            StatusPublisher(
                store,
                shared,
                replica or "replica",
                self._dispatcher,
                self.metrics,
                self.log,
                observed=self._observed_on,
            )
            if shared is not None
            else None
        )

    # -- what others may ask or tell ------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once a valid config has been loaded (and so something can be applied)."""
        return self._ready

    @property
    def healthy(self) -> bool:
        return self.clock.monotonic() - self._last_tick < _HEALTHY_WITHIN

    @property
    def desired(self) -> Desired | None:
        return self._desired

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def busy(self) -> list[str]:
        """Clusters whose pass is still in flight."""
        return sorted(self._running)

    def poke(self) -> None:
        """Fetch now (a commit may have landed). Safe from any thread."""
        self._poked = True
        self.waker.wake()

    def stop(self) -> None:
        """Ask the loop to stop. Safe from signal handlers: sets a flag and writes one byte."""
        self._stopping = True
        self.waker.wake()

    def close(self) -> None:
        """Release the wake-up pipe; the store and the clients belong to the caller."""
        self.waker.close()

    # -- the loop -------------------------------------------------------------------------------

    def run(self, *, once: bool = False) -> int:
        """Run until :meth:`stop` (or, with ``once``, until every cluster had one pass).

        Returns the exit code: 0, or with ``once`` 2 when anything failed.
        """
        self.log.info(
            "daemon started",
            interval=self.settings.interval,
            drift_interval=self.settings.drift_interval,
            once=once,
        )
        if self.settings.watch and not once:
            self._watcher.start()
        try:
            while not self._stopping:
                delay = self.tick()
                if once and self.once_done():
                    break
                self.waker.wait(delay)
        finally:
            self._shutdown()
        return self.exit_code() if once else 0

    def tick(self) -> float:
        """Record what finished, start what is due; return how long to sleep at most."""
        now = self.clock.monotonic()
        self._last_tick = now
        self._collect_source()
        if not self._stopping:
            self._maybe_fetch(now)
            self._collect_source()  # an inline dispatcher (tests) has finished it already
        self._collect_passes()
        self._maybe_release()
        self._collect_checks()
        if not self._stopping:
            self._step_rollouts()
        now = self.clock.monotonic()
        self._maybe_prune(now)
        self._check_timeouts(now)
        if not self._stopping:
            self._dispatch(now)
            self._collect_passes()  # an inline dispatcher (tests) has finished them already
            self._dispatch_checks(now)
            self._collect_checks()
            self._publish_status()
        return self._sleep_for(now)

    def owned_clusters(self) -> set[str]:
        """The clusters of the installed revision this daemon owns (all of them unsharded)."""
        desired = self._desired
        if desired is None:
            return set()
        return set(desired.repo.clusters) | set(desired.targets)

    def _publish_status(self) -> None:
        if self.publisher is None:
            return
        touched, self.recorder.touched = self.recorder.touched, set()
        self.publisher.tick(self.owned_clusters(), touched)

    def _observed_on(self, cluster: str) -> dict[str, Observation]:
        """What the rollouts observed of each app on ``cluster`` (published for drivers)."""
        return {app: o for (app, name), o in self.rollouts.observed.items() if name == cluster}

    def once_done(self) -> bool:
        """After one load, every cluster of the desired revision finished (or timed out) once."""
        if self._sources_done == 0 or self._source_job is not None:
            return False
        desired = self._desired
        if desired is None:
            return True
        for name in desired.targets:
            schedule = self._schedules.get(name)
            if schedule is None:
                return False
            if schedule.running and not schedule.timed_out:
                return False
            if not schedule.running and schedule.generation != desired.generation:
                return False
        return True

    def exit_code(self) -> int:
        """2 when the repo could not be read or loaded or any target is in an error state."""
        if self._source_error or self._repo_error or self._desired is None:
            return 2
        if self._desired.repo_error:
            return 2
        return 2 if any(s in ERROR_STATES for s in self.recorder.states.values()) else 0

    def _maybe_prune(self, now: float) -> None:
        """Enforce the drift history's retention, at most once per ``_PRUNE_EVERY``."""
        if now < self._next_prune or self._stopping:
            return
        self._next_prune = now + _PRUNE_EVERY
        retention = timedelta(seconds=self.settings.drift_retention)
        pruned = self.store.prune_drift(retention, self.clock.now())
        if pruned:
            self.log.info("old drift records deleted", records=pruned, older_than=str(retention))

    def _sleep_for(self, now: float) -> float:
        wake = [now + _MAX_SLEEP]
        if self._source_job is None:
            wake.append(now if self._poked or self._wanted else self._next_poll)
        if self.rollouts.active():
            # Operators' commands arrive through the store: look often while a rollout runs.
            wake.append(now + _ROLLOUT_TICK)
            at = self.rollouts.wake_at()
            if at is not None:
                wake.append(now + max(0.0, at - self.clock.now().timestamp()))
        desired = self._desired
        if desired is not None:
            for name in desired.targets:
                schedule = self._schedules.get(name)
                if schedule is None:
                    return 0.0
                wake.append(schedule.wake_at(desired.generation, self.settings.cluster_timeout))
        return max(0.0, min(wake) - now)

    def _shutdown(self) -> None:
        self._stopping = True
        self._watcher.stop()
        deadline = self.clock.monotonic() + self.settings.shutdown_grace
        while self._running and self.clock.monotonic() < deadline:
            self._collect_passes()
            if self._running:
                self.waker.wait(min(0.1, max(0.0, deadline - self.clock.monotonic())))
        self._collect_passes()
        self._watcher.join()
        if self.busy:
            self.log.warning("daemon stopped; passes abandoned in flight", clusters=self.busy)
        else:
            self.log.info("daemon stopped")

    # -- source: fetch, load, render -------------------------------------------------------------

    def _maybe_fetch(self, now: float) -> None:
        due = self._poked or now >= self._next_poll or bool(self._wanted)
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
        if self._desired is None:
            # A restart: the revisions the store says targets run, and those rollouts and pins
            # keep targets on, are loaded with head.
            self._wanted |= {t.desired for t in self.store.list_targets() if t.desired}
            self._wanted |= self.rollouts.needed()
        others = sorted(r for r in self._wanted if not self.book.has(r))
        self._wanted.clear()
        self._source_job = self._dispatcher.submit(
            lambda: self._follower.work(head, fallback, last_good, pins, others),
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
        self.store.record_fetch_success(
            self.source.display, self.source.branch, loaded.sha, loaded.fetched_at
        )
        for sha, older in loaded.others.items():
            self.book.add(sha, older.rendered, older.repo)
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

    def _publish(self, loaded: Loaded) -> None:
        wall = self.clock.now()
        log = self.log.bind(revision=short(loaded.sha))
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
            self._hold_everything(loaded, held.everything, wall, log)
            return
        problems = partial.problems
        error = "\n".join(str(p) for p in problems) if problems else None
        self.store.record_revision(loaded.sha, wall, True, error)
        for problem in problems:
            log.error("invalid config", problem=str(problem))
        self.store.record_charts(
            loaded.sha,
            {a: (str(c.source), c.version, c.digest) for a, c in loaded.charts.charts.items()},
        )
        for app, chart in sorted(loaded.charts.charts.items()):
            if chart.note:
                log.warning(
                    "chart source not usable, rendering the cached chart",
                    app=app,
                    chart=str(chart.source),
                    version=chart.version,
                    reason=chart.note,
                )
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
        missing = self.rollouts.on_head(
            desired.repo, loaded.sha, self.book, self._running_before, wall
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

    # -- clusters: dispatch, time out, record ----------------------------------------------------

    def _dispatch(self, now: float) -> None:
        desired = self._desired
        if desired is None:
            return
        for name in sorted(self._repass):
            schedule = self._schedules.get(name)
            if schedule is not None and not schedule.running:
                schedule.next_check = min(schedule.next_check, now)
                self._repass.discard(name)
            elif schedule is None:
                self._repass.discard(name)
        schedules = [self._schedules.setdefault(n, ClusterSchedule(n)) for n in desired.targets]
        due = [
            s for s in schedules if s.due(now, desired.generation) and s.cluster not in self._checks
        ]
        # Longest waiting first, so a bounded pool serves every cluster in turn.
        due.sort(key=lambda s: (s.wake_at(desired.generation, 0.0), s.cluster))
        for schedule in due[: max(0, self.settings.max_parallel - len(self._running))]:
            name = schedule.cluster
            schedule.start(now)
            job = functools.partial(self._pass, desired, name)
            future = self._dispatcher.submit(job, name=f"reconciler-{name}")
            self._running[name] = _Running(future, desired)

    def _dispatch_checks(self, now: float) -> None:
        """Re-read targets whose health is not final, on clusters with no pass due or running:
        a fresh rollout turns Healthy or Degraded without waiting for the drift interval."""
        desired = self._desired
        if desired is None:
            return
        for name in desired.targets:
            schedule = self._schedules.get(name)
            if schedule is None or name in self._checks or now < schedule.next_health:
                continue
            if schedule.running or schedule.due(now, desired.generation):
                continue  # the pass judges health anyway
            schedule.next_health = float("inf")  # set again when the check is collected
            apps = set(self.recorder.unsettled(name)) | self._watched(name)
            targets = [t for t in desired.targets[name] if t.app in apps]
            if not targets:
                continue
            self._check_started[name] = self.clock.now()
            job = functools.partial(self._health_check, desired, name, targets)
            self._checks[name] = self._dispatcher.submit(job, name=f"health-{name}")

    def _health_check(
        self, desired: Desired, cluster: str, targets: list[TargetResult]
    ) -> HealthReport:
        """Runs on a worker thread: reads one cluster, never the store."""
        return HealthReport(
            cluster, desired, self._check(desired.repo, targets, self.clients, cluster)
        )

    def _collect_checks(self) -> None:
        for name, future in list(self._checks.items()):
            if not future.done():
                continue
            del self._checks[name]
            try:
                report = future.result()
            except Exception:
                self.log.exception("bug: health check crashed", cluster=name)
                continue
            desired = self._desired
            if desired is None or desired.generation != report.desired.generation:
                continue  # a newer revision: its pass judges health
            self.recorder.record_check(report)
            read_after = self._check_started.pop(name, None) or self.clock.now()
            for app, health in report.health.items():
                key = (app, name)
                revision = report.desired.revisions.get(key, report.desired.revision)
                self.rollouts.observe_health(
                    key, revision, str(health.health), health.reason, read_after
                )
            self._schedule_health(name)

    def _schedule_health(self, cluster: str) -> None:
        schedule = self._schedules.get(cluster)
        if schedule is None:
            return
        # A gate waits on watched targets: read them even when their health looks final.
        unsettled = self.recorder.unsettled(cluster) or self._watched(cluster)
        now = self.clock.monotonic()
        schedule.next_health = now + self.settings.health_interval if unsettled else float("inf")

    def _watched(self, cluster: str) -> set[str]:
        """Apps on ``cluster`` a rollout gate waits on."""
        return {app for app, name in self.rollouts.watched() if name == cluster}

    def _pass(self, desired: Desired, cluster: str) -> PassReport:
        """Runs on a worker thread: talks to one cluster, never to the store."""
        started = self.clock.monotonic()
        outcomes = self._reconcile(
            desired.view(cluster),
            desired.targets.get(cluster, ()),
            self.clients,
            desired.revision,
            apply=True,
            clusters=[cluster],
            instance=self.settings.instance,
            revisions={k: r for k, r in desired.revisions.items() if k[1] == cluster},
        )
        return PassReport(cluster, desired, outcomes, self.clock.monotonic() - started)

    def _observe(self, report: PassReport) -> None:
        """Tell the rollouts what a pass saw of each target: applied, reachable, healthy (as
        judged on what the pass read and the apply answered, after it applied)."""
        ended = self.clock.now()
        started = ended - timedelta(seconds=report.duration)
        for outcome in report.outcomes:
            if outcome.departed:
                continue
            key = (outcome.app, report.cluster)
            revision = report.desired.revisions.get(key, report.desired.revision)
            applied = outcome.ok and outcome.result is not None
            health = outcome.health
            self.rollouts.observe(
                key,
                revision,
                started,
                ended,
                applied,
                outcome.unreachable,
                str(health.health) if health is not None else None,
                health.reason if health is not None else "",
            )

    def _check_timeouts(self, now: float) -> None:
        timeout = self.settings.cluster_timeout
        for name, running in self._running.items():
            schedule = self._schedules.get(name)
            if schedule is None or schedule.timed_out or schedule.running_since is None:
                continue
            if now - schedule.running_since < timeout:
                continue
            delay = schedule.time_out(now, self.settings)
            message = (
                f"cluster {name}: the reconcile pass did not finish within {timeout:g}s; "
                f"retrying after it returns, in {delay:g}s at the earliest"
            )
            self.log.warning("reconcile pass timed out", cluster=name, timeout=timeout)
            if name in self._known_clusters:
                self.metrics.cluster_up.labels(name).set(0)
            self.recorder.write(timed_out_rows(running.desired, name, message, self.clock.now()))

    def _collect_passes(self) -> None:
        for name, running in list(self._running.items()):
            if not running.future.done():
                continue
            del self._running[name]
            schedule = self._schedules.get(name)
            now = self.clock.monotonic()
            report: PassReport | None = None
            crash = ""
            try:
                report = running.future.result()
            except Exception as err:
                # A bug, not a cluster problem: say so loudly, keep the other clusters going.
                self.log.exception("bug: reconcile pass crashed", cluster=name)
                crash = f"internal error: {type(err).__name__}: {err}"
            if schedule is None:
                continue
            if self._desired is not None and name not in self._desired.targets:
                # The cluster left the repo (or was paused) meanwhile: drop its schedule, so a
                # return later starts afresh instead of inheriting one stuck "running".
                del self._schedules[name]
                continue
            if schedule.timed_out:
                schedule.finish_late()
                self.log.info("late pass result discarded", cluster=name)
                continue
            if report is None:
                self.recorder.write(crashed_rows(running.desired, name, crash, self.clock.now()))
                schedule.finish(
                    now, running.desired.generation, PassKind.APPS_FAILED, self.settings
                )
                continue
            kind = self.recorder.record_pass(report)
            schedule.finish(now, report.desired.generation, kind, self.settings)
            self._observe(report)
            self._schedule_health(name)
            if kind is PassKind.CLUSTER_FAILED:
                self.log.warning(
                    "cluster unreachable",
                    cluster=name,
                    retry_in=round(schedule.blocked_until - now, 3),
                    failures=schedule.failures,
                )
