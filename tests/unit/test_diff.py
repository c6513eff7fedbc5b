"""Pure diffing: normalization, field paths, attribution, masking, ignore rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reconciler.config.schema import IgnoreRule
from reconciler.diff import (
    attribute,
    content_hash,
    field_changes,
    field_owners,
    ignored_pointers,
    normalize,
    strip_pointers,
    take_from_live,
)
from reconciler.fields import FieldChange
from reconciler.masking import MASK, mask_changes
from reconciler.objects import ObjectRef


def _deployment(replicas: int, image: str = "web:1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "demo",
            "uid": "abc",
            "resourceVersion": "12",
            "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [],
            "labels": {"reconciler.io/app": "web"},
        },
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "web", "image": image},
                        {"name": "sidecar", "image": "proxy:2"},
                    ]
                }
            },
        },
        "status": {"replicas": 1},
    }


def test_normalize_drops_server_bookkeeping_and_status() -> None:
    out = normalize(_deployment(3))
    assert "status" not in out
    assert set(out["metadata"]) == {"name", "namespace", "labels"}


def test_identical_objects_have_no_field_changes() -> None:
    assert field_changes(normalize(_deployment(3)), normalize(_deployment(3))) == []


def test_changed_scalar_is_reported_with_its_path_and_both_values() -> None:
    assert field_changes(_deployment(3), _deployment(5)) == [FieldChange("spec.replicas", 3, 5)]


def test_containers_are_matched_by_name_not_position() -> None:
    before = _deployment(3)
    after = _deployment(3, image="web:2")
    after["spec"]["template"]["spec"]["containers"].reverse()
    assert field_changes(before, after) == [
        FieldChange("spec.template.spec.containers[name=web].image", "web:1", "web:2")
    ]


def test_keys_with_dots_or_slashes_are_bracketed() -> None:
    before = {"metadata": {"labels": {"reconciler.io/app": "a"}}}
    after = {"metadata": {"labels": {"reconciler.io/app": "b"}}}
    assert field_changes(before, after)[0].path == "metadata.labels[reconciler.io/app]"


def test_added_and_removed_fields_show_unset_sides() -> None:
    changes = field_changes({"data": {"a": "1"}}, {"data": {"b": "2"}})
    assert changes == [FieldChange("data.a", "1", None), FieldChange("data.b", None, "2")]


def test_lists_without_keys_of_different_length_change_as_a_whole() -> None:
    assert field_changes({"args": ["a"]}, {"args": ["a", "b"]}) == [
        FieldChange("args", ["a"], ["a", "b"])
    ]


def test_secret_values_are_masked_but_their_change_is_kept() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "data": {"password": "aHVudGVyMg=="}}
    changes = mask_changes(secret, [FieldChange("data.password", "b2xk", "bmV3")])
    assert changes == [FieldChange("data.password", MASK, MASK)]
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}}
    plain = [FieldChange("data.k", "v", "w")]
    assert mask_changes(configmap, plain) == plain


def _managed(manager: str, operation: str, time: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }


def test_field_owners_reads_managed_fields_into_paths() -> None:
    live = {
        "metadata": {
            "managedFields": [
                _managed(
                    "reconciler",
                    "Apply",
                    "2026-11-22T10:00:00Z",
                    {
                        "f:spec": {
                            "f:template": {
                                "f:spec": {
                                    "f:containers": {'k:{"name":"web"}': {".": {}, "f:image": {}}}
                                }
                            }
                        }
                    },
                ),
                _managed(
                    "kubectl-edit", "Update", "2026-11-22T12:03:41Z", {"f:spec": {"f:replicas": {}}}
                ),
            ]
        }
    }
    owners = field_owners(live)
    assert [o.manager for o in owners["spec.replicas"]] == ["kubectl-edit"]
    assert [o.manager for o in owners["spec.template.spec.containers[name=web].image"]] == [
        "reconciler"
    ]


def test_attribute_names_the_other_manager_and_time_of_a_drifted_field() -> None:
    live = {
        "metadata": {
            "managedFields": [
                _managed("reconciler", "Apply", "2026-11-22T10:00:00Z", {"f:data": {"f:a": {}}}),
                _managed("kubectl-edit", "Update", "2026-11-22T12:03:41Z", {"f:data": {"f:b": {}}}),
            ]
        }
    }
    [change] = attribute([FieldChange("data.b", "7", "5")], live, "reconciler")
    assert (change.manager, change.time) == (
        "kubectl-edit",
        datetime(2026, 11, 22, 12, 3, 41, tzinfo=UTC),
    )


def test_a_field_nobody_owns_is_attributed_to_the_latest_update() -> None:
    live = {
        "metadata": {
            "managedFields": [
                _managed("reconciler", "Apply", "2026-11-22T10:00:00Z", {"f:data": {"f:a": {}}}),
                _managed("ops", "Update", "2026-11-22T11:00:00Z", {"f:metadata": {}}),
            ]
        }
    }
    [change] = attribute([FieldChange("data.gone", None, "1")], live, "reconciler")
    assert change.manager == "ops"


def test_ignore_rules_match_kind_and_name_globs_and_strip_pointers() -> None:
    rules = [
        IgnoreRule(kind="Deployment", name="we*", json_pointers=["/spec/replicas"]),
        IgnoreRule(kind="Service", json_pointers=["/spec/clusterIP"]),
    ]
    ref = ObjectRef("apps", "Deployment", "demo", "web")
    pointers = ignored_pointers(ref, rules)
    assert pointers == ["/spec/replicas"]
    stripped = strip_pointers(_deployment(3), [*pointers, "/spec/absent/field"])
    assert "replicas" not in stripped["spec"]
    assert ignored_pointers(ObjectRef("apps", "Deployment", "demo", "api"), rules) == []


def test_json_pointer_escapes_are_honoured() -> None:
    obj = {"metadata": {"annotations": {"a/b": "1", "c": "2"}}}
    assert strip_pointers(obj, ["/metadata/annotations/a~1b"]) == {
        "metadata": {"annotations": {"c": "2"}}
    }


def test_content_hash_ignores_key_order_but_not_values() -> None:
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


def test_a_list_key_matches_managed_fields_keys_with_more_pairs() -> None:
    live = {
        "metadata": {
            "managedFields": [
                _managed("reconciler", "Apply", "2026-11-22T10:00:00Z", {"f:spec": {}}),
                _managed(
                    "ops",
                    "Update",
                    "2026-11-22T11:00:00Z",
                    {
                        "f:spec": {
                            "f:ports": {'k:{"port":80,"protocol":"TCP"}': {"f:targetPort": {}}}
                        }
                    },
                ),
            ]
        }
    }
    [change] = attribute([FieldChange("spec.ports[port=80].targetPort", 8080, 8000)], live, "x")
    assert change.manager == "ops"


def test_status_updates_by_controllers_are_never_blamed_for_spec_drift() -> None:
    live = {
        "metadata": {
            "managedFields": [
                _managed("kubectl-edit", "Update", "2026-11-22T10:00:00Z", {"f:metadata": {}}),
                _managed(
                    "kube-controller-manager", "Update", "2026-11-22T12:00:00Z", {"f:status": {}}
                )
                | {"subresource": "status"},
            ]
        }
    }
    [change] = attribute([FieldChange("data.gone", None, "1")], live, "reconciler")
    assert change.manager == "kubectl-edit"


def test_ignored_fields_are_sent_with_their_live_value_or_left_out_when_absent() -> None:
    desired = {"spec": {"replicas": 2, "paused": False}}
    live = {"spec": {"replicas": 9}}
    assert take_from_live(desired, live, ["/spec/replicas", "/spec/paused"]) == {
        "spec": {"replicas": 9}
    }


def _injected() -> dict[str, Any]:
    return {
        "spec": {
            "template": {
                "spec": {
                    "initContainers": [{"name": "vault-agent-init", "image": "vault:1.15"}],
                    "containers": [{"name": "web", "image": "web:1"}],
                }
            }
        }
    }


def test_an_ignored_field_in_a_list_git_does_not_declare_is_not_sent() -> None:
    desired = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}
    pointer = "/spec/template/spec/initContainers/0/image"
    # No made-up list (a map {"0": ...} the server rejects) and no copied entry: live keeps it.
    assert take_from_live(desired, _injected(), [pointer]) == desired
    # An entry Git does not declare in a list it does: likewise.
    two = {"spec": {"template": {"spec": {"containers": [{"name": "web"}, {"name": "b"}]}}}}
    desired["spec"]["template"]["spec"]["initContainers"] = []
    assert take_from_live(desired, _injected(), [pointer]) == desired
    assert take_from_live({}, two, ["/spec/template/spec/containers/1/name"]) == {}


def test_an_ignored_field_in_a_list_entry_git_declares_is_sent_with_its_live_value() -> None:
    desired = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}}
    live = _injected()
    live["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
    pointers = [
        "/spec/template/spec/containers/0/image",
        "/spec/template/spec/containers/0/resources/limits/cpu",
    ]
    assert take_from_live(desired, live, pointers) == {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "web", "image": "web:1", "resources": {"limits": {"cpu": "1"}}}
                    ]
                }
            }
        }
    }


def test_an_ignored_field_under_maps_git_does_not_declare_is_sent_with_its_live_value() -> None:
    live = {"metadata": {"annotations": {"example.com/a": "1"}}, "spec": {"replicas": 9}}
    assert take_from_live({"spec": {}}, live, ["/metadata/annotations/example.com~1a"]) == {
        "metadata": {"annotations": {"example.com/a": "1"}},
        "spec": {},
    }
    # A whole list ignored is sent as the live list.
    whole = take_from_live(
        {"spec": {"template": {"spec": {}}}}, _injected(), ["/spec/template/spec/initContainers"]
    )
    assert whole["spec"]["template"]["spec"]["initContainers"] == [
        {"name": "vault-agent-init", "image": "vault:1.15"}
    ]


def _scaled_deployment() -> dict[str, Any]:
    """A Deployment as a real API server keeps it: applied by us, its revision annotation and
    status written by kube-controller-manager, scaled by ``kubectl scale`` (which took
    ``spec.replicas`` from us)."""
    web = 'k:{"name":"web"}'
    ours = {
        "f:metadata": {"f:annotations": {"f:example.com/note": {}}, "f:labels": {"f:tier": {}}},
        "f:spec": {
            "f:selector": {},
            "f:template": {"f:spec": {"f:containers": {web: {".": {}, "f:image": {}}}}},
        },
    }
    revision = {"f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}}
    return {
        "metadata": {
            "managedFields": [
                _managed("reconciler", "Apply", "2026-11-22T10:00:00Z", ours),
                _managed(
                    "kube-controller-manager",
                    "Update",
                    "2026-11-22T10:00:01Z",
                    {"f:metadata": revision},
                ),
                _managed(
                    "kube-controller-manager",
                    "Update",
                    "2026-11-22T10:00:02Z",
                    {"f:status": {"f:replicas": {}}},
                )
                | {"subresource": "status"},
                _managed(
                    "kubectl", "Update", "2026-11-22T11:00:00Z", {"f:spec": {"f:replicas": {}}}
                )
                | {"subresource": "scale"},
            ]
        }
    }


def test_git_changes_to_fields_we_own_are_never_blamed_on_managers_of_their_parents() -> None:
    changes = [
        FieldChange("metadata.annotations[example.com/note]", "r2", "r1"),
        FieldChange("metadata.labels.tier", "front", "web"),
        FieldChange("spec.replicas", 2, 9),
        FieldChange("spec.template.spec.containers[name=web].image", "web:2", "web:1"),
    ]
    named = attribute(changes, _scaled_deployment(), "reconciler", unowned=False)
    assert [(f.path, f.manager) for f in named] == [
        ("metadata.annotations[example.com/note]", None),
        ("metadata.labels.tier", None),
        ("spec.replicas", "kubectl"),
        ("spec.template.spec.containers[name=web].image", None),
    ]


def test_a_field_inside_one_owned_whole_is_attributed_to_its_owner() -> None:
    live = _scaled_deployment()
    change = FieldChange("spec.selector.matchLabels.app", "web", "api")
    # We own the (atomic) selector: with Git changed, its change is Git's.
    assert attribute([change], live, "reconciler", unowned=False)[0].manager is None
    # Another manager took it whole: drift, named after them.
    selector = {"f:spec": {"f:selector": {}}}
    live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"].pop("f:selector")
    live["metadata"]["managedFields"].append(
        _managed("kubectl-edit", "Update", "2026-11-22T12:00:00Z", selector)
    )
    assert attribute([change], live, "reconciler", unowned=False)[0].manager == "kubectl-edit"


def test_a_field_shared_with_another_manager_and_changed_in_git_is_gits_change() -> None:
    live = {
        "metadata": {
            "managedFields": [
                _managed("reconciler", "Apply", "2026-11-22T10:00:00Z", {"f:data": {"f:a": {}}}),
                _managed("ops", "Apply", "2026-11-22T11:00:00Z", {"f:data": {"f:a": {}}}),
            ]
        }
    }
    change = FieldChange("data.a", "2", "1")
    assert attribute([change], live, "reconciler", unowned=False)[0].manager is None
    # Git unchanged: any difference is someone else's; the other owner is named.
    assert attribute([change], live, "reconciler")[0].manager == "ops"
