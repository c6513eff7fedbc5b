"""Pure parts of the sync: ownership labels, the re-keyed list repair, TLS failure causes."""

from __future__ import annotations

import ssl

from reconciler.kube.errors import tls_reason
from reconciler.sync.listrepair import duplicate_in, plan_repair, repaired, without_manager
from reconciler.sync.ownership import Owner, claimed_elsewhere, owned_by, stamp

OWNER = Owner("web", "tenant-a", "default")


def _labelled(**labels: str) -> dict[str, object]:
    return {"metadata": {"labels": labels}}


def test_stamping_adds_the_cluster_entry_and_instance_and_keeps_the_rest() -> None:
    obj = {"kind": "ConfigMap", "metadata": {"name": "c", "labels": {"reconciler.io/app": "web"}}}
    stamped = stamp(obj, "tenant-a", "default")
    assert stamped["metadata"]["labels"] == {
        "reconciler.io/app": "web",
        "reconciler.io/cluster": "tenant-a",
        "reconciler.io/instance": "default",
    }
    assert obj["metadata"]["labels"] == {"reconciler.io/app": "web"}  # the input is untouched


def test_an_object_of_another_cluster_entry_is_claimed_elsewhere() -> None:
    other = _labelled(**{"reconciler.io/app": "web", "reconciler.io/cluster": "tenant-b"})
    why = claimed_elsewhere(other, "web", "tenant-a", "default")
    assert why is not None and "applied by cluster entry tenant-b of app web" in why
    assert not owned_by(other, OWNER)


def test_an_object_from_before_the_cluster_label_is_ours() -> None:
    legacy = _labelled(**{"reconciler.io/app": "web"})
    assert claimed_elsewhere(legacy, "web", "tenant-a", "default") is None
    assert owned_by(legacy, OWNER)


def test_another_instance_or_app_is_never_ours() -> None:
    assert not owned_by(_labelled(**{"reconciler.io/app": "db"}), OWNER)
    other = _labelled(**{"reconciler.io/app": "web", "reconciler.io/instance": "blue"})
    why = claimed_elsewhere(other, "web", "tenant-a", "default")
    assert why is not None and "instance blue" in why


MESSAGE = 'Service "web" is invalid: spec.ports[1].name: Duplicate value: "http"'


def test_a_duplicate_value_error_names_the_list_and_the_field() -> None:
    assert duplicate_in(MESSAGE) == ("spec.ports", "name")
    nested = 'spec.template.spec.containers[0].ports[1].name: Duplicate value: "http"'
    assert duplicate_in(nested) == ("spec.template.spec.containers[0].ports", "name")
    assert duplicate_in("spec.replicas: Invalid value: -1") is None


def test_the_repaired_list_keeps_assigned_values_and_foreign_entries_that_do_not_collide() -> None:
    live = [
        {"name": "http", "port": 8080, "protocol": "TCP", "nodePort": 30080},
        {"name": "metrics", "port": 9090, "protocol": "TCP"},
    ]
    desired = [{"name": "http", "port": 80}]
    assert repaired(live, desired, "name") == [
        {"name": "metrics", "port": 9090, "protocol": "TCP"},
        {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
    ]


def test_a_repair_is_a_guarded_json_patch_of_the_list() -> None:
    live = {
        "metadata": {"resourceVersion": "42"},
        "spec": {"ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
    }
    desired = {"spec": {"ports": [{"name": "http", "port": 80}]}}
    repair = plan_repair(MESSAGE, live, desired)
    assert repair is not None
    assert repair.operations() == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
        {
            "op": "replace",
            "path": "/spec/ports",
            "value": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
    ]
    assert plan_repair("spec.replicas: Invalid value", live, desired) is None


def test_a_repair_manager_is_dropped_from_managed_fields() -> None:
    live = {"metadata": {"managedFields": [{"manager": "reconciler"}, {"manager": "x-repair"}]}}
    assert without_manager(live, "x-repair") == [{"manager": "reconciler"}]


def test_tls_failures_are_named_by_their_cause() -> None:
    def failure(text: str) -> ssl.SSLError:
        err = ssl.SSLCertVerificationError(1, text)
        err.verify_message = text.split("certificate verify failed: ")[-1]  # type: ignore[attr-defined]
        return err

    verify = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
    unknown = failure(f"{verify}unable to get local issuer certificate (_ssl.c:1006)")
    assert tls_reason(unknown).startswith("certificate verify failed: unknown CA")
    expired = failure(f"{verify}certificate has expired (_ssl.c:1006)")
    assert tls_reason(expired).startswith("certificate verify failed: certificate expired")
    assert "wrong version number" in tls_reason(
        ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    )
