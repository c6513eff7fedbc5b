"""The page's model: the app × cluster matrix, grouping of large fleets, filters, details."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reconciler.store.rows import TargetRevision
from reconciler.web.detail import target_detail
from reconciler.web.model import (
    ClusterInfo,
    Filters,
    Fleet,
    drift_targets,
    health_of,
    joined_targets,
    open_drift,
    page_model,
    phase_of,
    ready_of,
    rollouts_by_app,
)


def target(app: str, cluster: str, state: str = "Synced", **extra: Any) -> dict[str, Any]:
    return {
        "app": app,
        "cluster": cluster,
        "state": state,
        "message": extra.pop("message", ""),
        "revision": "1bf2028cdf11aa",
        "updated_at": "2026-11-22T12:00:00Z",
        "last_synced_at": None,
        **extra,
    }


FLEET = Fleet(
    (
        ClusterInfo("beijing-1", {"region": "cn-beijing"}),
        ClusterInfo("beijing-2", {"region": "cn-beijing"}),
        ClusterInfo("us-west-1", {"region": "us-west", "provider": "AWS"}),
    )
)
TARGETS = [
    target("web", "beijing-1"),
    target("web", "beijing-2", "Failed", message="boom"),
    target("web", "us-west-1", "Drifted"),
    target("db", "us-west-1"),
]


def test_small_fleets_get_one_column_per_cluster_and_one_cell_per_target() -> None:
    m = page_model(TARGETS, FLEET, Filters())

    assert m["mode"] == "clusters"
    assert [c["id"] for c in m["columns"]] == ["beijing-1", "beijing-2", "us-west-1"]
    assert m["apps"] == ["db", "web"]
    assert m["cells"]["web"]["beijing-2"]["state"] == "Failed"
    assert m["cells"]["web"]["beijing-2"]["message"] == "boom"
    assert m["cells"]["web"]["beijing-2"]["revision"] == "1bf2028"
    assert "beijing-1" not in m["cells"]["db"]  # db is not placed there
    assert m["summary"]["states"] == {"Failed": 1, "Drifted": 1, "Synced": 2}  # worst first
    assert m["label_keys"] == {"provider": ["AWS"], "region": ["cn-beijing", "us-west"]}


def test_filters_by_app_cluster_and_label_narrow_rows_and_columns() -> None:
    by_app = page_model(TARGETS, FLEET, Filters(app="we"))
    assert by_app["apps"] == ["web"]

    by_cluster = page_model(TARGETS, FLEET, Filters(cluster="beijing"))
    assert [c["id"] for c in by_cluster["columns"]] == ["beijing-1", "beijing-2"]
    assert by_cluster["apps"] == ["web"]  # db runs on us-west-1 only

    by_label = page_model(TARGETS, FLEET, Filters(label="provider=AWS"))
    assert [c["id"] for c in by_label["columns"]] == ["us-west-1"]

    has_label = page_model(TARGETS, FLEET, Filters(label="provider"))
    assert [c["id"] for c in has_label["columns"]] == ["us-west-1"]

    lacks_label = page_model(TARGETS, FLEET, Filters(label="provider=(none)"))
    assert [c["id"] for c in lacks_label["columns"]] == ["beijing-1", "beijing-2"]


def test_filters_read_from_a_query() -> None:
    query = {"app": " web ", "cluster": "b", "label": "region=us-west", "group_by": "region"}
    assert Filters.of(query) == Filters("web", "b", "region=us-west", "region")


def big_fleet(n: int) -> tuple[list[dict[str, Any]], Fleet]:
    regions = ("eu", "us", "ap")
    clusters = tuple(
        ClusterInfo(f"c{i:04}", {"region": regions[i % 3], "id": str(i)}) for i in range(n)
    )
    targets = [target(app, c.name) for app in ("web", "db") for c in clusters]
    targets[5] = target("web", clusters[5].name, "Failed")
    return targets, Fleet(clusters)


def test_many_clusters_are_grouped_by_a_label_with_counts_per_state() -> None:
    targets, fleet = big_fleet(1000)

    m = page_model(targets, fleet, Filters())

    assert m["mode"] == "groups"
    assert m["group_by"] == "region"  # held by all, fewer values than "id"
    assert [c["name"] for c in m["columns"]] == ["ap", "eu", "us"]
    assert sum(c["clusters"] for c in m["columns"]) == 1000
    cell = m["cells"]["web"]["region=ap"]  # c0005 is in ap (5 % 3 == 2)
    assert cell["counts"] == {"Failed": 1, "Synced": 332}
    assert cell["worst"] == "Failed"
    assert cell["total"] == 333
    cells = sum(len(row) for row in m["cells"].values())
    assert cells == 6  # 2 apps × 3 regions, not 2,000 cells


def test_a_group_column_filter_brings_back_cluster_cells_when_few_enough() -> None:
    targets, fleet = big_fleet(90)

    m = page_model(targets, fleet, Filters(label="region=eu"))

    assert m["mode"] == "clusters"
    assert m["shown_clusters"] == 30
    assert all(c["labels"]["region"] == "eu" for c in m["columns"])


def test_grouping_by_a_chosen_label_and_capping_the_number_of_group_columns() -> None:
    targets, fleet = big_fleet(100)

    m = page_model(targets, fleet, Filters(group_by="id"), max_group_columns=10)

    assert m["mode"] == "groups"
    assert len(m["columns"]) == 10
    assert m["hidden_columns"] == 90

    unknown = page_model(targets, fleet, Filters(group_by="nope"), max_cluster_columns=200)
    assert unknown["mode"] == "clusters"  # an unknown label groups nothing


def test_clusters_outside_the_inventory_still_show_and_fleetless_works() -> None:
    m = page_model([target("web", "edge-9")], None, Filters())

    assert [c["id"] for c in m["columns"]] == ["edge-9"]
    assert m["label_keys"] == {}


def test_health_and_rollout_phase_are_read_when_the_status_carries_them() -> None:
    plain = target("web", "beijing-1")
    assert health_of(plain) == (None, "")
    assert phase_of(plain) == (None, "")

    text = target("web", "beijing-1", health="Degraded", health_reason="1/3 available")
    assert health_of(text) == ("Degraded", "1/3 available")
    mapping = target(
        "web", "beijing-1", health={"status": "Healthy", "reason": "3/3"}, rollout="Soaking"
    )
    assert health_of(mapping) == ("Healthy", "3/3")
    assert phase_of(mapping) == ("Soaking", "")

    m = page_model([text, target("db", "beijing-1")], FLEET, Filters())
    assert m["has_health"] is True
    assert m["has_phase"] is False
    assert m["cells"]["web"]["beijing-1"]["health"] == "Degraded"
    assert m["summary"]["health"] == {"Degraded": 1}


def drift(app: str, cluster: str, *, corrected: bool = False) -> dict[str, Any]:
    return {
        "id": 1,
        "app": app,
        "cluster": cluster,
        "object": "Deployment.apps/demo/web",
        "kind": "modified",
        "fields": [],
        "corrected_at": "2026-11-22T12:00:00Z" if corrected else None,
    }


def test_open_drift_follows_the_filters_and_is_capped() -> None:
    records = [drift("web", "beijing-1"), drift("db", "us-west-1"), drift("web", "us-west-1")]

    everything = open_drift(records, TARGETS, FLEET, Filters())
    assert everything["total"] == 3
    assert open_drift(records, TARGETS, FLEET, Filters(app="db"))["total"] == 1
    assert open_drift(records, TARGETS, FLEET, Filters(label="region=cn-beijing"))["total"] == 1
    capped = open_drift(records, TARGETS, FLEET, Filters(), limit=2)
    assert (capped["total"], len(capped["records"])) == (3, 2)
    assert (
        open_drift([drift("web", "us-west-1", corrected=True)], TARGETS, FLEET, Filters())["total"]
        == 0
    )


def test_open_drift_totals_come_from_the_counts_of_the_targets_shown() -> None:
    newest = [drift("web", "us-west-1")]  # the records read: only the newest
    counts = {("web", "us-west-1"): 4, ("web", "beijing-1"): 3, ("db", "us-west-1"): 2}

    everything = open_drift(newest, TARGETS, FLEET, Filters(), counts=counts)
    assert (everything["total"], len(everything["records"])) == (9, 1)
    assert open_drift(newest, TARGETS, FLEET, Filters(app="db"), counts=counts)["total"] == 2
    beijing = Filters(label="region=cn-beijing")
    assert open_drift(newest, TARGETS, FLEET, beijing, counts=counts)["total"] == 3
    assert drift_targets(counts, TARGETS, FLEET, Filters(app="web")) == {
        ("web", "us-west-1"): 4,
        ("web", "beijing-1"): 3,
    }


def test_a_target_detail_lists_open_drift_only_and_counts_all_of_it() -> None:
    records = [drift("web", "us-west-1", corrected=True), drift("web", "us-west-1")]

    d = target_detail(TARGETS[2], FLEET, records, None, drift_total=30)

    assert [r["corrected_at"] for r in d["drift"]] == [None]
    assert d["drift_total"] == 30
    assert target_detail(TARGETS[2], FLEET, records, None)["drift_total"] == 1


def test_a_target_detail_has_labels_objects_and_its_own_drift_only() -> None:
    revisions = TargetRevision(
        "web",
        "us-west-1",
        desired="2222",
        applied="1111",
        applied_at=datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
        objects=("ConfigMap/demo/web", "Deployment.apps/demo/web"),
    )
    records = [drift("web", "us-west-1"), drift("web", "beijing-1")]

    d = target_detail(TARGETS[2], FLEET, records, revisions)

    assert d["labels"] == {"region": "us-west", "provider": "AWS"}
    assert d["objects"] == ["ConfigMap/demo/web", "Deployment.apps/demo/web"]
    assert (d["desired"], d["applied"], d["applied_at"]) == ("2222", "1111", "2026-11-22T12:00:00Z")
    assert [r["cluster"] for r in d["drift"]] == ["us-west-1"]
    assert d["target"]["state"] == "Drifted"
    assert d["objects_from"] == "last apply"
    assert target_detail(TARGETS[0], None, [], None)["objects"] is None


def test_without_an_applied_record_the_objects_are_those_the_running_revision_renders() -> None:
    rendered = {("web", "beijing-1"): ("ConfigMap/demo/web",)}
    fleet = Fleet(FLEET.clusters, "1", objects=lambda app, cluster: rendered.get((app, cluster)))

    d = target_detail(TARGETS[0], fleet, [], None)

    assert (d["objects"], d["objects_from"]) == (["ConfigMap/demo/web"], "Git")
    assert target_detail(TARGETS[1], fleet, [], None)["objects"] is None


ROLLOUT = {
    "app": "web",
    "revision": "2222222222aa",
    "plan": {"stages": [{"name": "canary"}, {"name": "rest"}]},
    "clusters": [
        {"cluster": "beijing-1", "stage": 0, "phase": "Soaking", "reason": "healthy for 5s"},
        {"cluster": "us-west-1", "stage": 1, "phase": "Pending", "reason": None},
    ],
    "phase": "Progressing",
    "stage": 0,
    "paused": False,
    "reason": None,
}


def test_rollout_phases_and_pins_join_the_targets_of_the_status_document() -> None:
    status = {
        "targets": TARGETS,
        "rollouts": [ROLLOUT, {**ROLLOUT, "app": "db", "phase": "Succeeded"}],
        "pins": [{"app": "db", "cluster": "us-west-1", "revision": "0ld0ld0ld", "user": "ana"}],
    }

    joined = {(t["app"], t["cluster"]): t for t in joined_targets(status)}

    assert phase_of(joined[("web", "beijing-1")]) == ("Soaking", "healthy for 5s")
    assert joined[("web", "beijing-1")]["rollout"]["stage"] == "canary"
    assert phase_of(joined[("web", "us-west-1")]) == ("Pending", "")
    assert phase_of(joined[("db", "us-west-1")]) == (None, "")  # its rollout is over
    assert joined[("db", "us-west-1")]["pin"]["revision"] == "0ld0ld0ld"
    assert rollouts_by_app(status) == {
        "web": {
            "phase": "Progressing",
            "stage": "canary",
            "reason": "",
            "revision": "2222222",
            "paused": False,
        }
    }

    m = page_model(joined_targets(status), FLEET, Filters(), rollouts=rollouts_by_app(status))
    assert m["has_phase"] is True
    assert m["rollouts"] == {"web": rollouts_by_app(status)["web"]}
    assert m["cells"]["web"]["beijing-1"]["phase"] == "Soaking"
    assert m["cells"]["db"]["us-west-1"]["pinned"] == "0ld0ld0"
    assert joined_targets({"targets": TARGETS}) == TARGETS  # nothing to join: unchanged


def test_health_as_the_status_carries_it_gives_ready_counts_and_per_object_health() -> None:
    health = {
        "health": "Degraded",
        "reason": "Deployment.apps/demo/web 1/3 available (ProgressDeadlineExceeded)",
        "ready": 1,
        "desired": 3,
        "objects": [
            {
                "group": "apps",
                "kind": "Deployment",
                "namespace": "demo",
                "name": "web",
                "health": "Degraded",
                "reason": "1/3 available",
                "ready": 1,
                "desired": 3,
            },
            {"group": "", "kind": "ConfigMap", "namespace": "demo", "name": "web",
             "health": "Healthy", "reason": ""},
            {"group": "networking.k8s.io", "kind": "Ingress", "namespace": "demo", "name": "web",
             "health": "Healthy", "reason": ""},
        ],
    }  # fmt: skip
    degraded = target("web", "beijing-1", health=health)

    assert ready_of(degraded) == "1/3"
    cell = page_model([degraded], FLEET, Filters())["cells"]["web"]["beijing-1"]
    assert (cell["health"], cell["ready"]) == ("Degraded", "1/3")
    assert cell["health_reason"].startswith("Deployment.apps/demo/web 1/3")
    detail = target_detail(degraded, FLEET, [], None)
    assert detail["object_health"]["Deployment.apps/demo/web"] == {
        "health": "Degraded",
        "reason": "1/3 available",
        "ready": "1/3",
    }
    assert detail["object_health"]["ConfigMap/demo/web"]["health"] == "Healthy"
    assert "Ingress.networking.k8s.io/demo/web" in detail["object_health"]  # as ObjectRef names it
