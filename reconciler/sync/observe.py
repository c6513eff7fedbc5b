"""Re-read a target's live objects to judge its health between passes.

A health re-check is the plan's read step alone: one LIST per (kind, namespace) holding more
than a few of the target's objects, a GET each below that (``reads.read_live``); no inventory
read, no dry-run, no unmanaged scan. The daemon runs it for targets whose health is not final
yet (Progressing, Missing, Unknown), so a fresh rollout turns Healthy or Degraded without
waiting for the next full pass.
"""

from __future__ import annotations

from reconciler.errors import KubeError
from reconciler.health import HealthRule, TargetHealth, target_health
from reconciler.kube.client import ClusterClient
from reconciler.kube.served import Resource, UnknownKind
from reconciler.objects import Manifest, ObjectRef
from reconciler.sync.plan import scoped
from reconciler.sync.reads import read_live


def read_target(
    cluster: ClusterClient, objects: list[Manifest]
) -> dict[ObjectRef, Manifest | None]:
    """Each desired object's live state (``None``: not on the cluster, or its kind not served)."""
    wanted: list[tuple[Resource, ObjectRef]] = []
    found: dict[ObjectRef, Manifest | None] = {}
    for obj in objects:
        ref = ObjectRef.of(obj)
        try:
            resource = cluster.resource(str(obj.get("apiVersion", "")), ref.kind)
        except UnknownKind:
            found[ref] = None  # its CRD is not (yet) there: the object cannot be either
            continue
        try:
            _, ref = scoped(cluster, obj, ref, resource)
        except KubeError:
            found[ref] = None  # the pass reports this one; health has nothing to read
            continue
        wanted.append((resource, ref))
    live, _ = read_live(cluster, wanted)
    for _, ref in wanted:
        found[ref] = live.get(ref)
    return found


def check_target(
    cluster: ClusterClient, objects: list[Manifest], rules: tuple[HealthRule, ...]
) -> TargetHealth:
    return target_health(read_target(cluster, objects), rules)
