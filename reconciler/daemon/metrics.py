"""The daemon's Prometheus metrics (served at /metrics by ``reconciler.web``).

Metrics live in a registry of their own (never the process-global one), so several daemons in
one process, as in tests, do not collide; the registry also holds prometheus_client's standard
collectors (``process_*``, ``python_info``, ``python_gc_*``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from reconciler.health import Health
from reconciler.rollout.model import RolloutPhase, RolloutState

# Reconcile passes take from milliseconds (nothing to do) to minutes (many objects, slow API).
APPLIED_ACTIONS = ("created", "configured", "pruned", "failed")  # objects_applied's actions
_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    """Every metric the daemon exports, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.reconcile_duration = Histogram(
            "reconciler_reconcile_duration_seconds",
            "Duration of one reconcile pass over one cluster (plan, apply, drift check).",
            ["cluster"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.objects_applied = self._counter(
            "reconciler_objects_applied",
            "Objects written to clusters, by action (created, configured, pruned, failed).",
            ("cluster", "action"),
        )
        self.drifted_objects = self._gauge(
            "reconciler_drifted_objects",
            "Objects whose live state differs from Git and was not corrected, per app and cluster.",
            ("app", "cluster"),
        )
        self.last_sync = self._gauge(
            "reconciler_last_successful_sync_timestamp_seconds",
            "Unix time of the last pass that left the app in sync on the cluster.",
            ("app", "cluster"),
        )
        self.git_errors = self._counter(
            "reconciler_git_errors",
            "Failed fetches or reads of the config repo.",
        )
        self.config_errors = self._counter(
            "reconciler_invalid_revisions",
            "Revisions whose config failed to load or validate.",
        )
        self.cluster_up = self._gauge(
            "reconciler_cluster_reachable",
            "1 when the last pass reached the cluster's API server, 0 when it did not.",
            ("cluster",),
        )

        self.rollout_in_progress = self._gauge(
            "reconciler_rollout_in_progress",
            "1 while the app's newest rollout runs (or rolls back), else 0.",
            ("app",),
        )
        self.rollout_stage = self._gauge(
            "reconciler_rollout_stage",
            "The stage (1-based) the app's running rollout is at; 0 when none runs.",
            ("app",),
        )
        self.rollout_waiting_approval = self._gauge(
            "reconciler_rollout_waiting_approval",
            "1 while the app's rollout waits for a manual approval.",
            ("app",),
        )
        self.rollout_failures = self._counter(
            "reconciler_rollout_cluster_failures",
            "Clusters that failed a rollout's gate (unhealthy or unreachable past the deadline).",
            ("app",),
        )
        self.target_health = self._gauge(
            "reconciler_target_health",
            "1 for the health the app has on the cluster (Healthy, Progressing, Degraded, "
            "Missing, Suspended, Unknown), 0 for the others.",
            ("app", "cluster", "health"),
        )
        self.health_checks = self._counter(
            "reconciler_health_checks",
            "Health re-checks of targets whose health was not final (reads only, no pass).",
            ("cluster",),
        )
        # Several replicas (--shard-lease-namespace): each exports what it holds.
        self.shard_replicas = self._gauge(
            "reconciler_shard_replicas",
            "Live replicas (unexpired replica Leases) as this replica sees them.",
        )
        self.shard_owned = self._gauge(
            "reconciler_shard_owned_clusters",
            "Clusters this replica owns and holds the cluster Lease of (it reconciles them).",
            ("replica",),
        )
        self.shard_cluster = self._gauge(
            "reconciler_shard_cluster_owner",
            "1 for each cluster this replica owns and holds the Lease of, labelled with it.",
            ("cluster", "replica"),
        )

        self.rollout_driver = self._gauge(
            "reconciler_shard_rollout_driver",
            "1 for each app whose rollout this replica drives (several replicas).",
            ("app", "replica"),
        )
        self.status_writes = self._counter(
            "reconciler_shard_status_writes",
            "Member clusters' status objects written to the management cluster (sharding on): "
            "a write happens only when a cluster's status changed.",
        )

    def _gauge(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, documentation, labels, registry=self.registry)

    def _counter(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def forget_shard_cluster(self, cluster: str, replica: str) -> None:
        """Drop the series of a cluster this replica no longer holds."""
        with contextlib.suppress(KeyError):
            self.shard_cluster.remove(cluster, replica)

    def show_rollout(self, state: RolloutState) -> None:
        """The gauges of an app's newest rollout."""
        running = state.running
        self.rollout_in_progress.labels(state.app).set(1 if running else 0)
        self.rollout_stage.labels(state.app).set(state.stage + 1 if running else 0)
        waiting = state.phase == RolloutPhase.WAITING_APPROVAL
        self.rollout_waiting_approval.labels(state.app).set(1 if waiting else 0)

    def set_health(self, app: str, cluster: str, health: Health) -> None:
        for state in Health:
            self.target_health.labels(app, cluster, state.value).set(1 if state is health else 0)

    def forget_target(self, app: str, cluster: str) -> None:
        """Drop the series of an app that no longer targets a cluster."""
        for gauge in (self.drifted_objects, self.last_sync):
            with contextlib.suppress(KeyError):
                gauge.remove(app, cluster)
        for state in Health:
            with contextlib.suppress(KeyError):
                self.target_health.remove(app, cluster, state.value)

    def forget_worked(self, cluster: str, apps: Iterable[str]) -> None:
        """Drop the gauges of a cluster this replica no longer works (several replicas): its
        new owner exports them, and ours would stay frozen at what we last saw. Counters and
        durations stay (they only stop growing)."""
        with contextlib.suppress(KeyError):
            self.cluster_up.remove(cluster)
        for app in apps:
            self.forget_target(app, cluster)

    def forget_cluster(self, cluster: str) -> None:
        """Drop the per-cluster series of a cluster that left the repo."""
        with contextlib.suppress(KeyError):
            self.cluster_up.remove(cluster)
        with contextlib.suppress(KeyError):
            self.reconcile_duration.remove(cluster)
        for action in APPLIED_ACTIONS:
            with contextlib.suppress(KeyError):
                self.objects_applied.remove(cluster, action)
        with contextlib.suppress(KeyError):
            self.health_checks.remove(cluster)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
