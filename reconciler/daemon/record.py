"""Writes what the loop decided: status rows, health, drift records, departed apps, metrics,
logs.

Only the main thread calls it; every store call is one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from structlog.typing import FilteringBoundLogger

from reconciler.daemon.desired import Desired, TargetKey
from reconciler.daemon.metrics import APPLIED_ACTIONS, Metrics
from reconciler.daemon.schedule import Clock, PassKind, classify
from reconciler.daemon.status import first, short, target_status
from reconciler.drift import findings
from reconciler.engine import TargetOutcome
from reconciler.health import Health, TargetHealth
from reconciler.objects import ObjectRef
from reconciler.store.db import Store
from reconciler.store.rows import DriftKey, State, StatusRow
from reconciler.sync.model import ApplyResult

ERROR_STATES = frozenset({State.FAILED, State.UNREACHABLE, State.INVALID_CONFIG, State.HELD})


@dataclass
class PassReport:
    cluster: str
    desired: Desired
    outcomes: list[TargetOutcome]
    duration: float


@dataclass
class HealthReport:
    """A health re-check of some targets on one cluster (reads only, between passes)."""

    cluster: str
    desired: Desired
    health: dict[str, TargetHealth]  # by app; a target whose read failed is left out


class Recorder:
    """Records passes and their drift in the store and metrics; remembers each target's state."""

    def __init__(
        self, store: Store, metrics: Metrics, clock: Clock, log: FilteringBoundLogger
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.log = log
        self.states: dict[TargetKey, State] = {}
        self.health: dict[TargetKey, TargetHealth] = {}  # the latest health of each target
        self._unsettled: dict[str, set[str]] = {}  # per cluster, apps whose health is not final
        self._refs: dict[TargetKey, tuple[object, list[str]]] = {}  # a render's object names
        self._open_drift: dict[TargetKey, int] = {}  # open drift records after the last pass
        self.touched: set[str] = set()  # clusters whose rows changed (the publisher drains it)

    def show_unapplied(self, message: str, wall: datetime, *, held: bool = False) -> None:
        """Nothing valid to run (invalid or held head, no fallback on the branch): every target
        the store knows shows why, and nothing is applied."""
        for row in self.store.list_status():
            if row.state is State.PAUSED:
                continue
            self.set_status(
                replace(
                    row,
                    state=State.HELD if held else State.INVALID_CONFIG,
                    message=message,
                    updated_at=wall,
                    last_synced_at=None,
                )
            )

    def write(self, rows: Iterable[StatusRow]) -> None:
        """Status rows the loop decided on, one transaction each."""
        for row in rows:
            self.set_status(row)

    def record_pass(self, report: PassReport) -> PassKind:
        desired, name = report.desired, report.cluster
        wall = self.clock.now()
        read_since = wall - timedelta(seconds=report.duration)  # when the pass began reading
        kind = classify(report.outcomes)
        self.metrics.reconcile_duration.labels(name).observe(report.duration)
        self.metrics.cluster_up.labels(name).set(0 if kind is PassKind.CLUSTER_FAILED else 1)
        shown: set[str] = set()
        for outcome in report.outcomes:
            log = self.log.bind(app=outcome.app, cluster=name, revision=short(desired.revision))
            self._count_writes(outcome)
            if outcome.departed:
                if self._record_departed(outcome, wall, log):
                    shown.add(outcome.app)
                continue
            shown.add(outcome.app)
            key = (outcome.app, name)
            row = target_status(
                outcome,
                revision=desired.revisions.get(key, desired.revision),
                problem=desired.problem(key),
                now=wall,
                held=desired.hold is not None,
                warnings=next(
                    (
                        t.rendered.warnings
                        for t in desired.targets.get(name, ())
                        if t.app == outcome.app and t.rendered is not None
                    ),
                    [],
                ),
            )
            self.set_status(row)
            self._record_applied(desired, outcome, row.revision, wall)
            if outcome.health is not None:
                self.record_health(outcome.app, name, outcome.health, row.revision, wall)
            drifted = (
                self._record_drift(outcome, row.revision, wall, read_since, log)
                if outcome.plan is not None
                else None
            )
            if row.state is State.SYNCED and outcome.result is not None:
                self.metrics.last_sync.labels(outcome.app, name).set(wall.timestamp())
            self._log_outcome(log, outcome, row, drifted)
        self._tidy_rows(name, shown, kind, wall, report)
        self.log.debug(
            "pass finished",
            cluster=name,
            revision=short(desired.revision),
            duration_ms=round(report.duration * 1000, 1),
            result=kind.value,
        )
        return kind

    def _record_applied(
        self, desired: Desired, outcome: TargetOutcome, revision: str | None, wall: datetime
    ) -> None:
        """A target applied in full: its revision and objects (what the prune guard counts)."""
        result = outcome.result
        if revision is None or outcome.error is not None or result is None or result.failed:
            return
        key = (outcome.app, outcome.cluster)
        runs = desired.runs(key)
        if runs is None or runs[0].rendered is None:
            return
        rendered = runs[0].rendered
        known = self._refs.get(key)
        if known is None or known[0] is not rendered:  # named once per render, not per pass
            known = (rendered, [str(ObjectRef.of(o)) for o in rendered.objects])
            self._refs[key] = known
        self.store.record_applied(outcome.app, outcome.cluster, revision, known[1], wall)

    def _tidy_rows(
        self, cluster: str, shown: set[str], kind: PassKind, wall: datetime, report: PassReport
    ) -> None:
        """Rows of apps this pass did not report on: gone, or (cluster down) not prunable yet."""
        desired = report.desired
        for row in self.store.list_status(cluster=cluster):
            if row.app in shown or (row.app, cluster) in desired.paused:
                continue
            if kind is PassKind.CLUSTER_FAILED:
                error = next((o.error for o in report.outcomes if o.unreachable), None)
                self.set_status(
                    replace(
                        row,
                        state=State.UNREACHABLE,
                        message=f"no longer placed here; pruned once reachable: {error}",
                        updated_at=wall,
                        last_synced_at=None,
                    )
                )
            else:
                self.forget(row.app, cluster)

    def _record_departed(
        self, outcome: TargetOutcome, wall: datetime, log: FilteringBoundLogger
    ) -> bool:
        """An app that left this cluster; True when its row stays (something is left there)."""
        name = outcome.cluster
        if outcome.error is not None:
            state = State.UNREACHABLE if outcome.unreachable else State.FAILED
            message = f"no longer placed here; pruning failed: {outcome.error}"
        elif outcome.result is not None and outcome.result.failed:
            state = State.FAILED
            failed = [f"{ref}: {why}" for ref, why in outcome.result.failed]
            message = f"no longer placed here; {first(failed, 'object')}"
        elif outcome.result is not None and outcome.result.skipped:
            state = State.OUT_OF_SYNC
            kept = [f"{ref}: {why}" for ref, why in outcome.result.skipped]
            message = f"no longer placed here; {first(kept, 'object')} kept"
        else:
            if outcome.result is not None and outcome.result.pruned:
                log.info("app pruned from cluster", objects=len(outcome.result.pruned))
            self.store.close_resolved(outcome.app, name, [], wall)
            self.forget(outcome.app, name)
            return False
        self.set_status(StatusRow(outcome.app, name, state, message, None, wall))
        log.warning("departed app not fully pruned", state=str(state), message=message)
        return True

    def _record_drift(
        self,
        outcome: TargetOutcome,
        revision: str | None,
        wall: datetime,
        read_since: datetime,
        log: FilteringBoundLogger,
    ) -> int:
        """Drift findings of a plan into the store; returns how many stay open. A finding on an
        object healed by hand (``apply --heal``) since the pass began reading is older than
        the heal: it opens nothing (the next pass reads the healed object)."""
        assert outcome.plan is not None
        corrected = {str(ref) for ref in outcome.result.corrected} if outcome.result else set()
        still_open: list[DriftKey] = []
        found = findings(outcome.plan)
        healed = (
            self.store.healed_since(outcome.app, outcome.cluster, read_since) if found else set()
        )
        for finding in found:
            if finding.object in healed:
                continue
            row = self.store.record_drift(
                outcome.app,
                outcome.cluster,
                finding.object,
                finding.kind,
                finding.fields,
                revision,
                wall,
            )
            details = {
                "object": finding.object,
                "drift": finding.kind.value,
                "fields": list(finding.paths) or None,
                "managers": list(finding.managers) or None,
                "drift_id": row.id,
            }
            if finding.object in corrected:
                self.store.mark_corrected(row.id, wall)
                log.info("drift corrected", **details)
            else:
                still_open.append(row.key)
                if row.detected_at == wall:
                    log.warning("drift detected", **details)
        key = (outcome.app, outcome.cluster)
        # Only this recorder opens drift records: none open after the last pass and none now
        # means nothing to close (after a restart the store is asked once).
        if still_open or self._open_drift.get(key) != 0:
            for closed in self.store.close_resolved(*key, still_open, wall):
                log.info("drift gone", object=closed.object, drift_id=closed.id)
        self._open_drift[key] = len(still_open)
        self.metrics.drifted_objects.labels(outcome.app, outcome.cluster).set(len(still_open))
        return len(still_open)

    def _count_writes(self, outcome: TargetOutcome) -> None:
        result = outcome.result
        if result is None:
            return
        counter = self.metrics.objects_applied
        for action, count in _writes(result).items():
            if count:
                counter.labels(outcome.cluster, action).inc(count)

    def _log_outcome(
        self, log: FilteringBoundLogger, outcome: TargetOutcome, row: StatusRow, drifted: int | None
    ) -> None:
        result = outcome.result
        counts = _writes(result) if result is not None else {}
        wrote = any(counts.values())
        previous = self.states.get((outcome.app, outcome.cluster))
        self.states[(outcome.app, outcome.cluster)] = row.state
        fields = {k: v for k, v in counts.items() if v}
        if row.state in ERROR_STATES:
            if row.state is not previous:
                log.error("reconcile failed", state=str(row.state), message=row.message)
        elif wrote or row.state is not previous:
            if drifted:
                fields["drifted"] = drifted
            log.info("reconciled", state=str(row.state), **fields)

    def record_health(
        self, app: str, cluster: str, health: TargetHealth, revision: str | None, wall: datetime
    ) -> None:
        """A target's health (after a pass or a re-check): stored, exported, and logged when
        its state changes."""
        self.health[(app, cluster)] = health
        if health.health.final:
            self._unsettled.get(cluster, set()).discard(app)
        else:
            self._unsettled.setdefault(cluster, set()).add(app)
        self.touched.add(cluster)
        self.metrics.set_health(app, cluster, health.health)
        change = self.store.set_health(app, cluster, health, revision, wall)
        if change is None:
            return
        log = self.log.bind(app=app, cluster=cluster, revision=short(revision))
        fields = {"health": str(health.health), "reason": health.reason}
        if change.previous is not None:
            fields["was"] = str(change.previous)
        if health.health is Health.DEGRADED:
            log.warning("health changed", **fields)
        else:
            log.info("health changed", **fields)

    def record_check(self, report: HealthReport) -> None:
        wall = self.clock.now()
        self.metrics.health_checks.labels(report.cluster).inc()
        for app, health in report.health.items():
            key = (app, report.cluster)
            if key not in self.states:
                continue  # forgotten meanwhile
            revision = report.desired.revisions.get(key, report.desired.revision)
            self.record_health(app, report.cluster, health, revision, wall)

    def unsettled(self, cluster: str) -> list[str]:
        """Apps on ``cluster`` whose health is not final (Progressing, Missing, Unknown)."""
        return sorted(self._unsettled.get(cluster, ()))

    def set_status(self, row: StatusRow) -> None:
        self.store.set_status(row)
        self.states[(row.app, row.cluster)] = row.state
        self.touched.add(row.cluster)

    def forget(self, app: str, cluster: str) -> None:
        """The app no longer targets the cluster (or the cluster left): its open drift records
        are closed, since nobody will check them again."""
        self.store.close_resolved(app, cluster, [], self.clock.now())
        self.store.delete_status(app, cluster)
        self.store.delete_target(app, cluster)
        self.touched.add(cluster)
        self.states.pop((app, cluster), None)
        self.health.pop((app, cluster), None)
        self._refs.pop((app, cluster), None)
        self._open_drift.pop((app, cluster), None)
        self._unsettled.get(cluster, set()).discard(app)
        self.metrics.forget_target(app, cluster)


def _writes(result: ApplyResult) -> dict[str, int]:
    """How many objects a pass wrote (or failed to write), by action."""
    return {a: n for a, n in result.counts().items() if a in APPLIED_ACTIONS}
