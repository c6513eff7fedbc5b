"""Per-cluster passes and health checks: dispatch, time out, collect, record.

Each cluster keeps its own schedule (``schedule``); a pass or a health check runs on a worker
thread and talks to one cluster, never to the store; the main thread collects it and records
what it saw (``record``), tells the rollouts, and schedules the cluster's next pass.
"""

from __future__ import annotations

import functools
import heapq
from datetime import timedelta

from reconciler.daemon.desired import Desired, crashed_rows, timed_out_rows
from reconciler.daemon.record import HealthReport, PassReport
from reconciler.daemon.schedule import ClusterSchedule, PassKind
from reconciler.daemon.state import LoopState, Running
from reconciler.daemon.status import short
from reconciler.render import TargetResult


class ClusterPasses(LoopState):
    """The daemon's part that runs each cluster's passes and health checks."""

    def _claim(self) -> None:
        """Ask the gate (several replicas) which clusters are ours this tick. A cluster that
        becomes ours is passed at once (another replica may have worked it meanwhile), unless
        it is backing off: one that was ours before keeps its schedule, backoff included, so
        a short lapse of the session is no wave of passes on clusters that fail. One that
        stops being ours gets no passes (its pass in flight, if any, is still collected)."""
        desired = self._desired
        if self._gate is None or desired is None:
            return
        # Paused clusters too: their status is published by their owner.
        clusters = set(desired.repo.clusters) | set(desired.targets)
        ours = self._gate.claim(clusters, self._running.keys())
        before = self._ours or frozenset()
        for name in (ours - before) - self._running.keys():
            schedule = self._schedules.get(name)
            if schedule is not None:
                schedule.regained()
        self._ours = ours
        for name in sorted((before - ours) - self._running.keys() - self._checks.keys()):
            self._forget_worked(name)

    def _forget_worked(self, cluster: str) -> None:
        """Drop the gauges of a cluster another replica works now (its pass or check in
        flight, if any, was collected): they would stay frozen at what we last saw."""
        desired = self._desired
        apps = {app for app, name in self.recorder.states if name == cluster}
        if desired is not None:
            apps |= {target.app for target in desired.targets.get(cluster, ())}
        self.metrics.forget_worked(cluster, sorted(apps))

    def _forget_not_ours(self, collected: list[str]) -> None:
        """After collecting passes or checks: forget the gauges of the clusters among them
        that another replica works now."""
        if self._gate is None:
            return
        ours = self._ours or frozenset()
        for name in collected:
            if name not in ours and name not in self._running and name not in self._checks:
                self._forget_worked(name)

    def _targeted(self, desired: Desired) -> list[str]:
        """The clusters of ``desired`` this daemon works: all, or with several replicas the
        ones whose Lease it holds."""
        if self._gate is None:
            return list(desired.targets)
        ours = self._ours or frozenset()
        return [name for name in desired.targets if name in ours]

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
        free = self.settings.max_parallel - len(self._running)
        if free <= 0:
            return  # every slot taken: nothing can start (with many clusters, most ticks)
        schedules = [
            self._schedules.setdefault(n, ClusterSchedule(n)) for n in self._targeted(desired)
        ]
        due = [
            s for s in schedules if s.due(now, desired.generation) and s.cluster not in self._checks
        ]
        if self._once:
            # One pass per cluster, failed or not: a drift check or retry coming due while the
            # round is still going (a round longer than the drift interval) never starts.
            due = [s for s in due if self._dispatched.get(s.cluster) != desired.generation]
        # Longest waiting first, so a bounded pool serves every cluster in turn.
        first = heapq.nsmallest(
            free, due, key=lambda s: (s.wake_at(desired.generation, 0.0), s.cluster)
        )
        for schedule in first:
            name = schedule.cluster
            if self._gate is not None and not self._gate.begin(name):
                continue  # given back (or our session lapsed) since this tick's claim
            schedule.start(now)
            self._dispatched[name] = desired.generation
            self.log.debug("pass started", cluster=name, revision=short(desired.revision))
            job = functools.partial(self._pass, desired, name)
            future = self._dispatcher.submit(job, name=f"reconciler-{name}")
            self._running[name] = Running(future, desired)

    def _dispatch_checks(self, now: float) -> None:
        """Re-read targets whose health is not final, on clusters with no pass due or running:
        a fresh rollout turns Healthy or Degraded without waiting for the drift interval."""
        desired = self._desired
        if desired is None:
            return
        for name in self._targeted(desired):
            schedule = self._schedules.get(name)
            if len(self._checks) >= self.settings.max_parallel:
                break  # bounded like passes; the others are due at the next tick
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
        if not any(f.done() for f in self._checks.values()):
            return
        finished = [name for name, future in self._checks.items() if future.done()]
        with self.store.batch():
            self._collect_finished_checks()
        self._forget_not_ours(finished)

    def _collect_finished_checks(self) -> None:
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
            revisions=desired.revisions_on(cluster),
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
        if not any(r.future.done() for r in self._running.values()):
            return
        finished = [name for name, running in self._running.items() if running.future.done()]
        with self.store.batch():  # one commit for the passes of this tick, not one per row
            self._collect_finished_passes()
        self._forget_not_ours(finished)

    def _collect_finished_passes(self) -> None:
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
