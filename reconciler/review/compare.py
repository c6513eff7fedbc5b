"""Pure: base vs head per app, cluster and object (placement, overrides, masked YAML diffs)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from reconciler.charts.model import ChartLock
from reconciler.config.model import App, Repo
from reconciler.config.schema import ClusterTarget, Selector
from reconciler.diff import differences
from reconciler.masking import mask_pair, show_override_change
from reconciler.objects import Manifest, ObjectRef
from reconciler.overrides import OverrideEffect
from reconciler.placement import Placement, place
from reconciler.presentation import format_value, plural
from reconciler.render import RenderedTarget, TargetResult
from reconciler.review.model import (
    AppReview,
    AppStatus,
    ClusterReview,
    ClusterStatus,
    ObjectAction,
    ObjectDiff,
    OverrideDiff,
    Review,
    Revision,
)
from reconciler.rollout.strategy import plan_for


def compare(
    base: Revision,
    head: Revision,
    base_repo: Repo | None,
    base_results: Sequence[TargetResult],
    head_repo: Repo | None,
    head_results: Sequence[TargetResult],
    *,
    base_problems: Sequence[str] = (),
    head_problems: Sequence[str] = (),
    base_charts: ChartLock | None = None,
    head_charts: ChartLock | None = None,
) -> Review:
    """The offline plan of base -> head (pure). A missing base counts everything as added."""
    review = Review(base, head)
    review.blocking += head_problems
    if base_problems:
        review.notes.append(
            f"base {base.short} does not load ({plural(len(base_problems), 'problem')}, "
            f"first: {base_problems[0]}); everything in head counts as added"
        )
    if head_repo is None:
        return review
    review.blocking += [str(r.error) for r in head_results if r.error is not None]
    review.base_errors = [r.error for r in base_results if r.error is not None]
    if base_repo is not None:
        review.inventory = _inventory_changes(base_repo, head_repo)
    base_by = {(r.app, r.cluster): r for r in base_results}
    head_by = {(r.app, r.cluster): r for r in head_results}
    base_apps = base_repo.apps if base_repo is not None else {}
    for name in sorted(set(base_apps) | set(head_repo.apps)):
        review.apps.append(
            _review_app(
                name,
                base_repo,
                base_apps.get(name),
                head_repo,
                head_repo.apps.get(name),
                base_by,
                head_by,
                _chart_change(name, base_charts or ChartLock(), head_charts or ChartLock()),
            )
        )
    return review


def _chart_change(app: str, base: ChartLock, head: ChartLock) -> str | None:
    """``chart https://… redis: 1.2.0 → 1.3.0`` when the resolved chart differs."""
    was, now = base.charts.get(app), head.charts.get(app)
    if now is None or (was is not None and (was.version, was.digest) == (now.version, now.digest)):
        return None
    if was is None:
        return f"chart {now.source}: {now.source.version} resolves to {now.version}"
    if was.source.url != now.source.url or was.source.chart != now.source.chart:
        return f"chart {was.source} {was.version} → {now.source} {now.version}"
    if was.version != now.version:
        return f"chart {now.source}: {was.version} → {now.version}"
    return f"chart {now.source} {now.version}: content changed ({was.digest} → {now.digest})"


