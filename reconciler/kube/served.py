"""What a server serves, read from its discovery documents (pure): where a kind is served,
every resource of an aggregated discovery answer, and the names Helm's capabilities list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from reconciler.errors import KubeError


@dataclass(frozen=True)
class Resource:
    """Where a kind is served: ``/apis/<group>/<version>/[namespaces/<ns>/]<plural>``."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str = "", name: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return base + (f"/{quote(name, safe='')}" if name else "")


class UnknownKind(KubeError):
    """The cluster does not serve this apiVersion/kind (yet: maybe its CRD is not installed)."""


# Aggregated discovery (every group, version and resource in one answer), else plain JSON.
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"


def aggregated_resources(listing: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]] | None:
    """(group, version, resource) of an aggregated discovery answer, each resource as plain
    discovery has it (kind, name, namespaced, verbs); None for a plain (not aggregated) one."""
    if listing.get("kind") != "APIGroupDiscoveryList":
        return None
    found = []
    for group in listing.get("items") or []:
        name = str((group.get("metadata") or {}).get("name") or "")
        for entry in group.get("versions") or []:
            for res in entry.get("resources") or []:
                plain = {
                    "kind": (res.get("responseKind") or {}).get("kind", ""),
                    "name": res.get("resource", ""),
                    "namespaced": res.get("scope") == "Namespaced",
                    "verbs": res.get("verbs") or [],
                }
                found.append((name, str(entry["version"]), plain))
    return found


def served_names(listing: dict[str, Any]) -> set[str]:
    """Every ``group/version`` and ``group/version/Kind`` an ``/api`` or ``/apis`` answer names
    (a server without aggregated discovery: its versions only)."""
    aggregated = aggregated_resources(listing)
    if aggregated is not None:
        served = set()
        for group in listing.get("items") or []:
            name = (group.get("metadata") or {}).get("name") or ""
            for entry in group.get("versions") or []:
                served.add(f"{name}/{entry['version']}" if name else str(entry["version"]))
        for group_name, version, res in aggregated:
            if res["kind"]:
                gv = f"{group_name}/{version}" if group_name else version
                served.add(f"{gv}/{res['kind']}")
        return served
    if "versions" in listing:  # /api
        return {str(v) for v in listing.get("versions") or []}
    return {
        str(v["groupVersion"]) for g in listing.get("groups") or [] for v in g.get("versions") or []
    }


def resources_of(group: str, version: str, listing: dict[str, Any]) -> dict[str, Resource]:
    """Kind -> where it is served, from one group version's resource list (no subresources)."""
    return {
        r["kind"]: Resource(group, version, r["kind"], r["name"], bool(r["namespaced"]))
        for r in listing.get("resources", [])
        if "/" not in r["name"]
    }
