"""App x cluster: placed or not, and the human-readable rules that decided it."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.config.model import App, Cluster, Repo
from reconciler.config.schema import ClusterTarget
from reconciler.presentation import clusters_phrase
from reconciler.selectors import Requirement


@dataclass(frozen=True)
class Placement:
    """Whether the rules place the app on ``cluster``; a paused cluster is placed but skipped."""

    cluster: str
    placed: bool
    reasons: list[str]
    paused: bool = False

    @property
    def is_target(self) -> bool:
        return self.placed and not self.paused


def select(
    repo: Repo, target: ClusterTarget | None, cluster: Cluster, where: str
) -> tuple[bool, list[str]]:
    """Evaluate a placement-shaped ``target`` (``where`` names it in reasons) for ``cluster``.

    Union of clusters, groups and selector, minus exclude. For overrides, ``None`` or a target
    naming none of clusters/groups/selector selects every cluster; an app's placement then
    selects none (an app is never deployed everywhere by omission).
    """
    if target is None:
        return True, ["no target: applies to every cluster"]
    labels = cluster.labels
    hits: list[str] = []
    misses: list[str] = []
    if cluster.name in target.clusters:
        hits.append(f"listed in {where}.clusters")
    elif target.clusters:
        misses.append(f"not listed in {where}.clusters")
    for name in target.groups:
        selector = repo.groups[name].selector.compiled
        if selector.matches(labels):
            hits.append(f"in group {name}")
        else:
            misses.append(f"not in group {name} ({_failing(selector.failing(labels), labels)})")
    if target.selector is not None:
        selector = target.selector.compiled
        if selector.matches(labels):
            hits.append(f"matches selector: {selector}")
        else:
            failing = _failing(selector.failing(labels), labels)
            misses.append(f"does not match selector: {selector} ({failing})")
    if not (target.clusters or target.groups or target.selector is not None):
        if where == "placement":
            return False, ["placement names no clusters, groups or selector"]
        hits.append(f"{where} names no clusters, groups or selector: every cluster")
    if hits and cluster.name in target.exclude:
        return False, [*hits, f"excluded by {where}.exclude"]
    if hits:
        return True, hits
    return False, misses


def _failing(requirements: list[Requirement], labels: dict[str, str]) -> str:
    parts = []
    for req in requirements:
        have = f"{req.key}={labels[req.key]}" if req.key in labels else f"no label {req.key}"
        parts.append(f"needs {req}, has {have}")
    return "; ".join(parts)


def place(repo: Repo, app: App) -> list[Placement]:
    """One Placement per cluster in the inventory, sorted by cluster name."""
    out: list[Placement] = []
    for cluster in repo.clusters.values():
        placed, reasons = select(repo, app.placement, cluster, "placement")
        if cluster.paused:
            reasons = [*reasons, "paused: skipped (spec.paused: true)"]
        out.append(Placement(cluster.name, placed, reasons, paused=cluster.paused))
    return out


def targets(repo: Repo, app: App) -> list[Cluster]:
    """Clusters the app is rendered and synced for: placed and not paused."""
    return [repo.clusters[p.cluster] for p in place(repo, app) if p.is_target]


def no_target_reason(repo: Repo, app: App) -> str:
    """Why ``app`` has no target (``targets`` is empty): ``its clusters a, b are paused``,
    ``its clusters a, b are excluded by placement.exclude``, ``no cluster matches its
    placement``, ``its placement names no clusters, groups or selector``, or ``the inventory
    has no clusters``."""
    placements = place(repo, app)
    placed = [p.cluster for p in placements if p.placed]
    if placed:
        return f"its {clusters_phrase(placed)} {'is' if len(placed) == 1 else 'are'} paused"
    excluded = [p.cluster for p in placements if "excluded by placement.exclude" in p.reasons]
    if excluded:
        verb = "is" if len(excluded) == 1 else "are"
        return f"its {clusters_phrase(excluded)} {verb} excluded by placement.exclude"
    if not placements:
        return "the inventory has no clusters"
    target = app.placement
    if not (target.clusters or target.groups or target.selector is not None):
        return "its placement names no clusters, groups or selector"
    return "no cluster matches its placement"
