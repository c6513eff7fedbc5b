"""The built-in rule for each kind: workloads (``workloads.py``), claims, services, ingresses,
API extensions; any other kind is judged by its conditions (``conditions.py``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconciler.health import workloads
from reconciler.health.conditions import Obj, condition, explain, spec, status
from reconciler.health.model import Assessment, Health

Rule = Callable[[Obj], Assessment]


def persistent_volume_claim(obj: Obj) -> Assessment:
    phase = status(obj).get("phase") or "Pending"
    if phase == "Bound":
        return Assessment(Health.HEALTHY, f"Bound to {spec(obj).get('volumeName') or 'a volume'}")
    if phase == "Lost":
        return Assessment(Health.DEGRADED, "Lost: its volume is gone")
    return Assessment(Health.PROGRESSING, str(phase))


def _addresses(obj: Obj) -> list[str]:
    ingress = (status(obj).get("loadBalancer") or {}).get("ingress") or []
    return [str(i.get("ip") or i.get("hostname")) for i in ingress if isinstance(i, Mapping) and i]


def service(obj: Obj) -> Assessment:
    kind = spec(obj).get("type") or "ClusterIP"
    if kind != "LoadBalancer":
        return Assessment(Health.HEALTHY, "")
    addresses = _addresses(obj)
    if addresses:
        return Assessment(Health.HEALTHY, f"load balancer {', '.join(addresses)}")
    return Assessment(Health.PROGRESSING, "waiting for a load balancer address")


def ingress(obj: Obj) -> Assessment:
    addresses = _addresses(obj)
    if addresses:
        return Assessment(Health.HEALTHY, f"address {', '.join(addresses)}")
    return Assessment(Health.PROGRESSING, "waiting for an address from an ingress controller")


def custom_resource_definition(obj: Obj) -> Assessment:
    names = condition(obj, "NamesAccepted")
    if names is not None and names.get("status") == "False":
        return Assessment(Health.DEGRADED, f"names not accepted: {explain(names)}")
    established = condition(obj, "Established")
    if established is not None and established.get("status") == "True":
        return Assessment(Health.HEALTHY, "Established")
    return Assessment(Health.PROGRESSING, "not Established yet")


def api_service(obj: Obj) -> Assessment:
    available = condition(obj, "Available")
    if available is None:
        return Assessment(Health.PROGRESSING, "no Available condition yet")
    if available.get("status") == "True":
        return Assessment(Health.HEALTHY, "Available")
    # Unavailable until its backing service answers, which may just take a while.
    return Assessment(Health.PROGRESSING, f"not Available: {explain(available)}")


BUILTIN: Mapping[tuple[str, str], Rule] = {
    ("apps", "Deployment"): workloads.deployment,
    ("apps", "StatefulSet"): workloads.stateful_set,
    ("apps", "DaemonSet"): workloads.daemon_set,
    ("apps", "ReplicaSet"): workloads.replica_set,
    ("", "Pod"): workloads.pod,
    ("batch", "Job"): workloads.job,
    ("batch", "CronJob"): workloads.cron_job,
    ("", "PersistentVolumeClaim"): persistent_volume_claim,
    ("", "Service"): service,
    ("networking.k8s.io", "Ingress"): ingress,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): custom_resource_definition,
    ("apiregistration.k8s.io", "APIService"): api_service,
}


def builtin_rule(group: str, kind: str) -> Rule | None:
    return BUILTIN.get((group, kind))
