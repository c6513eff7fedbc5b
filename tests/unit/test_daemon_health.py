"""Health in the daemon: recorded after each pass, re-checked soon while not final (reads only),
kept with its transitions, exported as a metric."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.config.model import Repo
from reconciler.daemon.loop import Daemon
from reconciler.engine import TargetOutcome
from reconciler.health import Health, ObjectHealth, TargetHealth
from reconciler.kube.pool import Clients
from reconciler.objects import ObjectRef
from reconciler.render import TargetResult
from reconciler.store.db import Store
from tests.unit.daemon_rig import SETTINGS, FakeClusters, Rig, make_rig, repo_files

DEPLOY = ObjectRef("apps", "Deployment", "web", "web")


def judged(health: Health, ready: int) -> TargetHealth:
    obj = ObjectHealth(health, f"{ready}/3 available", ready, 3, ref=DEPLOY)
    return TargetHealth(health, obj.describe(), ready, 3, (obj,))


@dataclass
class Workloads(FakeClusters):
    """Passes report the health the test sets; re-checks read the next one in ``rollout``."""

    health: TargetHealth = field(default_factory=lambda: judged(Health.PROGRESSING, 0))
    rollout: list[TargetHealth] = field(default_factory=list)
    checks: list[tuple[str, list[str]]] = field(default_factory=list)

    def __call__(self, *args: object, **kwargs: object) -> list[TargetOutcome]:
        outcomes = super().__call__(*args, **kwargs)  # type: ignore[arg-type]
        for outcome in outcomes:
            if outcome.error is None:
                outcome.health = self.health
        return outcomes

    def check(
        self, repo: Repo, targets: Iterable[TargetResult], clients: Clients, cluster: str
    ) -> dict[str, TargetHealth]:
        apps = sorted(t.app for t in targets)
        self.checks.append((cluster, apps))
        if self.rollout:
            self.health = self.rollout.pop(0)
        return dict.fromkeys(apps, self.health)


def rig_with(tmp_path: Path, store: Store, workloads: Workloads) -> Rig:
    rig = make_rig(tmp_path, store)
    daemon = Daemon(
        rig.source,
        store,
        Clients(None),
        settings=SETTINGS,
        clock=rig.clock,
        dispatcher=rig.daemon._dispatcher,
        reconcile_fn=workloads,
        check_fn=workloads.check,
        rand=lambda: 0.5,
    )
    return Rig(daemon, rig.clock, rig.source, workloads, store)


def test_a_progressing_target_is_rechecked_until_healthy_then_left_alone(
    tmp_path: Path, store: Store
) -> None:
    workloads = Workloads()
    workloads.rollout = [judged(Health.PROGRESSING, 2), judged(Health.HEALTHY, 3)]
    rig = rig_with(tmp_path, store, workloads)
    rig.source.commit_files(repo_files(placement="clusters: [beijing-1]"))
    rig.tick()
    assert [r.health.health for r in store.list_health()] == [Health.PROGRESSING]
    assert workloads.checks == []

    rig.clock.advance(SETTINGS.health_interval)
    rig.tick()
    rig.clock.advance(SETTINGS.health_interval)
    rig.tick()
    assert workloads.checks == [("beijing-1", ["web"]), ("beijing-1", ["web"])]
    [row] = store.list_health()
    assert (row.health.health, row.health.ready_text) == (Health.HEALTHY, "3/3")
    assert len(workloads.passes("beijing-1")) == 1  # re-checks are not passes

    rig.clock.advance(SETTINGS.drift_interval - 2 * SETTINGS.health_interval - 1)
    rig.tick()
    assert len(workloads.checks) == 2  # healthy is final: no more re-checks
    history = store.health_history(app="web")
    assert [(h.previous, h.health) for h in history] == [
        (Health.PROGRESSING, Health.HEALTHY),
        (None, Health.PROGRESSING),
    ]
    metrics = rig.daemon.metrics.exposition().decode()
    assert 'reconciler_target_health{app="web",cluster="beijing-1",health="Healthy"} 1.0' in metrics
    assert (
        'reconciler_target_health{app="web",cluster="beijing-1",health="Progressing"} 0.0'
        in metrics
    )


def test_a_degraded_target_is_final_and_waits_for_the_next_pass(
    tmp_path: Path, store: Store
) -> None:
    workloads = Workloads(health=judged(Health.DEGRADED, 1))
    rig = rig_with(tmp_path, store, workloads)
    rig.source.commit_files(repo_files(placement="clusters: [beijing-1]"))
    rig.tick()
    rig.clock.advance(SETTINGS.health_interval * 3)
    rig.tick()
    assert workloads.checks == []
    assert [r.health.health for r in store.list_health()] == [Health.DEGRADED]


def test_a_target_that_leaves_forgets_its_health_and_its_series(
    tmp_path: Path, store: Store
) -> None:
    workloads = Workloads(health=judged(Health.HEALTHY, 3))
    rig = rig_with(tmp_path, store, workloads)
    rig.source.commit_files(repo_files(placement="clusters: [beijing-1, beijing-2]"))
    rig.tick()
    rig.source.commit_files(repo_files(placement="clusters: [beijing-2]"))
    rig.daemon.poke()
    rig.tick(2)
    assert [r.cluster for r in store.list_health()] == ["beijing-2"]
    assert (
        'cluster="beijing-1"'
        not in rig.daemon.metrics.exposition().decode().split("reconciler_target_health")[-1]
    )
