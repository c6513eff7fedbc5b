"""What each cluster tells Helm it is (version, API versions), asked of the cluster itself.

Live commands and the daemon render Helm charts per target with the cluster's own Kubernetes
version and served API versions (``helm template --kube-version --api-versions``), the way
``helm install`` would see that cluster. Clients cache the answer until their discovery is
forgotten (after a sync installs CRDs), so a daemon asks once per cluster, not per revision.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.config.model import Repo
from reconciler.kube.pool import Clients
from reconciler.placement import targets
from reconciler.render import Capabilities
from reconciler.sync.isolated import run_isolated


def helm_clusters(repo: Repo, clusters: Iterable[str] | None = None) -> list[str]:
    """Clusters (of ``clusters``, default all) that render at least one Helm app."""
    wanted = set(clusters) if clusters is not None else None
    names = {
        cluster.name
        for app in repo.apps.values()
        if app.source.helm is not None
        for cluster in targets(repo, app)
        if wanted is None or cluster.name in wanted
    }
    return sorted(names)


def cluster_capabilities(
    repo: Repo, clients: Clients, clusters: Iterable[str] | None = None
) -> dict[str, Capabilities]:
    """Capabilities of every cluster rendering a Helm app. A cluster that does not answer is
    left out: its render assumes the offline default, and its pass reports it unreachable."""
    names = helm_clusters(repo, clusters)

    def ask(name: str) -> Capabilities:
        version, api_versions = clients.get(name, repo.clusters[name].context).capabilities()
        return Capabilities(version, api_versions)

    return {o.key: o.value for o in run_isolated(names, ask) if o.value is not None}
