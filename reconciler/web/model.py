"""Pure: what the page shows, from the daemon's status rows, open drift and cluster labels.

The page never receives every cell of a large fleet: with more clusters than
:data:`MAX_CLUSTER_COLUMNS` (after filters) the columns become the values of one cluster label
and each cell counts its targets per state. Filtering by one such value (a click on its column)
brings the per-cluster cells back.

Targets are the dicts of ``reconciler status -o json``, so fields other helpers add to a target
(``health``, a rollout ``phase``) reach the page without this module knowing their whole shape:
:func:`health_of` and :func:`phase_of` read them as text or as ``{status|phase, reason}``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_CLUSTER_COLUMNS",
    "MAX_DRIFT",
    "MAX_GROUP_COLUMNS",
    "STATE_ORDER",
    "ClusterInfo",
    "Filters",
    "Fleet",
    "drift_targets",
    "health_of",
    "joined_targets",
    "open_drift",
    "page_model",
    "phase_of",
    "ready_of",
    "rollouts_by_app",
]

MAX_CLUSTER_COLUMNS = 40  # above this many clusters, columns group clusters by a label
MAX_GROUP_COLUMNS = 60  # at most this many group columns; filters narrow the rest
MAX_DRIFT = 200  # open drift records sent to the page at once (newest first)
NONE_VALUE = "(none)"  # the group of clusters without the grouping label

# Worst first: a group cell is shown in the colour of its worst target.
STATE_ORDER = (
    "Failed",
    "InvalidConfig",
    "Unreachable",
    "Drifted",
    "Held",
    "OutOfSync",
    "Progressing",
    "Synced",
    "Paused",
)
HEALTH_ORDER = ("Degraded", "Missing", "Unknown", "Progressing", "Suspended", "Healthy")


@dataclass(frozen=True)
class ClusterInfo:
    """A cluster of the inventory as the page needs it: name, labels, paused."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    paused: bool = False


def _no_objects(app: str, cluster: str) -> tuple[str, ...] | None:
    return None


@dataclass(frozen=True)
class Fleet:
    """What only the running daemon knows: the inventory's clusters with their labels, and the
    objects (``Kind/namespace/name``) its current revision renders for a target, looked up
    only when asked (a detail), never for every target."""

    clusters: tuple[ClusterInfo, ...] = ()
    version: str = ""  # changes whenever the clusters change (e.g. the daemon's generation)
    objects: Callable[[str, str], tuple[str, ...] | None] = _no_objects


@dataclass(frozen=True)
class Filters:
    """What the page asks for: substrings of app and cluster names, one ``key=value`` cluster
    label (``key`` alone: clusters that have the label), and the label to group columns by
    (empty: chosen automatically when there are too many clusters)."""

    app: str = ""
    cluster: str = ""
    label: str = ""
    group_by: str = ""

    @classmethod
    def of(cls, query: Mapping[str, str]) -> Filters:
        return cls(
            app=query.get("app", "").strip(),
            cluster=query.get("cluster", "").strip(),
            label=query.get("label", "").strip(),
            group_by=query.get("group_by", "").strip(),
        )

    def app_matches(self, app: str) -> bool:
        return self.app.lower() in app.lower()

    def cluster_matches(self, cluster: ClusterInfo) -> bool:
        if self.cluster.lower() not in cluster.name.lower():
            return False
        if not self.label:
            return True
        key, sep, value = self.label.partition("=")
        if not sep:
            return key in cluster.labels
        if value == NONE_VALUE:
            return key not in cluster.labels
        return cluster.labels.get(key) == value


def _status_text(value: Any, keys: Sequence[str]) -> tuple[str | None, str]:
    """``(status, reason)`` of a field that is either text or a mapping."""
    if value is None:
        return None, ""
    if isinstance(value, Mapping):
        status = next((value[k] for k in keys if value.get(k)), None)
        reason = next((value[k] for k in ("reason", "message") if value.get(k)), "")
        return (None if status is None else str(status)), str(reason)
    return str(value), ""


def health_of(target: Mapping[str, Any]) -> tuple[str | None, str]:
    """The target's health and its reason, if the status carries health."""
    status, reason = _status_text(target.get("health"), ("status", "health", "state"))
    if not reason and target.get("health_reason"):
        reason = str(target["health_reason"])
    return status, reason


def phase_of(target: Mapping[str, Any]) -> tuple[str | None, str]:
    """The target's rollout phase and what it waits for, if the status carries a rollout."""
    for key in ("rollout", "rollout_phase", "phase"):
        if target.get(key) is not None:
            return _status_text(target[key], ("phase", "status", "state"))
    return None, ""


def _rank(order: Sequence[str], value: str | None) -> int:
    return order.index(value) if value in order else len(order)


def _short(sha: Any) -> str:
    return str(sha)[:7] if sha else ""


def ready_of(target: Mapping[str, Any]) -> str:
    """``ready/desired`` pods of the target's workloads (``1/3``), if its health counts them."""
    health = target.get("health")
    if isinstance(health, Mapping) and health.get("desired") is not None:
        return f"{health.get('ready') or 0}/{health['desired']}"
    return ""


