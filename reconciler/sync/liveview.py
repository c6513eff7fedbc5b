"""What the watches hold of the scopes (kind × namespace) a plan reads.

A namespaced kind is watched once across namespaces, not once per namespace (a fleet of
thousands of clusters would hold tens of thousands of watches otherwise), under two selectors:
this Cluster entry's objects, and objects labelled as an app's without a cluster label
(applied before cluster labels, or labelled by hand: unmanaged objects the plan reports).
Objects another Cluster entry claims (entries sharing an API server) are left out; a plan that
wants one reads it itself. A cluster-wide scope holds only this entry's objects.
"""

from __future__ import annotations

from reconciler import APP_LABEL
from reconciler.kube.client import ClusterClient
from reconciler.kube.served import Resource
from reconciler.objects import Manifest
from reconciler.sync.model import CLUSTER_LABEL


def watched(
    cluster: ClusterClient, scopes: list[tuple[Resource, str]]
) -> list[list[Manifest] | None]:
    """Each (resource, namespace) scope's objects labelled as an app's, as the watches see
    them, or None where they cannot tell now (not watching, a broken watch): read instead."""
    own = f"{APP_LABEL},{CLUSTER_LABEL}={cluster.name}"
    unclaimed = f"{APP_LABEL},!{CLUSTER_LABEL}"
    asks = []
    for resource, namespace in scopes:
        asks.append((resource, namespace, own))
        if namespace:
            asks.append((resource, namespace, unclaimed))
    views = iter(cluster.cached(asks, across_namespaces=True))
    found: list[list[Manifest] | None] = []
    for _, namespace in scopes:
        first = next(views)
        second = next(views) if namespace else []
        found.append(None if first is None or second is None else first + second)
    return found
