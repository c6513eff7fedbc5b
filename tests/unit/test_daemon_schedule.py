"""Backoff and per-cluster schedules (pure)."""

from __future__ import annotations

from reconciler.daemon.schedule import Backoff, ClusterSchedule, PassKind, classify
from reconciler.engine import TargetOutcome
from reconciler.errors import ClusterUnreachable, KubeError, RenderError
from tests.unit.daemon_rig import SETTINGS


def test_backoff_doubles_per_failure_up_to_its_maximum() -> None:
    backoff = Backoff(initial=2.0, factor=2.0, maximum=30.0)

    assert [backoff.delay(n) for n in range(7)] == [0.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_an_unreachable_cluster_blocks_its_schedule_until_the_backoff_expires() -> None:
    schedule = ClusterSchedule("us-west-1")
    schedule.start(100.0)
    schedule.finish(101.0, 1, PassKind.CLUSTER_FAILED, SETTINGS)

    assert not schedule.due(105.9, generation=2)  # even a new revision waits
    assert schedule.due(106.0, generation=2)
    assert schedule.wake_at(2, SETTINGS.cluster_timeout) == 106.0


def test_an_app_failure_retries_soon_without_blocking_new_revisions() -> None:
    schedule = ClusterSchedule("beijing-1")
    schedule.start(100.0)
    schedule.finish(100.0, 1, PassKind.APPS_FAILED, SETTINGS)

    assert schedule.due(100.0, generation=2)
    assert not schedule.due(104.9, generation=1)
    assert schedule.due(105.0, generation=1)


def test_a_success_resets_the_failures_and_waits_one_drift_interval() -> None:
    schedule = ClusterSchedule("beijing-1", failures=3, blocked_until=50.0)
    schedule.start(100.0)
    schedule.finish(102.0, 1, PassKind.OK, SETTINGS)

    assert schedule.failures == 0
    assert not schedule.due(161.9, generation=1)
    assert schedule.due(162.0, generation=1)


def test_a_running_pass_is_never_started_twice() -> None:
    schedule = ClusterSchedule("beijing-1")
    schedule.start(100.0)

    assert not schedule.due(10_000.0, generation=5)


def test_render_errors_do_not_count_as_failures_to_retry() -> None:
    error = RenderError("apps/web/manifests/cm.yaml:4: unknown variable", app="web", cluster="b")
    assert classify([TargetOutcome("web", "b", error=error)]) is PassKind.OK
    kube = KubeError("HTTP 422: invalid", cluster="b")
    assert classify([TargetOutcome("web", "b", error=kube)]) is PassKind.APPS_FAILED
    down = ClusterUnreachable("refused", cluster="b")
    assert classify([TargetOutcome("web", "b", error=down, unreachable=True)]) is (
        PassKind.CLUSTER_FAILED
    )
