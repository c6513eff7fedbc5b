"""The daemon's metrics registry (served by reconciler.web: see test_web_server, test_web_app)."""

from __future__ import annotations

from reconciler.daemon.metrics import Metrics


def test_metrics_are_exposed_in_the_prometheus_text_format() -> None:
    metrics = Metrics()
    metrics.reconcile_duration.labels("us-west-1").observe(0.3)
    metrics.objects_applied.labels("us-west-1", "created").inc(3)
    metrics.drifted_objects.labels("web", "us-west-1").set(2)
    metrics.last_sync.labels("web", "us-west-1").set(1795312345.0)
    metrics.git_errors.inc()

    lines = metrics.exposition().decode().splitlines()

    for line in (
        'reconciler_reconcile_duration_seconds_count{cluster="us-west-1"} 1.0',
        'reconciler_objects_applied_total{action="created",cluster="us-west-1"} 3.0',
        'reconciler_drifted_objects{app="web",cluster="us-west-1"} 2.0',
        'reconciler_last_successful_sync_timestamp_seconds{app="web",cluster="us-west-1"} '
        "1.795312345e+09",
        "reconciler_git_errors_total 1.0",
    ):
        assert line in lines


def test_the_standard_process_platform_and_gc_collectors_are_registered() -> None:
    names = {
        line.split("{")[0].split(" ")[0] for line in Metrics().exposition().decode().splitlines()
    }

    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "python_info"} <= names
    assert "python_gc_collections_total" in names


def test_two_daemons_in_one_process_have_registries_of_their_own() -> None:
    first, second = Metrics(), Metrics()
    first.git_errors.inc()

    assert b"reconciler_git_errors_total 0.0" in second.exposition()


def test_forgetting_a_target_drops_its_series() -> None:
    metrics = Metrics()
    metrics.drifted_objects.labels("web", "b").set(1)
    metrics.forget_target("web", "b")
    metrics.forget_target("never", "seen")

    assert b'app="web"' not in metrics.exposition()