def _review_app(
    name: str,
    base_repo: Repo | None,
    base_app: App | None,
    head_repo: Repo,
    head_app: App | None,
    base_by: Mapping[tuple[str, str], TargetResult],
    head_by: Mapping[tuple[str, str], TargetResult],
    chart_change: str | None = None,
) -> AppReview:
    pair = _Pair(base_repo, head_repo, base_app, head_app)
    base_place = _placements(base_repo, base_app)
    head_place = _placements(head_repo, head_app)
    base_targets = {c for (a, c) in base_by if a == name}
    head_targets = {c for (a, c) in head_by if a == name}
    clusters: list[ClusterReview] = []
    for cluster in sorted(base_targets | head_targets | _newly_paused(base_targets, head_place)):
        b, h = base_by.get((name, cluster)), head_by.get((name, cluster))
        review = ClusterReview(cluster, ClusterStatus.UNCHANGED)
        if h is None and head_place.get(cluster) is not None and head_place[cluster].paused:
            review.status = ClusterStatus.PAUSED
            review.reasons = head_place[cluster].reasons
            review.note = "the cluster is paused in head: nothing is applied or removed there"
        elif b is None:
            review.status = ClusterStatus.GAINED
            review.reasons = head_place[cluster].reasons
        elif h is None:
            review.status = ClusterStatus.LOST
            placement = head_place.get(cluster)
            review.reasons = placement.reasons if placement is not None else []
            if head_app is None:
                review.reasons = ["the app is removed from the repo"]
        if review.status in (ClusterStatus.GAINED, ClusterStatus.LOST) and base_app and head_app:
            placement = base_place.get(cluster)
            review.before = placement.reasons if placement is not None else []
            review.causes = pair.placement_causes(cluster)
        if review.status is ClusterStatus.LOST and cluster not in head_repo.clusters:
            review.note = "removed from the inventory: no longer managed, nothing is pruned there"
        elif review.status is not ClusterStatus.PAUSED:
            _compare_target(review, b, h, pair)
        if review.status is ClusterStatus.UNCHANGED and review.differs:
            review.status = ClusterStatus.CHANGED
        clusters.append(review)
    spec = _spec_changes(base_app, head_app)
    if chart_change is not None and head_app is not None:
        spec.append(chart_change)
    if base_app is None:
        status = AppStatus.ADDED
    elif head_app is None:
        status = AppStatus.REMOVED
    elif spec or any(c.differs for c in clusters):
        status = AppStatus.CHANGED
    else:
        status = AppStatus.UNCHANGED
    result = AppReview(name, status, spec, clusters)
    if status is AppStatus.CHANGED and head_app is not None:
        _rollout(result, head_repo, head_app)
    return result


def _rollout(review: AppReview, repo: Repo, app: App) -> None:
    """The rollout merging this starts: the clusters whose render changes go stage by stage;
    clusters that do not run the app yet take head at once (as the daemon does)."""
    plan = plan_for(repo, app)
    if plan is None:
        return
    changed = {c.cluster for c in review.clusters if c.status is ClusterStatus.CHANGED}
    if not changed:
        return
    review.rollout = plan.only(changed)
    review.at_once = tuple(c.cluster for c in review.clusters if c.status is ClusterStatus.GAINED)


def _placements(repo: Repo | None, app: App | None) -> dict[str, Placement]:
    if repo is None or app is None:
        return {}
    return {p.cluster: p for p in place(repo, app)}


def _newly_paused(base_targets: set[str], head_place: Mapping[str, Placement]) -> set[str]:
    return {c for c in base_targets if c in head_place and head_place[c].paused}


def _compare_target(
    review: ClusterReview,
    base: TargetResult | None,
    head: TargetResult | None,
    pair: _Pair,
) -> None:
    base_app, head_app = pair.base_app, pair.head_app
    if head is not None and head.error is not None:
        review.error = str(head.error)
        if base is not None and base.error is not None and str(base.error) == review.error:
            review.error_in_base = True
            review.note = "base fails here with the same error: nothing changes"
        return
    base_objects: list[Manifest] = []
    if base is not None and base.error is not None:
        review.note = (
            "base does not render here: every head object is shown as created"
            if head is not None
            else "base does not render here: what leaves the cluster is not listed"
        )
    elif base is not None and base.rendered is not None:
        base_objects = base.rendered.objects
    head_objects = head.rendered.objects if head is not None and head.rendered else []
    kept = head_app is not None and not head_app.sync.prune
    review.objects = object_diffs(base_objects, head_objects, kept_on_delete=kept)
    if base is not None and head is not None and base_app is not None and head_app is not None:
        review.overrides = _override_diffs(pair, review.cluster, base.rendered, head.rendered)
    elif head is not None and head.rendered is not None:
        review.overrides = [
            OverrideDiff(e.override, e.where, "applies", "", _effect_lines(e))
            for e in head.rendered.overrides_applied
        ]


