"""Pure parts of watch-fed live state: content versions, scope selectors, the daemon's inbox."""

from __future__ import annotations

from typing import Any

import structlog

from reconciler.daemon.live import LiveChanges
from reconciler.kube.content import content_version, written_by_us
from reconciler.kube.scopes import LiveEvent, matches


def _deployment(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "demo",
            "resourceVersion": "10",
            "labels": {"reconciler.io/app": "web"},
            "managedFields": [
                {"manager": "reconciler", "operation": "Apply", "time": "2026-12-02T08:00:00Z"},
                {
                    "manager": "kube-controller-manager",
                    "subresource": "status",
                    "time": "2026-12-02T08:00:01Z",
                },
            ],
        },
        "spec": {"replicas": 2},
        "status": {"readyReplicas": 1},
    }
    for key, value in changes.items():
        obj[key] = value
    return obj


def test_a_status_update_or_a_new_resource_version_is_not_a_change_of_content() -> None:
    before = _deployment()
    after = _deployment(status={"readyReplicas": 2})
    after["metadata"] = {**after["metadata"], "resourceVersion": "11"}
    after["metadata"]["managedFields"] = [
        {**e, "time": "2026-12-02T09:00:00Z"} for e in after["metadata"]["managedFields"]
    ]
    assert content_version(before) == content_version(after)


def test_a_spec_label_or_manager_change_is_a_change_of_content() -> None:
    base = content_version(_deployment())
    assert content_version(_deployment(spec={"replicas": 3})) != base
    relabelled = _deployment()
    relabelled["metadata"] = {**relabelled["metadata"], "labels": {}}
    assert content_version(relabelled) != base
    taken = _deployment()
    taken["metadata"] = {
        **taken["metadata"],
        "managedFields": [{"manager": "kubectl-edit", "operation": "Update"}],
    }
    assert content_version(taken) != base


def test_scope_selectors_match_exists_and_equals_terms() -> None:
    labels = {"reconciler.io/app": "web", "reconciler.io/instance": "default"}
    assert matches("reconciler.io/app", labels)
    assert matches("reconciler.io/app,reconciler.io/instance=default", labels)
    assert not matches("reconciler.io/inventory", labels)
    assert not matches("reconciler.io/app=other", labels)
    assert matches("reconciler.io/app,!reconciler.io/cluster", labels)
    assert not matches("!reconciler.io/instance", labels)
    assert matches("", {})


def test_changed_clusters_are_handed_over_at_most_once_per_gap() -> None:
    woken: list[int] = []
    live = LiveChanges(lambda: woken.append(1), structlog.get_logger(), min_gap=1.0)
    live.hear(LiveEvent("east", "changed", "ConfigMap in demo", obj="ConfigMap/demo/a"))
    live.hear(LiveEvent("east", "changed", "ConfigMap in demo", obj="ConfigMap/demo/b"))
    live.hear(LiveEvent("west", "broken", "ConfigMap in demo", reason="reset"))
    assert woken == [1, 1]
    assert live.take(100.0) == {"east": "ConfigMap/demo/a"}
    assert live.take(100.1) == {}
    live.hear(LiveEvent("east", "changed", "ConfigMap in demo", obj="ConfigMap/demo/c"))
    assert live.take(100.5) == {}  # too soon after the last: held
    assert live.waiting(100.5) == 101.0
    assert live.take(101.0) == {"east": "ConfigMap/demo/c"}
    assert live.waiting(101.0) is None


def _written(*entries: tuple[str, str]) -> dict[str, Any]:
    fields = [{"manager": manager, "operation": "Apply", "time": at} for manager, at in entries]
    return _deployment(metadata={"name": "web", "namespace": "demo", "managedFields": fields})


def test_only_a_newer_write_of_ours_is_our_own_write() -> None:
    earlier = _written(("reconciler", "2026-12-02T08:00:00Z"))
    ours = _written(("reconciler", "2026-12-02T08:00:05Z"))
    assert written_by_us(ours, earlier)
    assert written_by_us(ours, None)  # created by a pass
    assert written_by_us(_written(("reconciler-repair", "2026-12-02T08:00:05Z")), earlier)
    # another manager's edit, newest
    edited = _written(
        ("reconciler", "2026-12-02T08:00:00Z"), ("kubectl-edit", "2026-12-02T08:00:09Z")
    )
    assert not written_by_us(edited, earlier)
    # the same second as ours: counted as theirs (the loop passes again, never misses it)
    tie = _written(("reconciler", "2026-12-02T08:00:05Z"), ("kubectl", "2026-12-02T08:00:05Z"))
    assert not written_by_us(tie, earlier)
    # a change that recorded no newer write: a field removed by a manager keeping none
    assert not written_by_us(earlier, earlier)
    assert not written_by_us(_deployment(metadata={"name": "web"}), None)
    # a controller's status write is not a write of the object's content
    assert written_by_us(_deployment(), None)


def test_a_kind_watched_namespace_by_namespace_is_information_and_unwatchable_a_warning() -> None:
    logged: list[tuple[str, str]] = []

    def capture(_: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        logged.append((method, str(event["event"])))
        raise structlog.DropEvent

    log = structlog.wrap_logger(None, processors=[capture])
    live = LiveChanges(lambda: None, log)
    live.hear(LiveEvent("east", "narrowed", "ConfigMap", reason="HTTP 403"))
    live.hear(LiveEvent("east", "unwatchable", "Namespace", reason="HTTP 403"))
    live.hear(LiveEvent("east", "unwatchable", "Secret", reason="HTTP 403"))  # once a cluster
    assert logged == [
        ("info", "cannot watch across namespaces; watching each namespace"),
        ("warning", "cannot watch; polling instead (drift is seen at the drift interval)"),
    ]


def test_a_kind_no_longer_served_does_not_use_up_the_clusters_rbac_warning() -> None:
    logged: list[tuple[str, str]] = []

    def capture(_: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        logged.append((method, str(event["event"])))
        raise structlog.DropEvent

    live = LiveChanges(lambda: None, structlog.wrap_logger(None, processors=[capture]))
    live.hear(LiveEvent("east", "missing", "Widget", reason="HTTP 404"))
    live.hear(LiveEvent("east", "unwatchable", "Secret", reason="HTTP 403"))
    assert ("warning", "cannot watch; polling instead (drift is seen at the drift interval)") in (
        logged
    )