def _cell(target: Mapping[str, Any]) -> dict[str, Any]:
    health, health_reason = health_of(target)
    phase, phase_reason = phase_of(target)
    pin = target.get("pin")
    return {
        "state": target.get("state"),
        "health": health,
        "health_reason": health_reason,
        "ready": ready_of(target),
        "phase": phase,
        "phase_reason": phase_reason,
        "pinned": _short(pin.get("revision")) if isinstance(pin, Mapping) else "",
        "revision": _short(target.get("revision")),
        "message": target.get("message") or "",
    }


# Rollouts in these phases are over: their clusters' phases are history, not news.
_QUIET_ROLLOUTS = frozenset({"Succeeded", "Superseded", "Aborted"})


def _stage_name(rollout: Mapping[str, Any], index: Any) -> str | None:
    stages = (rollout.get("plan") or {}).get("stages") or []
    if isinstance(index, int) and 0 <= index < len(stages):
        return str(stages[index].get("name") or f"stage {index + 1}")
    return None


def rollouts_by_app(status: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each app's rollout that is still going on (or halted): phase, stage, reason, revision,
    from the ``rollouts`` of ``status -o json``."""
    found: dict[str, dict[str, Any]] = {}
    for rollout in status.get("rollouts") or ():
        if rollout.get("phase") in _QUIET_ROLLOUTS:
            continue
        found[str(rollout["app"])] = {
            "phase": rollout.get("phase"),
            "stage": _stage_name(rollout, rollout.get("stage")),
            "reason": rollout.get("reason") or "",
            "revision": _short(rollout.get("revision")),
            "paused": bool(rollout.get("paused")),
        }
    return found


def joined_targets(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The targets of ``status -o json``, each with its cluster's phase in its app's ongoing
    rollout (``rollout``: phase, reason, stage) and its pin (``pin``), when it has them."""
    phases: dict[tuple[str, str], dict[str, Any]] = {}
    for rollout in status.get("rollouts") or ():
        if rollout.get("phase") in _QUIET_ROLLOUTS:
            continue
        for cluster in rollout.get("clusters") or ():
            phases[(str(rollout["app"]), str(cluster["cluster"]))] = {
                "phase": cluster.get("phase"),
                "reason": cluster.get("reason") or "",
                "stage": _stage_name(rollout, cluster.get("stage")),
            }
    pins = {(str(p["app"]), p.get("cluster")): p for p in status.get("pins") or ()}
    joined = []
    for target in status.get("targets") or ():
        key = (str(target["app"]), str(target["cluster"]))
        extra: dict[str, Any] = {}
        if key in phases and "rollout" not in target:
            extra["rollout"] = phases[key]
        pin = pins.get(key) or pins.get((key[0], None))
        if pin is not None and "pin" not in target:
            extra["pin"] = pin
        joined.append({**target, **extra} if extra else target)
    return joined


def _clusters(targets: Iterable[Mapping[str, Any]], fleet: Fleet | None) -> list[ClusterInfo]:
    """The inventory's clusters, plus any the status names that the inventory lacks (a daemon
    that has not loaded a revision yet, or a target of a cluster that left)."""
    known = {c.name: c for c in (fleet.clusters if fleet else ())}
    for target in targets:
        name = str(target["cluster"])
        known.setdefault(name, ClusterInfo(name))
    return sorted(known.values(), key=lambda c: c.name)


def _label_keys(clusters: Sequence[ClusterInfo]) -> dict[str, list[str]]:
    values: dict[str, set[str]] = {}
    for cluster in clusters:
        for key, value in cluster.labels.items():
            values.setdefault(key, set()).add(value)
    return {key: sorted(values[key]) for key in sorted(values)}


def _auto_group_by(clusters: Sequence[ClusterInfo]) -> str:
    """The label that best splits many clusters: held by the most clusters, then the one with
    the fewest values above one (so columns stay few)."""
    counts: Counter[str] = Counter()
    values: dict[str, set[str]] = {}
    for cluster in clusters:
        for key, value in cluster.labels.items():
            counts[key] += 1
            values.setdefault(key, set()).add(value)
    useful = [k for k in counts if len(values[k]) > 1] or list(counts)
    if not useful:
        return ""
    return min(useful, key=lambda k: (-counts[k], len(values[k]), k))


def _summary(targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    states = Counter(str(t.get("state")) for t in targets)
    health = Counter(h for h in (health_of(t)[0] for t in targets) if h)
    phases = Counter(p for p in (phase_of(t)[0] for t in targets) if p)
    return {
        "targets": len(targets),
        "states": {s: states[s] for s in sorted(states, key=lambda s: _rank(STATE_ORDER, s))},
        "health": {h: health[h] for h in sorted(health, key=lambda h: _rank(HEALTH_ORDER, h))},
        "phases": dict(sorted(phases.items())),
    }


def _group_cell(targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    summary = _summary(targets)
    states: dict[str, int] = summary["states"]
    health: dict[str, int] = summary["health"]
    return {
        "total": len(targets),
        "counts": states,
        "health": health,
        "worst": next(iter(states), None),
        "worst_health": next(iter(health), None),
    }


def page_model(
    targets: Sequence[Mapping[str, Any]],
    fleet: Fleet | None,
    filters: Filters,
    *,
    rollouts: Mapping[str, Mapping[str, Any]] | None = None,
    max_cluster_columns: int = MAX_CLUSTER_COLUMNS,
    max_group_columns: int = MAX_GROUP_COLUMNS,
) -> dict[str, Any]:
    """The matrix the page draws for ``filters``: per-cluster columns, or per-label-value
    columns with counts when more than ``max_cluster_columns`` clusters are shown; with each
    shown app's ongoing rollout (see :func:`rollouts_by_app`)."""
    every_cluster = _clusters(targets, fleet)
    clusters = [c for c in every_cluster if filters.cluster_matches(c)]
    shown = {c.name for c in clusters}
    all_apps = sorted({str(t["app"]) for t in targets})
    rows = [t for t in targets if t["cluster"] in shown and filters.app_matches(str(t["app"]))]
    apps = sorted({str(t["app"]) for t in rows})
    label_keys = _label_keys(every_cluster)
    model: dict[str, Any] = {
        "filters": {
            "app": filters.app,
            "cluster": filters.cluster,
            "label": filters.label,
            "group_by": filters.group_by,
        },
        "all_apps": all_apps,
        "label_keys": label_keys,
        "cluster_count": len(every_cluster),
        "shown_clusters": len(clusters),
        "apps": apps,
        "summary": _summary(rows),
        "rollouts": {app: dict(rollouts[app]) for app in apps if rollouts and app in rollouts},
        "has_health": any(health_of(t)[0] for t in targets),
        "has_phase": any(phase_of(t)[0] for t in targets),
    }
    group_by = filters.group_by
    if group_by and group_by not in label_keys:
        group_by = ""
    if not group_by and len(clusters) > max_cluster_columns:
        group_by = _auto_group_by(clusters)
    if not group_by:
        by_cell = {(str(t["app"]), str(t["cluster"])): t for t in rows}
        model.update(
            mode="clusters",
            group_by=None,
            columns=[
                {"id": c.name, "name": c.name, "labels": dict(c.labels), "paused": c.paused}
                for c in clusters[:max_cluster_columns]
            ],
            hidden_columns=max(0, len(clusters) - max_cluster_columns),
            cells={
                app: {
                    c.name: _cell(by_cell[(app, c.name)])
                    for c in clusters[:max_cluster_columns]
                    if (app, c.name) in by_cell
                }
                for app in apps
            },
        )
        return model
    group_of = {c.name: c.labels.get(group_by, NONE_VALUE) for c in clusters}
    sizes = Counter(group_of.values())
    values = sorted(sizes, key=lambda v: (v == NONE_VALUE, v))
    kept = values[:max_group_columns]
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for target in rows:
        grouped.setdefault((str(target["app"]), group_of[str(target["cluster"])]), []).append(
            target
        )
    model.update(
        mode="groups",
        group_by=group_by,
        columns=[
            {"id": f"{group_by}={value}", "name": value, "key": group_by, "clusters": sizes[value]}
            for value in kept
        ],
        hidden_columns=len(values) - len(kept),
        cells={
            app: {
                f"{group_by}={value}": _group_cell(grouped[(app, value)])
                for value in kept
                if (app, value) in grouped
            }
            for app in apps
        },
    )
    return model


def _shown_clusters(
    targets: Sequence[Mapping[str, Any]], fleet: Fleet | None, filters: Filters
) -> set[str]:
    return {c.name for c in _clusters(targets, fleet) if filters.cluster_matches(c)}


def drift_targets(
    counts: Mapping[tuple[str, str], int],
    targets: Sequence[Mapping[str, Any]],
    fleet: Fleet | None,
    filters: Filters,
) -> dict[tuple[str, str], int]:
    """The ``(app, cluster)`` pairs of ``counts`` (open drift records per pair) that the
    filters show, with their counts."""
    shown = _shown_clusters(targets, fleet, filters)
    return {
        (app, cluster): n
        for (app, cluster), n in counts.items()
        if n and cluster in shown and filters.app_matches(app)
    }


def open_drift(
    drift: Sequence[Mapping[str, Any]],
    targets: Sequence[Mapping[str, Any]],
    fleet: Fleet | None,
    filters: Filters,
    *,
    counts: Mapping[tuple[str, str], int] | None = None,
    limit: int = MAX_DRIFT,
) -> dict[str, Any]:
    """Open drift records (``drift -o json`` dicts) of the apps and clusters the filters show,
    newest first, at most ``limit``, with how many there are in all: the sum of ``counts``
    (open records per ``(app, cluster)``, every one of them, while ``drift`` may hold only the
    newest) over the targets shown, else the number of records given."""
    shown = _shown_clusters(targets, fleet, filters)
    rows = [
        d
        for d in drift
        if d.get("corrected_at") is None
        and d["cluster"] in shown
        and filters.app_matches(str(d["app"]))
    ]
    total = len(rows)
    if counts is not None:
        total = max(total, sum(drift_targets(counts, targets, fleet, filters).values()))
    return {"total": total, "records": list(rows[:limit])}