def object_diffs(
    base: Iterable[Manifest], head: Iterable[Manifest], *, kept_on_delete: bool = False
) -> list[ObjectDiff]:
    """Objects created, deleted and changed from ``base`` to ``head`` (Secrets masked)."""
    before = {ObjectRef.of(o): o for o in base}
    after = {ObjectRef.of(o): o for o in head}
    out: list[ObjectDiff] = []
    for ref in sorted(set(before) | set(after), key=lambda r: r.sort_key()):
        old, new = before.get(ref), after.get(ref)
        if old == new:
            continue
        shown_old, shown_new = mask_pair(old, new)
        text = _unified(shown_old, shown_new)
        if old is None:
            out.append(ObjectDiff(ref, ObjectAction.CREATED, text))
        elif new is None:
            note = "kept on the cluster: sync.prune is false" if kept_on_delete else ""
            out.append(ObjectDiff(ref, ObjectAction.DELETED, text, note))
        else:
            out.append(ObjectDiff(ref, ObjectAction.CHANGED, text))
    return out


def _yaml(obj: Manifest | None) -> list[str]:
    if obj is None:
        return []
    return yaml.safe_dump(obj, sort_keys=True, width=1000, allow_unicode=True).splitlines()


def _unified(old: Manifest | None, new: Manifest | None) -> str:
    a, b = _yaml(old), _yaml(new)
    lines = list(difflib.unified_diff(a, b, lineterm="", n=3))
    return "\n".join(lines[2:])  # drop the ---/+++ file headers: the object is named above


def _effect_lines(effect: OverrideEffect) -> tuple[str, ...]:
    lines = [show_override_change(c) for c in effect.changes]
    lines += [f"note: {n}" for n in effect.notes]
    return tuple(lines)


def _override_diffs(
    pair: _Pair, cluster: str, base: RenderedTarget | None, head: RenderedTarget | None
) -> list[OverrideDiff]:
    """Overrides that start or stop applying on this cluster, or whose definition changed."""
    if base is None or head is None or pair.base_app is None or pair.head_app is None:
        return []
    before = {e.override: e for e in base.overrides_applied}
    after = {e.override: e for e in head.overrides_applied}
    base_defs = {o.name: o for o in pair.base_app.overrides}
    head_defs = {o.name: o for o in pair.head_app.overrides}

    def why(name: str, verb: str) -> str:
        old, new = base_defs[name].target, head_defs[name].target
        causes = [f"its target {verb} this cluster"]
        if old != new:
            causes.append("the target changed")
        labels = pair.label_cause(cluster, pair.keys(old, new))
        if labels:
            causes.append(labels)
        return causes[0] + (": " + "; ".join(causes[1:]) if causes[1:] else "")

    out: list[OverrideDiff] = []
    for name, effect in after.items():
        if name not in before:
            reason = why(name, "now selects") if name in base_defs else "new override"
            out.append(
                OverrideDiff(name, effect.where, "now applies", reason, _effect_lines(effect))
            )
        elif base_defs.get(name) != head_defs.get(name):
            old = _effect_lines(before[name])
            out.append(
                OverrideDiff(
                    name,
                    effect.where,
                    "changed",
                    "its definition changed",
                    _effect_lines(effect),
                    old,
                )
            )
    for name, effect in before.items():
        if name not in after:
            reason = why(name, "no longer selects") if name in head_defs else "override removed"
            out.append(
                OverrideDiff(name, effect.where, "no longer applies", reason, _effect_lines(effect))
            )
    return out


