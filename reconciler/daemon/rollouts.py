"""Rollouts in the daemon: which revision each target runs, rollouts started when a new head
renders differently, and stepped on every tick from what passes saw and operators asked.

Main thread only. What a step decides (the rollout's state, the revisions its targets should
run, the operators' commands it took) is written in one transaction before any pass acts on
it, so a daemon killed at any point resumes from exactly there: nothing done is redone and no
gate is skipped. A gate counts health read by a pass that started after the revision was
applied; a soak cut short by a restart starts again (never shortened), and a cluster in flight
gets a whole progress deadline again from the restart (``watching_since``). An app whose files
are broken at head is held: its rollout is not stepped until the app loads again.

With several replicas (``shared``), the rollouts live on the management cluster instead
(``sharedrollouts``): each replica reads every app's rollout there, only the app's driver
decides and steps it (a conditional write, then the local store), the others wait for the
driver's decision on a new head before moving their clusters; commands and pins come from there.

Operators reach a running daemon through the same store: ``reconciler rollout approve`` and
the others add a command row that the next tick takes; pins (``reconciler rollback``) are read
on every tick.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

from structlog.typing import FilteringBoundLogger

from reconciler.config.model import Repo
from reconciler.daemon.desired import RenderBook, TargetKey
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.sharedrollouts import SharedRollouts
from reconciler.rollout.begin import begin
from reconciler.rollout.codec import state_from_data, state_to_data
from reconciler.rollout.machine import step, supersede, wake_at
from reconciler.rollout.members import Targets, why_left
from reconciler.rollout.model import (
    ClusterPhase,
    Command,
    CommandKind,
    Observation,
    RolloutState,
)
from reconciler.rollout.strategy import plan_for, strategy_of
from reconciler.store.db import Store
from reconciler.store.rows import ALL_CLUSTERS, Pin, RolloutCommandRow, RolloutRow

# Phases in which a cluster waits for a pass to read it.
_WATCHED = frozenset({ClusterPhase.PROGRESSING, ClusterPhase.SOAKING, ClusterPhase.ROLLING_BACK})


class Rollouts:
    """Every app's latest rollout, what passes saw of its targets, and the pins."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        log: FilteringBoundLogger,
        shared: SharedRollouts | None = None,
    ) -> None:
        self.store = store
        self.shared = shared
        self._head: str | None = None  # the head on_head decided last
        self._head_args: tuple[Repo, RenderBook, Mapping[TargetKey, str | None]] | None = None
        self.metrics = metrics
        self.log = log
        self.states: dict[str, RolloutState] = {
            row.app: state_from_data(row.data) for row in store.latest_rollouts()
        }
        self.strategic: set[str] | None = None  # apps with a strategy at head (None: unknown)
        self.pending: set[str] = set()  # apps whose decision waits for older renders
        # Apps broken at head (held on what they run): their rollouts wait as they are.
        self.held: frozenset[str] = frozenset()
        self.held_clusters: frozenset[str] = frozenset()  # clusters whose file is broken at head
        self.watching_since: float | None = None  # the first tick: no health known before it
        self.observed: dict[TargetKey, Observation] = {}
        # The clusters each app with a strategy is placed on (unpaused) at head: a rollback
        # does not wait for the others (an app missing here: not known yet, all count).
        self.targets: dict[str, frozenset[str]] = {}
        for target in store.list_targets():
            if target.applied is not None and target.applied_at is not None:
                key = (target.app, target.cluster)
                self.observed[key] = Observation(target.applied, target.applied_at.timestamp())
        self.pins: list[Pin] = store.list_pins()
        for state in self.states.values():
            self.metrics.show_rollout(state)

    # -- which revision each target runs ----------------------------------------------------

    def pin_of(self, app: str, cluster: str) -> Pin | None:
        whole = None
        for pin in self.pins:
            if pin.app == app and pin.cluster == cluster:
                return pin
            if pin.app == app and pin.cluster == ALL_CLUSTERS:
                whole = pin
        return whole

    def revision_of(self, app: str, cluster: str) -> str | None:
        """What a pin, or the app's latest rollout, says ``cluster`` runs (None: head)."""
        pin = self.pin_of(app, cluster)
        if pin is not None:
            return pin.revision
        if self.strategic is not None and app not in self.strategic:
            return None
        state = self.states.get(app)
        if state is not None and any(c.cluster == cluster for c in state.clusters):
            return state.desired(cluster)
        return None

    def chosen(self, keys: Iterable[TargetKey]) -> dict[TargetKey, str]:
        out = {}
        for app, cluster in keys:
            revision = self.revision_of(app, cluster)
            if revision is not None:
                out[(app, cluster)] = revision
        return out

    def needed(self) -> set[str]:
        """Revisions some target may run by a pin or a rollout: their renders stay loaded."""
        out = {pin.revision for pin in self.pins}
        for state in self.states.values():
            out.add(state.revision)
            out.update(c.base for c in state.clusters if c.base is not None)
            out.update(c.runs for c in state.clusters if c.runs is not None)
        return out

    # -- a new head --------------------------------------------------------------------------

    def on_head(
        self,
        repo: Repo,
        head: str,
        book: RenderBook,
        running: Mapping[TargetKey, str | None],
        now: datetime,
        apps: Collection[str] | None = None,
        held: Collection[str] | None = None,
        held_clusters: Collection[str] | None = None,
    ) -> set[str]:
        """Start (or supersede) the rollout of every app (of ``apps``) whose render changes at
        ``head``; return the revisions whose renders are needed to decide for the others.

        ``held``: apps broken at ``head`` (their files do not load): their rollouts stay as they
        are, not stepped, until the app loads again (None: as decided last). ``held_clusters``:
        clusters whose file is broken at ``head`` (None: as decided last)."""
        at = now.timestamp()
        self._head, self._head_args = head, (repo, book, running)
        if held is not None:
            self.held = frozenset(held)
        if held_clusters is not None:
            self.held_clusters = frozenset(held_clusters)
        before = self.strategic or set()
        self.strategic = {a.name for a in repo.apps.values() if strategy_of(repo, a) is not None}
        self.strategic |= before & self.held
        missing: set[str] = set()
        if apps is None:
            self.targets = {}
        for name, state in sorted(self.states.items()):
            if not self._decides(name):
                continue
            gone = name not in repo.apps and name not in self.held and not state.finished
            if gone and not self._waits(name, head):
                stopped = replace(supersede(state, head, at), reason="the app left the repo")
                self.states[name] = stopped
                self._save(stopped, (), now)
                self.log.info("rollout stopped: the app left the repo", app=name)
        for app in repo.apps.values():
            if apps is not None and app.name not in apps:
                continue
            self.pending.discard(app.name)
            log = self.log.bind(app=app.name, revision=head[:12])
            latest = self.states.get(app.name)
            plan = plan_for(repo, app)
            if plan is not None:
                self.targets[app.name] = frozenset(plan.clusters)
            else:
                self.targets.pop(app.name, None)
            if not self._decides(app.name):
                # Another replica drives it: its clusters stay as they run until the driver
                # has decided on this head (``tick`` sees that in the shared object).
                if plan is not None and self._shared_head(app.name) != head:
                    self.pending.add(app.name)
                continue
            if self._waits(app.name, head):
                continue  # this replica's head is behind the app's rollout: after its fetch
            if plan is None:
                if latest is not None and not latest.finished:
                    stopped = replace(supersede(latest, head, at), reason="spec.rollout removed")
                    self.states[app.name] = stopped
                    self._save(stopped, (), now)
                    log.info("rollout stopped: spec.rollout removed", stopped=latest.revision[:12])
                continue
            mine = {c: self._runs(running, app.name, c) for c in plan.clusters}
            revisions = {head, *(r for r in mine.values() if r is not None)}
            if latest is not None:
                revisions.add(latest.revision)
            absent = {r for r in revisions if not book.has(r)}
            if absent:
                missing |= absent
                self.pending.add(app.name)
                continue
            for warning in plan.warnings:
                log.warning("rollout plan: " + warning)
            digests = {
                (rev, c): d
                for rev in revisions
                for c in plan.clusters
                if (d := book.digest(rev, (app.name, c))) is not None
            }
            left = {  # why a cluster of the latest rollout is no longer a target
                c.cluster: why_left(repo, c.cluster, self.held_clusters)
                for c in (latest.clusters if latest is not None else ())
                if c.cluster not in mine
            }
            decided = begin(app.name, Targets(head, plan, mine, digests, left), latest, at)
            if decided.refitted is not None:
                refitted = decided.refitted.state
                if not self._save(refitted, (), now, head=head):
                    self.pending.add(app.name)  # the driver tries again on a later tick
                    continue
                self.states[app.name] = refitted
                for event in decided.refitted.events:
                    log.info("rollout: " + event.message, stage=event.stage, cluster=event.cluster)
                continue
            if self.shared is not None and decided.started is None:
                # Nothing to roll out at this head: say so, the other replicas wait for it.
                if self._shared_head(app.name) != head and not self.shared.save(
                    app.name, None, (), head
                ):
                    self.pending.add(app.name)
                continue
            if decided.superseded is not None and self.shared is None:
                self._save(decided.superseded, (), now)
                log.info("rollout superseded", superseded=decided.superseded.revision[:12])
            if decided.started is not None:
                state = decided.started
                if not self._save(state, (), now, head=head):
                    self.pending.add(app.name)  # the driver tries again on a later tick
                    continue
                if decided.superseded is not None:
                    log.info("rollout superseded", superseded=decided.superseded.revision[:12])
                self.states[app.name] = state
                log.info(
                    "rollout started",
                    stages=[f"{s.name}: {', '.join(s.clusters)}" for s in plan.stages],
                    at_once=[c.cluster for c in state.clusters if c.unchanged],
                )
        return missing

    # -- every tick --------------------------------------------------------------------------

    def tick(self, now: datetime) -> bool:
        """Read pins and operators' commands, step every running rollout; return whether some
        target's revision may have changed (pins or a step moved it)."""
        before = self.chosen_all()
        if self.watching_since is None:
            self.watching_since = now.timestamp()
        decided = self._refresh(now)
        pins = self.store.list_pins() if self.shared is None else self.shared.pins()
        pins_moved = pins != self.pins
        self.pins = pins
        commands = (
            self.store.pending_rollout_commands() if self.shared is None else self.shared.commands()
        )
        by_rollout: dict[tuple[str, str], list[RolloutCommandRow]] = {}
        stale: list[int] = []
        for row in commands:
            state = self.states.get(row.app)
            if state is None or state.revision != row.revision:
                self.log.warning(
                    "rollout command ignored: that rollout is not the app's newest",
                    app=row.app,
                    revision=row.revision[:12],
                    command=row.kind,
                    user=row.user,
                )
                stale.append(row.id)
            else:
                by_rollout.setdefault((row.app, row.revision), []).append(row)
        if stale and self.shared is None:
            self.store.consume_rollout_commands(stale, now)
        elif stale and self.shared is not None:
            for app in sorted({r.app for r in commands if r.id in stale}):
                self.shared.save(
                    app, None, [r.id for r in commands if r.app == app and r.id in stale]
                )
        at = now.timestamp()
        for app, state in sorted(self.states.items()):
            rows = by_rollout.get((app, state.revision), [])
            if not self._decides(app):
                continue  # another replica drives it
            if app in self.pending or app in self.held or (state.finished and not rows):
                continue  # commands for a pending or held app wait until it is decided
            observations = {c.cluster: self._observation(app, c.cluster) for c in state.clusters}
            commands_in = [
                Command(CommandKind(r.kind), r.user, r.at.timestamp(), r.stage) for r in rows
            ]
            result = step(state, observations, commands_in, at, self.watching_since)
            if not result.changed and not rows:
                continue
            if not self._save(result.state, [r.id for r in rows], now):
                continue  # not written (someone wrote first): nothing of it is acted on
            self.states[app] = result.state
            log = self.log.bind(app=app, revision=result.state.revision[:12])
            for event in result.events:
                emit = log.warning if event.level == "warning" else log.info
                emit("rollout: " + event.message, stage=event.stage, cluster=event.cluster)
                if event.cluster is not None and event.message.startswith("failed"):
                    self.metrics.rollout_failures.labels(app).inc()
        return decided or pins_moved or before != self.chosen_all()

    def _runs(self, running: Mapping[TargetKey, str | None], app: str, cluster: str) -> str | None:
        """What ``cluster`` runs of ``app``: as the daemon has it, else (a cluster that was not
        a target, paused or its file broken) what the store says it should run or last ran."""
        revision = running.get((app, cluster))
        if revision is not None:
            return revision
        for target in self.store.list_targets(cluster):
            if target.app == app:
                return target.desired or target.applied
        return None

    def _decides(self, app: str) -> bool:
        """Whether this daemon decides ``app``'s rollout: always alone, with several replicas
        when it drives the app."""
        return self.shared is None or self.shared.drives(app)

    def _waits(self, app: str, head: str) -> bool:
        """Several replicas: ``app`` stays pending while ``head`` is behind its rollout."""
        waits = self.shared is not None and self.shared.behind(app, head)
        (self.pending.add if waits else self.pending.discard)(app)
        return waits

    def _shared_head(self, app: str) -> str | None:
        return self.shared.head(app) if self.shared is not None else None

    def _refresh(self, now: datetime) -> bool:
        """Several replicas: read the shared rollouts (they win over what this replica
        remembers); decide the apps that waited, for a driver that wrote this head or (after a
        takeover, or a failed write) by this replica now driving them. True when some app's
        decision arrived."""
        shared = self.shared
        if shared is None or not shared.due(self.active()) or not shared.refresh():
            return False
        self.states.update(shared.states())
        arrived = False
        for app in sorted(self.pending):
            if not shared.drives(app):
                if self._head is not None and shared.head(app) == self._head:
                    self.pending.discard(app)
                    arrived = True
            elif self._head is not None and self._head_args is not None:
                repo, book, running = self._head_args
                self.on_head(repo, self._head, book, running, now, apps={app})
                arrived = app not in self.pending or arrived
        for state in self.states.values():
            self.metrics.show_rollout(state)
        for app in shared.objects:
            if shared.drives(app):
                self.metrics.rollout_driver.labels(app, shared.me).set(1)
            else:
                with contextlib.suppress(KeyError):
                    self.metrics.rollout_driver.remove(app, shared.me)
        return arrived

    def chosen_all(self) -> dict[TargetKey, str]:
        keys = {(app, c.cluster) for app, s in self.states.items() for c in s.clusters}
        keys |= {(p.app, p.cluster) for p in self.pins if p.cluster != ALL_CLUSTERS}
        return self.chosen(keys)

    def wake_at(self) -> float | None:
        """The next wall time (epoch seconds) a running rollout could move by the clock alone."""
        times = [
            t
            for s in self.states.values()
            if s.app not in self.held and (t := wake_at(s, self.watching_since)) is not None
        ]
        return min(times) if times else None

    def active(self) -> bool:
        if self.shared is not None and self.pending:
            return True  # waiting for another replica's decision: look often
        return any(s.running for s in self.states.values())

    def watched(self) -> set[TargetKey]:
        """Targets a gate waits on: they want passes, to read whether they are healthy."""
        return {
            (app, c.cluster)
            for app, state in self.states.items()
            if state.running
            for c in state.clusters
            if c.phase in _WATCHED
        }

    # -- what passes saw ---------------------------------------------------------------------

    def observe(
        self,
        key: TargetKey,
        revision: str | None,
        started: datetime,
        ended: datetime,
        applied: bool,
        unreachable: bool,
        health: str | None,
        health_reason: str = "",
    ) -> None:
        """A pass from ``started`` to ``ended`` reconciled ``key`` at ``revision`` (``applied``:
        all of it; ``health``: as judged, None if not). The revision counts as applied at
        ``ended``, its health as read at ``started`` (objects it left alone were read before the
        apply), so the applying pass never decides a gate: a later read does."""
        old = self.observed.get(key, Observation(None))
        applied_rev, applied_at = old.applied, old.applied_at
        if applied and revision is not None and revision != applied_rev:
            applied_rev, applied_at = revision, ended.timestamp()
        self.observed[key] = replace(
            old, applied=applied_rev, applied_at=applied_at, reachable=not unreachable
        )
        if health is not None and not unreachable and revision == applied_rev:
            self.observe_health(key, revision, health, health_reason, started)

    def observe_health(
        self, key: TargetKey, revision: str | None, health: str, reason: str, read_after: datetime
    ) -> None:
        """``key`` running ``revision`` was judged ``health`` from objects read after
        ``read_after`` (health of another revision than the one applied is ignored)."""
        old = self.observed.get(key, Observation(None))
        if revision is None or revision != old.applied:
            return
        at = read_after.timestamp()
        since = old.health_since if health == old.health and old.health_since else at
        self.observed[key] = replace(
            old,
            health=health,
            health_since=since,
            health_at=at,
            health_reason=reason,
            reachable=True,
        )

    def _observation(self, app: str, cluster: str) -> Observation:
        seen = self.observed.get((app, cluster), Observation(None, reachable=False))
        shared = self.shared
        if shared is not None and not shared.membership.mine(cluster):
            # Another replica works it: what it published (read only while a gate waits).
            state = self.states.get(app)
            waits = state is not None and any(
                c.cluster == cluster and c.phase in _WATCHED for c in state.clusters
            )
            published = shared.observation(app, cluster) if waits else None
            seen = published or Observation(None, reachable=False)
        pinned = self.pin_of(app, cluster) is not None
        placed = self.targets.get(app)
        targeted = placed is None or cluster in placed
        if (pinned, targeted) == (seen.pinned, seen.targeted):
            return seen
        return replace(seen, pinned=pinned, targeted=targeted)

    # -- writing -----------------------------------------------------------------------------

    def _save(
        self,
        state: RolloutState,
        consumed: Iterable[int],
        now: datetime,
        head: str | None = None,
    ) -> bool:
        """Write a rollout's state: first to the management cluster with several replicas
        (False: not written there, so not here either), then the local store."""
        ids = list(consumed)
        if self.shared is not None:
            if not self.shared.save(state.app, state, ids, head):
                return False
            ids = []  # shared commands are consumed there, not in the local store
        row = RolloutRow(
            app=state.app,
            revision=state.revision,
            phase=str(state.phase),
            data=state_to_data(state),
            started_at=datetime.fromtimestamp(state.started_at, UTC),
            updated_at=now,
        )
        desired = [
            (state.app, c.cluster, pin.revision if pin is not None else state.desired(c.cluster))
            for c in state.clusters
            for pin in (self.pin_of(state.app, c.cluster),)
        ]
        self.store.save_rollout(row, desired, ids, now)
        self.metrics.show_rollout(state)
        return True
