"""Pure parts of what a prune may delete: what a Namespace or CRD holds, and what the apps of
one pass want (an object moving between apps is handed over)."""

from __future__ import annotations

from reconciler.engine import cluster_claims
from reconciler.errors import RenderError
from reconciler.objects import ObjectRef
from reconciler.render import RenderedTarget, TargetResult
from reconciler.sync.holders import held_by, is_holder, staying
from reconciler.sync.model import Claims

NS = ObjectRef("", "Namespace", "", "shop")
CRD = ObjectRef("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com")
LIVE_CRD = {"spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"}}}
CART = ObjectRef("", "ConfigMap", "shop", "cart")
WIDGET = ObjectRef("example.com", "Widget", "shop", "w")


def _cm(name: str, namespace: str, **meta: object) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, **meta},
    }


def test_only_namespaces_and_crds_hold_other_objects() -> None:
    assert is_holder(NS) and is_holder(CRD)
    assert not is_holder(CART)
    assert not is_holder(ObjectRef("example.com", "Namespace", "", "shop"))  # not the built-in


def test_a_namespace_holds_what_is_in_it_and_a_crd_the_objects_of_its_kind() -> None:
    assert held_by(NS, None, CART) and not held_by(NS, None, ObjectRef("", "ConfigMap", "x", "c"))
    assert held_by(CRD, LIVE_CRD, WIDGET) and not held_by(CRD, LIVE_CRD, CART)


def test_what_stays_is_labelled_not_pruned_now_and_not_already_being_deleted() -> None:
    items = [
        _cm("b", "shop", labels={"reconciler.io/app": "other"}),
        _cm("a", "shop", labels={"reconciler.io/app": "mine"}),  # pruned by this pass
        _cm("by-hand", "shop"),  # no app label: not any app's
        _cm("going", "shop", labels={"reconciler.io/app": "x"}, deletionTimestamp="2026-01-01"),
    ]
    pruned = {ObjectRef("", "ConfigMap", "shop", "a")}
    assert staying(items, pruned) == [(ObjectRef("", "ConfigMap", "shop", "b"), "other")]


def test_an_object_wanted_by_another_app_of_the_pass_is_not_released_by_it() -> None:
    claims = Claims({CART: frozenset({"web", "db"})}, frozenset({"web", "db", "cache"}))
    assert claims.wanted_elsewhere(CART, "web") == "db"
    assert claims.wanted_elsewhere(CART, "cache") == "db"
    assert claims.wanted_elsewhere(WIDGET, "web") is None
    assert not claims.released(CART, "db")  # db still wants it: a true conflict
    assert claims.released(WIDGET, "db")  # rendered, and does not want it


def test_an_app_is_known_to_give_an_object_up_only_when_its_objects_are_known() -> None:
    partial = Claims({}, frozenset({"web"}), frozenset({"broken"}))
    assert partial.released(CART, "web")
    assert not partial.released(CART, "broken")  # its render failed: unknown
    assert not partial.released(CART, "elsewhere")  # not rendered in a partial pass
    whole = Claims({}, frozenset({"web"}), frozenset({"broken"}), whole=True)
    assert whole.released(CART, "elsewhere")  # every app was rendered: it wants nothing here
    assert not whole.released(CART, "broken")
    assert not Claims().released(CART, "web")  # no claims: nothing is handed over


def test_the_claims_of_a_cluster_name_every_app_wanting_each_object() -> None:
    cart = _cm("cart", "shop")
    zone = {
        "apiVersion": "example.com/v1",
        "kind": "Zone",
        "metadata": {"name": "z", "namespace": "shop"},
    }
    targets = [
        TargetResult("web", "c1", RenderedTarget("web", "c1", [cart, zone], [])),
        TargetResult("db", "c1", RenderedTarget("db", "c1", [cart], [])),
        TargetResult("broken", "c1", error=RenderError("boom", app="broken", cluster="c1")),
    ]
    claims = cluster_claims(targets, whole=True)
    assert claims.wants[CART] == frozenset({"web", "db"})
    # A custom kind the render did not know is cluster-scoped is found by either ref.
    assert claims.wanted_elsewhere(ObjectRef("example.com", "Zone", "", "z"), "db") == "web"
    assert claims.rendered == frozenset({"web", "db"})
    assert claims.failed == frozenset({"broken"}) and claims.whole