@dataclass(frozen=True)
class _Pair:
    """One app in base and head, with both repos: answers "what edit caused this"."""

    base_repo: Repo | None
    head_repo: Repo
    base_app: App | None
    head_app: App | None

    def keys(self, *targets: ClusterTarget | None) -> set[str]:
        """Label keys the targets' selectors and groups look at (in base or head)."""
        selectors: list[Selector] = []
        for target in targets:
            if target is None:
                continue
            selectors += [target.selector] if target.selector is not None else []
            for repo in (self.base_repo, self.head_repo):
                if repo is not None:
                    selectors += [
                        repo.groups[g].selector for g in target.groups if g in repo.groups
                    ]
        return {
            k for s in selectors for k in (*s.match_labels, *(e.key for e in s.match_expressions))
        }

    def label_cause(self, cluster: str, keys: set[str]) -> str | None:
        old = self.base_repo.clusters.get(cluster) if self.base_repo is not None else None
        new = self.head_repo.clusters.get(cluster)
        if old is None or new is None:
            return None
        changes = _mapping_changes(old.labels, new.labels, keys)
        return f"labels of cluster {cluster} changed: {changes}" if changes else None

    def placement_causes(self, cluster: str) -> list[str]:
        """The edits behind a placement change: cluster labels, pause, app placement, groups."""
        if self.base_repo is None or self.base_app is None or self.head_app is None:
            return []
        base_repo, head_repo = self.base_repo, self.head_repo
        old_target, new_target = self.base_app.placement, self.head_app.placement
        causes: list[str] = []
        if old_target != new_target:
            causes.append(f"the placement of app {self.head_app.name} changed")
        old, new = base_repo.clusters.get(cluster), head_repo.clusters.get(cluster)
        if old is None:
            causes.append(f"cluster {cluster} is new in the inventory")
        elif new is None:
            causes.append(f"cluster {cluster} was removed from the inventory")
        else:
            labels = self.label_cause(cluster, self.keys(old_target, new_target))
            if labels:
                causes.append(labels)
            if old.paused != new.paused:
                causes.append(f"cluster {cluster} was {'paused' if new.paused else 'unpaused'}")
        for group in sorted(set(old_target.groups) | set(new_target.groups)):
            was, now = base_repo.groups.get(group), head_repo.groups.get(group)
            if (was.selector if was else None) != (now.selector if now else None):
                causes.append(f"the selector of group {group} changed")
        return causes


def _mapping_changes(
    old: Mapping[str, str], new: Mapping[str, str], only: set[str] | None = None
) -> str:
    parts = []
    for key in sorted(set(old) | set(new)):
        if only is not None and key not in only:
            continue
        if key not in new:
            parts.append(f"-{key}={old[key]}")
        elif key not in old:
            parts.append(f"+{key}={new[key]}")
        elif old[key] != new[key]:
            parts.append(f"{key}: {old[key]} → {new[key]}")
    return ", ".join(parts)


def _inventory_changes(base: Repo, head: Repo) -> list[str]:
    out = []
    for name in sorted(set(base.clusters) | set(head.clusters)):
        old, new = base.clusters.get(name), head.clusters.get(name)
        if old is None:
            out.append(f"cluster {name} added")
            continue
        if new is None:
            out.append(f"cluster {name} removed")
            continue
        labels = _mapping_changes(old.labels, new.labels)
        if labels:
            out.append(f"cluster {name} labels: {labels}")
        variables = _mapping_changes(old.vars, new.vars)
        if variables:
            out.append(f"cluster {name} vars: {variables}")
        if old.context != new.context:
            out.append(f"cluster {name} context: {old.context} → {new.context}")
        if old.paused != new.paused:
            out.append(f"cluster {name} {'paused' if new.paused else 'unpaused'}")
    for name in sorted(set(base.groups) | set(head.groups)):
        was, now = base.groups.get(name), head.groups.get(name)
        if was is None:
            out.append(f"group {name} added")
        elif now is None:
            out.append(f"group {name} removed")
        elif was.selector != now.selector:
            out.append(f"group {name} selector: {was.selector.compiled} → {now.selector.compiled}")
    return out


# Values under these app fields are not shown (Helm values and patches may hold secrets).
_PATHS_ONLY = ("source", "overrides")


def _spec_changes(base: App | None, head: App | None) -> list[str]:
    """What changed in app.yaml besides the manifests: ``sync.selfHeal: true → false``."""
    if base is None or head is None:
        return []
    out = []
    for part in ("namespace", "source", "placement", "overrides", "sync", "rollout"):
        old, new = getattr(base, part), getattr(head, part)
        for path, was, now in differences(_plain(old), _plain(new), part):
            if part in _PATHS_ONLY:
                out.append(f"{path} changed")
            else:
                out.append(f"{path}: base {format_value(was)}, head {format_value(now)}")
    return out


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
