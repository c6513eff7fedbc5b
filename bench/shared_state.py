"""How big the objects replicas share on the management cluster are, and how many writes an
idle fleet sends.

    .venv/bin/python bench/shared_state.py

Builds, with the same code the daemon uses (``published.status``, ``published.rollout``), the
status ConfigMap of one member cluster running 10, 50 and 200 apps (every tenth with open drift on
three fields, one of them a Secret, every app with health and a rollout observation), and the
shared rollout of an app over 10, 100 and 1,000 clusters in three stages with an approval and a
waiting command. Prints the ``data`` sizes (what the API server stores, under its 1 MiB object
limit), then replays 100 idle passes of a 50-app cluster (rows rewritten with new times each
pass, as the daemon does) and counts the passes whose content hash changed: the writes an idle
fleet sends. Not a timed test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.fields import Drift, FieldChange
from reconciler.health import Health, TargetHealth
from reconciler.published.rollout import SharedRollout
from reconciler.published.rollout import encode as encode_rollout
from reconciler.published.status import build, content_hash, encode
from reconciler.rollout.model import (
    Approval,
    ClusterPhase,
    ClusterState,
    Observation,
    PlannedStage,
    RolloutPlan,
    RolloutState,
)
from reconciler.store.rows import DriftRow, HealthRow, State, StatusRow

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
SHA = "0123456789abcdef0123456789abcdef01234567"


def cluster_rows(
    apps: int, at: datetime
) -> tuple[list[StatusRow], list[HealthRow], list[DriftRow]]:
    status, health, drift = [], [], []
    for n in range(apps):
        app = f"app-{n:03d}"
        drifted = n % 10 == 0
        state = State.DRIFTED if drifted else State.SYNCED
        message = (
            f"1 drifted object: Deployment/{app}/{app} modified by kubectl-edit" if drifted else ""
        )
        status.append(StatusRow(app, "edge-0001", state, message, SHA, at, at))
        health.append(
            HealthRow(app, "edge-0001", TargetHealth(Health.HEALTHY, "", 3, 3), SHA, at, T0)
        )
        if drifted:
            fields = [
                FieldChange("spec.replicas", 3, 5, "kubectl-edit", T0),
                FieldChange(
                    "spec.template.spec.containers[name=web].image",
                    "web:1.2",
                    "web:1.3",
                    "kubectl-edit",
                    T0,
                ),
            ]
            drift.append(
                DriftRow(
                    n,
                    app,
                    "edge-0001",
                    f"Deployment/{app}/{app}",
                    Drift.MODIFIED,
                    fields,
                    SHA,
                    T0,
                    None,
                )
            )
            secret = [FieldChange("data.password", "czNjcjN0", "b3RoZXI=", "kubectl-edit", T0)]
            drift.append(
                DriftRow(
                    n + 1000,
                    app,
                    "edge-0001",
                    f"Secret/{app}/db",
                    Drift.MODIFIED,
                    secret,
                    SHA,
                    T0,
                    None,
                )
            )
    return status, health, drift


def observed(apps: int, health_at: float) -> dict[str, Observation]:
    return {
        f"app-{n:03d}": Observation(SHA, 100.0, "Healthy", 101.0, health_at, "", True)
        for n in range(apps)
    }


def rollout(clusters: int) -> SharedRollout:
    names = [f"edge-{n:04d}" for n in range(clusters)]
    thirds = [
        names[: clusters // 10 or 1],
        names[clusters // 10 or 1 : clusters // 2],
        names[clusters // 2 :],
    ]
    stages = tuple(
        PlannedStage(name, tuple(part), max(1, len(part) // 4), interval=20.0, approval=i == 2)
        for i, (name, part) in enumerate(zip(("canary", "early", "late"), thirds, strict=True))
    )
    states = tuple(
        ClusterState(
            c,
            i,
            k // max(1, len(part) // 4),
            "f" * 40,
            ClusterPhase.SUCCEEDED if i < 2 else ClusterPhase.PENDING,
            100.0,
            101.0,
            102.0,
        )
        for i, part in enumerate(thirds)
        for k, c in enumerate(part)
    )
    state = RolloutState(
        "web",
        SHA,
        RolloutPlan(stages),
        states,
        100.0,
        200.0,
        stage=2,
        approvals=(Approval("early", "alice", 150.0),),
    )
    shared, _ = SharedRollout("web", state, driver="reconciler-1", head=SHA).with_command(
        "approve", "late", "bob", T0
    )
    return shared


def size(data: dict[str, str]) -> int:
    return sum(len(k) + len(v.encode()) for k, v in data.items())


def main() -> None:
    print("published status of one member cluster (ConfigMap data):")
    for apps in (10, 50, 200):
        status, health, drift = cluster_rows(apps, T0)
        data = encode(
            build("edge-0001", "reconciler-1", status, health, drift, observed(apps, 102.0))
        )
        print(f"  {apps:4d} apps ({apps // 10} with open drift): {size(data) / 1024:7.1f} KiB")
    print("shared rollout of one app (ConfigMap data):")
    for clusters in (10, 100, 1000):
        print(
            f"  {clusters:5d} clusters: {size(encode_rollout(rollout(clusters))) / 1024:7.1f} KiB"
        )
    writes, last = 0, None
    for n in range(100):
        at = T0 + timedelta(seconds=60 * n)  # every drift interval: rows rewritten, new times
        status, health, drift = cluster_rows(50, at)
        digest = content_hash(
            build("edge-0001", "reconciler-1", status, health, drift, observed(50, 102.0 + n))
        )
        writes += digest != last
        last = digest
    print(f"100 idle passes of a 50-app cluster: {writes} write(s) (the first publication)")


if __name__ == "__main__":
    main()
