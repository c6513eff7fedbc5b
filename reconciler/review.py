"""``reconciler plan``: what a change to the config repo does, for pull-request review.

Both revisions are exported from Git (never the user's checkout), loaded and rendered offline;
the plan pairs base and head per app, cluster and object: apps added, removed, changed; the
clusters each app gains or loses and why (placement reasons, and the label, selector or group
edit behind them); the override that makes a cluster differ; a unified YAML diff per object with
Secret values masked. With ``live``, head is also dry-run against the clusters (server-side
apply), which shows what would really change there, including drift the merge would overwrite.

Everything but :func:`plan` (which calls source, render and engine) is pure, and the formatters
are deterministic: the same base and head give byte-identical output, so a pull-request comment
rewritten on every push only changes when the plan does.
"""

from __future__ import annotations

import difflib
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from reconciler.config import App, ClusterTarget, Repo, Selector, load_repo
from reconciler.diff import MASK, field_changes, is_secret, show_override_change
from reconciler.engine import Clients, TargetOutcome, reconcile
from reconciler.errors import ConfigError, RenderError
from reconciler.objects import Manifest, ObjectRef
from reconciler.outcomes import value as show_value
from reconciler.overrides import OverrideEffect
from reconciler.placement import Placement, place
from reconciler.render import RenderedTarget, TargetResult, Toolchain, render_all
from reconciler.source import export_rev, resolve_rev
from reconciler.sync import DEFAULT_INSTANCE, Action, Change

__all__ = [
    "DEFAULT_MAX_CHARS",
    "AppReview",
    "AppStatus",
    "ClusterReview",
    "ClusterStatus",
    "LiveOptions",
    "ObjectAction",
    "Review",
    "compare",
    "live_targets",
    "object_diffs",
    "plan",
    "summary",
    "to_json",
    "to_markdown",
    "to_text",
]

# GitHub rejects comments over 65536 characters; leave room for a CI's own header.
DEFAULT_MAX_CHARS = 60_000
MARKER = "<!-- reconciler-plan -->"
CHANGED_SECRET = "(masked, changed)"
_MAX_NAMES = 20  # clusters named on one grouped error in Markdown; the rest are counted
_MAX_LINE = 2000  # one problem or note in Markdown is cut here (text and JSON keep it whole)
_RESERVE = 600  # Markdown: the truncation note and the "... more" lines


class AppStatus(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


class ClusterStatus(StrEnum):
    GAINED = "gained"  # the app is deployed here after the merge, not before
    LOST = "lost"  # the app leaves this cluster: its objects are pruned
    PAUSED = "paused"  # still placed, but the cluster is now paused: nothing changes there
    CHANGED = "changed"
    UNCHANGED = "unchanged"


class ObjectAction(StrEnum):
    CREATED = "created"
    DELETED = "deleted"
    CHANGED = "changed"


@dataclass(frozen=True)
class ObjectDiff:
    """One object that differs between base and head on one cluster; ``diff`` is masked."""

    ref: ObjectRef
    action: ObjectAction
    diff: str
    note: str = ""


@dataclass(frozen=True)
class OverrideDiff:
    """An override whose effect on one cluster differs between base and head, and why."""

    name: str
    where: str
    status: str  # "applies" (gained cluster), "now applies", "no longer applies", "changed"
    reason: str
    changes: tuple[str, ...] = ()  # what it does in head (base for "no longer applies")
    before: tuple[str, ...] = ()  # what it did in base ("changed" only)


@dataclass
class ClusterReview:
    cluster: str
    status: ClusterStatus
    reasons: list[str] = field(default_factory=list)  # placement in head (base when lost)
    before: list[str] = field(default_factory=list)  # placement in base, when it changed
    causes: list[str] = field(default_factory=list)  # the edits that changed placement
    overrides: list[OverrideDiff] = field(default_factory=list)
    objects: list[ObjectDiff] = field(default_factory=list)
    error: str | None = None  # head does not render here (blocking)
    note: str | None = None

    def count(self, action: ObjectAction) -> int:
        return sum(1 for o in self.objects if o.action is action)

    @property
    def differs(self) -> bool:
        return bool(
            self.status in (ClusterStatus.GAINED, ClusterStatus.LOST, ClusterStatus.PAUSED)
            or self.objects
            or self.overrides
            or self.error
        )


@dataclass
class AppReview:
    app: str
    status: AppStatus
    spec_changes: list[str] = field(default_factory=list)
    clusters: list[ClusterReview] = field(default_factory=list)

    def with_status(self, status: ClusterStatus) -> list[ClusterReview]:
        return [c for c in self.clusters if c.status is status]


@dataclass(frozen=True)
class Revision:
    rev: str
    sha: str

    @property
    def short(self) -> str:
        return self.sha[:12]


@dataclass(frozen=True)
class LiveField:
    path: str
    live: Any
    head: Any
    manager: str | None
    time: str | None


@dataclass(frozen=True)
class LiveChange:
    """What the dry-run of head found for one live object (fields are masked for Secrets)."""

    ref: ObjectRef
    action: Action
    drift: str | None
    message: str
    managers: tuple[str, ...]
    fields: tuple[LiveField, ...]
    self_heal: bool = True


@dataclass
class LiveTarget:
    app: str
    cluster: str
    changes: list[LiveChange] = field(default_factory=list)
    departed: bool = False
    error: str | None = None
    unreachable: bool = False


@dataclass(frozen=True)
class LiveOptions:
    """How to reach the clusters for ``--live`` (same meaning as for ``reconciler diff``)."""

    kubeconfig: str | None
    instance: str = DEFAULT_INSTANCE
    timeout: float = 10.0


@dataclass
class Review:
    """The whole plan: base and head, blocking problems, notes, per-app review, live results."""

    base: Revision
    head: Revision
    blocking: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    inventory: list[str] = field(default_factory=list)
    apps: list[AppReview] = field(default_factory=list)
    live: list[LiveTarget] | None = None
    live_instance: str = DEFAULT_INSTANCE

    @property
    def changed_apps(self) -> list[AppReview]:
        return [a for a in self.apps if a.status is not AppStatus.UNCHANGED]

    @property
    def has_errors(self) -> bool:
        live_errors = any(t.error for t in self.live or [])
        return bool(self.blocking) or live_errors

    @property
    def has_changes(self) -> bool:
        live_changes = any(t.changes for t in self.live or [])
        return bool(self.changed_apps or self.inventory) or live_changes


# ---- building the plan ---------------------------------------------------------------------


def plan(
    repo_path: Path,
    base: str,
    head: str,
    *,
    live: LiveOptions | None = None,
    tools: Toolchain | None = None,
) -> Review:
    """Export ``base`` and ``head`` of the local Git repo, render both, compare; dry-run head.

    ``repo_path`` may be a directory inside the work tree (a config repo kept in a subfolder).
    Raises SourceError when a revision does not exist; an invalid head is reported in
    ``Review.blocking``, an invalid base in ``Review.notes``.
    """
    repo_path = Path(repo_path)
    prefix = _prefix_in_work_tree(repo_path)
    revisions = (
        Revision(base, resolve_rev(repo_path, base)),
        Revision(head, resolve_rev(repo_path, head)),
    )
    with tempfile.TemporaryDirectory(prefix="reconciler-plan-") as tmp:
        loaded: list[tuple[Repo | None, list[TargetResult], list[str]]] = []
        for side, revision in zip(("base", "head"), revisions, strict=True):
            # Only the config repo's folder: a monorepo's other files are never written.
            tree = export_rev(repo_path, revision.sha, Path(tmp) / side, subdir=prefix)
            if prefix.parts and not any(tree.iterdir()):  # Git has no empty folders
                missing = f"{prefix.as_posix()}: no such folder in {revision.short}"
                loaded.append((None, [], [missing]))
            else:
                loaded.append(_load_and_render(tree, tools))
        (base_repo, base_results, base_problems), (head_repo, head_results, head_problems) = loaded
        review = compare(
            revisions[0],
            revisions[1],
            base_repo,
            base_results,
            head_repo,
            head_results,
            base_problems=base_problems,
            head_problems=head_problems,
        )
        if live is not None:
            review.live_instance = live.instance
            if head_repo is None:
                review.notes.append("live dry-run skipped: head does not load")
            else:
                clients = Clients(live.kubeconfig, timeout=live.timeout)
                try:
                    outcomes = reconcile(
                        head_repo,
                        head_results,
                        clients,
                        revisions[1].short,
                        apply=False,
                        instance=live.instance,
                    )
                finally:
                    clients.close()
                review.live = live_targets(head_repo, outcomes, str(Path(tmp) / "head"))
    return review


def _prefix_in_work_tree(path: Path) -> Path:
    """Where ``path`` sits inside its Git work tree (``.`` at the top), found without Git."""
    resolved = path.resolve()
    for parent in (resolved, *resolved.parents):
        if (parent / ".git").exists():
            return resolved.relative_to(parent)
    return Path()


def _load_and_render(
    root: Path, tools: Toolchain | None
) -> tuple[Repo | None, list[TargetResult], list[str]]:
    try:
        repo = load_repo(root)
    except ConfigError as err:
        return None, [], [str(p) for p in err.problems]
    results = render_all(repo, tools=tools)
    for result in results:
        if result.error is not None:
            # Tool output may name the temp export: keep output stable and paths repo-relative.
            message = _strip_root(result.error.message, root)
            result.error = RenderError(message, app=result.app, cluster=result.cluster)
    return repo, results, []


def _strip_root(text: str, root: Path) -> str:
    """``text`` with ``root`` (as given and resolved) made relative: ``apps/x``, ``.``.

    The longer form goes first, always: one may contain the other (a symlinked TMPDIR), and
    replacing the shorter first would leave the rest of the longer in the text.
    """
    forms = sorted({str(root), str(root.resolve())}, key=lambda f: (-len(f), f))
    for form in forms:
        text = text.replace(form + "/", "").replace(form, ".")
    return text


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
) -> Review:
    """The offline plan of base -> head (pure). A missing base counts everything as added."""
    review = Review(base, head)
    review.blocking += head_problems
    if base_problems:
        review.notes.append(
            f"base {base.short} does not load ({_plural(len(base_problems), 'problem')}, "
            f"first: {base_problems[0]}); everything in head counts as added"
        )
    if head_repo is None:
        return review
    review.blocking += [str(r.error) for r in head_results if r.error is not None]
    for r in base_results:
        if r.error is not None:
            review.notes.append(f"base {base.short} does not render: {r.error}")
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
            )
        )
    return review


def _review_app(
    name: str,
    base_repo: Repo | None,
    base_app: App | None,
    head_repo: Repo,
    head_app: App | None,
    base_by: Mapping[tuple[str, str], TargetResult],
    head_by: Mapping[tuple[str, str], TargetResult],
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
    if base_app is None:
        status = AppStatus.ADDED
    elif head_app is None:
        status = AppStatus.REMOVED
    elif spec or any(c.differs for c in clusters):
        status = AppStatus.CHANGED
    else:
        status = AppStatus.UNCHANGED
    return AppReview(name, status, spec, clusters)


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
        return
    base_objects: list[Manifest] = []
    if base is not None and base.error is not None:
        review.note = "base does not render here: every head object is shown as created"
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
        shown_old, shown_new = _mask_pair(old, new)
        text = _unified(shown_old, shown_new)
        if old is None:
            out.append(ObjectDiff(ref, ObjectAction.CREATED, text))
        elif new is None:
            note = "kept on the cluster: sync.prune is false" if kept_on_delete else ""
            out.append(ObjectDiff(ref, ObjectAction.DELETED, text, note))
        else:
            out.append(ObjectDiff(ref, ObjectAction.CHANGED, text))
    return out


def _mask_pair(
    old: Manifest | None, new: Manifest | None
) -> tuple[Manifest | None, Manifest | None]:
    """Secret values replaced by a marker; a value that changed gets a different marker."""
    if not any(o is not None and is_secret(o) for o in (old, new)):
        return old, new
    shown_old = _mask_secret(old, None)
    shown_new = _mask_secret(new, old)
    return shown_old, shown_new


def _mask_secret(obj: Manifest | None, compared_to: Manifest | None) -> Manifest | None:
    if obj is None:
        return None
    out = dict(obj)
    for key in ("data", "stringData"):
        if key not in out:
            continue
        values = out[key]
        other = (compared_to or {}).get(key)
        if not isinstance(values, dict):
            out[key] = MASK
            continue
        masked = {}
        for name, secret in values.items():
            changed = isinstance(other, dict) and name in other and other[name] != secret
            masked[name] = CHANGED_SECRET if changed else MASK
        out[key] = masked
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
    for part in ("namespace", "source", "placement", "overrides", "sync"):
        old, new = getattr(base, part), getattr(head, part)
        for change in field_changes(_plain(old), _plain(new), part):
            if part in _PATHS_ONLY:
                out.append(f"{change.path} changed")
            else:
                out.append(
                    f"{change.path}: {show_value(change.before)} → {show_value(change.after)}"
                )
    return out


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# ---- live ----------------------------------------------------------------------------------


def live_targets(repo: Repo, outcomes: Iterable[TargetOutcome], root: str = "") -> list[LiveTarget]:
    """The dry-run outcomes of head, reduced to what a reviewer reads (no object bodies)."""
    out = []
    for o in sorted(outcomes, key=lambda o: (o.cluster, o.app)):
        app = repo.apps.get(o.app)
        heal = app.sync.self_heal if app is not None else True
        target = LiveTarget(o.app, o.cluster, departed=o.departed, unreachable=o.unreachable)
        if o.error is not None:
            target.error = _strip_root(str(o.error), Path(root)) if root else str(o.error)
        if o.plan is not None:
            target.changes = [_live_change(c, heal) for c in o.plan.changes if _shown(c)]
        out.append(target)
    return out


def _shown(change: Change) -> bool:
    return change.action is not Action.UNCHANGED or change.drift is not None


def _live_change(change: Change, self_heal: bool) -> LiveChange:
    return LiveChange(
        ref=change.ref,
        action=change.action,
        drift=change.drift.value if change.drift else None,
        message=change.message,
        managers=tuple(change.managers),
        fields=tuple(
            LiveField(f.path, f.before, f.after, f.manager, f.time) for f in change.fields
        ),
        self_heal=self_heal,
    )


# ---- summary -------------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"1 {word}"
    return f"{n} {word[:-1] + 'ies' if word.endswith('y') else word + 's'}"


def summary(review: Review) -> str:
    """One line of counts: apps, clusters, objects (and live changes)."""
    if review.blocking and not review.apps:
        return f"head is invalid: {_plural(len(review.blocking), 'problem')}, nothing to compare"
    apps = {s: sum(1 for a in review.apps if a.status is s) for s in AppStatus}
    clusters = [c for a in review.apps for c in a.clusters]
    gained = sum(1 for c in clusters if c.status is ClusterStatus.GAINED)
    lost = sum(1 for c in clusters if c.status is ClusterStatus.LOST)
    objects = {a: sum(c.count(a) for c in clusters) for a in ObjectAction}
    parts = [
        f"apps: {apps[AppStatus.ADDED]} added, {apps[AppStatus.REMOVED]} removed, "
        f"{apps[AppStatus.CHANGED]} changed, {apps[AppStatus.UNCHANGED]} unchanged",
        f"clusters: {gained} gained, {lost} lost",
        f"objects: {objects[ObjectAction.CREATED]} created, {objects[ObjectAction.DELETED]} "
        f"deleted, {objects[ObjectAction.CHANGED]} changed",
    ]
    if review.blocking:
        parts.insert(0, f"BLOCKED by {_plural(len(review.blocking), 'problem')}")
    if review.live is not None:
        changes = sum(len(t.changes) for t in review.live)
        drifted = sum(1 for t in review.live for c in t.changes if c.drift)
        down = sorted({t.cluster for t in review.live if t.unreachable})
        live = f"live: {_plural(changes, 'change')}, {drifted} drifted"
        if down:
            live += f", {_plural(len(down), 'cluster')} unreachable"
        parts.append(live)
    return "; ".join(parts)


def _app_headline(app: AppReview) -> str:
    bits = [str(app.status)]
    for status in (ClusterStatus.GAINED, ClusterStatus.LOST, ClusterStatus.PAUSED):
        n = len(app.with_status(status))
        if n:
            bits.append(f"{_plural(n, 'cluster')} {status}")
    for action in ObjectAction:
        n = sum(c.count(action) for c in app.clusters)
        if n:
            bits.append(f"{_plural(n, 'object')} {action}")
    errors = sum(1 for c in app.clusters if c.error)
    if errors:
        bits.append(f"{_plural(errors, 'render error')}")
    return " · ".join(bits)


def _placement_line(c: ClusterReview) -> str:
    text = f"{c.status} {c.cluster}"
    if c.reasons:
        text += ": " + "; ".join(c.reasons)
    if c.causes:
        text += " — because " + "; ".join(c.causes)
    if c.before:
        text += " (before: " + "; ".join(c.before) + ")"
    return text


def _override_headline(o: OverrideDiff) -> str:
    reason = f" — {o.reason}" if o.reason else ""
    return f"override {o.name} ({o.where}) {o.status}{reason}"


def _object_headline(o: ObjectDiff) -> str:
    note = f" ({o.note})" if o.note else ""
    return f"{o.ref} {o.action}{note}"


_LIVE_SYMBOL = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.PRUNE: "-",
    Action.CONFLICT: "!",
    Action.KEEP: "=",
    Action.UNCHANGED: " ",
}


def _live_lines(change: LiveChange) -> list[str]:
    if change.drift == "modified":
        verb = "drifted: " + (
            "the merge would overwrite it" if change.self_heal else "kept (selfHeal is off)"
        )
    elif change.drift == "missing":
        verb = "missing: " + (
            "would be re-created" if change.self_heal else "kept missing (selfHeal is off)"
        )
    elif change.drift == "unmanaged":
        verb = "unmanaged"
    else:
        verb = {Action.CREATE: "create", Action.UPDATE: "update", Action.PRUNE: "prune"}.get(
            change.action, str(change.action)
        )
    symbol = "!" if change.drift else _LIVE_SYMBOL[change.action]
    message = f" ({change.message})" if change.message and change.drift != "missing" else ""
    lines = [f"{symbol} {change.ref} {verb}{message}"]
    for f in change.fields:
        who = ""
        if f.manager:
            who = f"  (live value set by {f.manager}" + (f" at {f.time})" if f.time else ")")
        lines.append(f"    {f.path}: live {show_value(f.live)} → head {show_value(f.head)}{who}")
    return lines


def _live_by_cluster(live: Sequence[LiveTarget]) -> dict[str, list[LiveTarget]]:
    out: dict[str, list[LiveTarget]] = {}
    for target in live:
        out.setdefault(target.cluster, []).append(target)
    return dict(sorted(out.items()))


# ---- text ----------------------------------------------------------------------------------


def to_text(review: Review) -> str:
    """Plain text for terminals and logs: everything, no size cap."""
    lines = [f"reconciler plan {review.base.short}..{review.head.short}"]
    if review.blocking:
        lines.append(
            f"BLOCKING: head does not validate ({_plural(len(review.blocking), 'problem')})"
        )
        lines += [f"  {p}" for p in review.blocking]
    lines.append(summary(review))
    lines += [f"note: {n}" for n in review.notes]
    if review.inventory:
        lines.append("cluster inventory:")
        lines += [f"  {i}" for i in review.inventory]
    for app in review.changed_apps:
        lines.append(f"app {app.app}: {_app_headline(app)}")
        lines += [f"  app.yaml: {s}" for s in app.spec_changes]
        for c in app.clusters:
            if not c.differs:
                lines.append(f"  cluster {c.cluster}: unchanged")
                continue
            lines.append(f"  cluster {c.cluster}: {c.status}")
            if c.status in (ClusterStatus.GAINED, ClusterStatus.LOST, ClusterStatus.PAUSED):
                lines.append(f"    placement: {_placement_line(c)}")
            if c.error:
                lines.append(f"    error: {c.error}")
            if c.note:
                lines.append(f"    note: {c.note}")
            for o in c.overrides:
                lines.append(f"    {_override_headline(o)}")
                lines += [f"        {x}" for x in o.changes]
                lines += [f"        was: {x}" for x in o.before]
            for obj in c.objects:
                lines.append(f"    {_object_headline(obj)}")
                lines += [f"        {x}" for x in obj.diff.splitlines()]
    unchanged = [a.app for a in review.apps if a.status is AppStatus.UNCHANGED]
    if unchanged:
        lines.append(f"unchanged apps: {', '.join(unchanged)}")
    if review.live is not None:
        lines.append(f"live dry-run of head (instance {review.live_instance}):")
        lines += _live_text(review.live)
    if not review.has_changes and not review.blocking:
        lines.append("no changes")
    return "\n".join(lines)


def _live_text(live: Sequence[LiveTarget]) -> list[str]:
    lines: list[str] = []
    for cluster, targets in _live_by_cluster(live).items():
        down = next((t for t in targets if t.unreachable), None)
        if down is not None:
            lines.append(f"  cluster {cluster}: UNREACHABLE: {down.error}")
            continue
        lines.append(f"  cluster {cluster}:")
        for t in targets:
            label = f"    app {t.app}" + (" (no longer placed here)" if t.departed else "")
            if t.error:
                lines.append(f"{label}: error: {t.error}")
            elif not t.changes:
                lines.append(f"{label}: no changes")
            else:
                lines.append(label)
                lines += [f"      {x}" for x in (y for c in t.changes for y in _live_lines(c))]
    if not live:
        lines.append("  nothing placed on any cluster")
    return lines


# ---- JSON ----------------------------------------------------------------------------------


def to_json(review: Review) -> str:
    """Everything in the plan as JSON (object bodies never: only masked diffs)."""

    def ref(r: ObjectRef) -> dict[str, str]:
        return {"object": str(r), **asdict(r)}

    data: dict[str, Any] = {
        "base": {"rev": review.base.rev, "sha": review.base.sha},
        "head": {"rev": review.head.rev, "sha": review.head.sha},
        "blocking": review.blocking,
        "notes": review.notes,
        "summary": summary(review),
        "hasChanges": review.has_changes,
        "hasErrors": review.has_errors,
        "inventory": review.inventory,
        "apps": [
            {
                "app": a.app,
                "status": a.status.value,
                "specChanges": a.spec_changes,
                "clusters": [
                    {
                        "cluster": c.cluster,
                        "status": c.status.value,
                        "reasons": c.reasons,
                        "before": c.before,
                        "causes": c.causes,
                        "error": c.error,
                        "note": c.note,
                        "overrides": [asdict(o) for o in c.overrides],
                        "objects": [
                            {**ref(o.ref), "action": o.action.value, "diff": o.diff, "note": o.note}
                            for o in c.objects
                        ],
                    }
                    for c in a.clusters
                ],
            }
            for a in review.apps
        ],
        "live": None,
    }
    if review.live is not None:
        data["live"] = {
            "instance": review.live_instance,
            "targets": [
                {
                    "app": t.app,
                    "cluster": t.cluster,
                    "departed": t.departed,
                    "unreachable": t.unreachable,
                    "error": t.error,
                    "changes": [
                        {
                            **ref(c.ref),
                            "action": c.action.value,
                            "drift": c.drift,
                            "message": c.message,
                            "managers": list(c.managers),
                            "selfHeal": c.self_heal,
                            "fields": [asdict(f) for f in c.fields],
                        }
                        for c in t.changes
                    ],
                }
                for t in review.live
            ],
        }
    return json.dumps(data, indent=2, sort_keys=True, default=str, ensure_ascii=False)


# ---- Markdown ------------------------------------------------------------------------------


def _longest_backtick_run(text: str) -> int:
    longest = current = 0
    for ch in text:
        current = current + 1 if ch == "`" else 0
        longest = max(longest, current)
    return longest


def _code(text: str) -> str:
    """Inline code that survives backticks in the text."""
    text = text.replace("\n", " ")
    fence = "`" * (_longest_backtick_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _fenced(body: str, lang: str = "diff") -> list[str]:
    fence = "`" * max(3, _longest_backtick_run(body) + 1)
    return [f"{fence}{lang}", *body.splitlines(), fence]


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_app(app: AppReview, full: bool) -> str:
    lines = [
        f"<details><summary><b>{_html(app.app)}</b> · {_html(_app_headline(app))}</summary>",
        "",
    ]
    if app.spec_changes:
        lines.append("**app.yaml:** " + ", ".join(_code(s) for s in app.spec_changes))
        lines.append("")
    placement = [c for c in app.clusters if c.status is not ClusterStatus.CHANGED]
    moved = [c for c in placement if c.status is not ClusterStatus.UNCHANGED]
    if moved:
        lines.append("**Placement**")
        lines.append("")
        for c in moved:
            lines.append(f"- **{c.status}** {_code(c.cluster)}" + _md_why(c))
        lines.append("")
    same = [c.cluster for c in app.clusters if c.status is ClusterStatus.UNCHANGED]
    if same:
        lines.append("Unchanged on " + ", ".join(_code(c) for c in same) + ".")
        lines.append("")
    for names, c in _same_details(app.app, app.clusters):
        lines.append(f"#### {', '.join(_code(n) for n in names)} · {c.status}")
        lines.append("")
        if c.error:
            lines += [f"**render error:** {_code(_clip(_error_message(app.app, c)))}", ""]
        if c.note:
            lines += [f"_Note: {_html(c.note)}_", ""]
        for o in c.overrides:
            reason = f" — {_html(o.reason)}" if o.reason else ""
            lines.append(f"- override {_code(o.name)} ({_code(o.where)}) **{o.status}**{reason}")
            lines += [f"  - {_code(x)}" for x in o.changes]
            lines += [f"  - was: {_code(x)}" for x in o.before]
        if c.overrides:
            lines.append("")
        for obj in c.objects:
            note = f" — {_html(obj.note)}" if obj.note else ""
            lines.append(f"- **{obj.action}** {_code(str(obj.ref))}{note}")
            if full and obj.diff:
                lines.append("")
                lines += ["  " + x if x else x for x in _fenced(obj.diff)]
        lines.append("")
    if not full and any(c.objects for c in app.clusters):
        lines += ["_Diffs omitted to stay under the size cap._", ""]
    lines += ["</details>", ""]
    return "\n".join(lines)


def _same_details(
    app: str, clusters: Sequence[ClusterReview]
) -> list[tuple[list[str], ClusterReview]]:
    """Clusters with identical details, shown once: 100 edge clusters, one diff."""
    groups: dict[Any, tuple[list[str], ClusterReview]] = {}
    for c in clusters:
        if not c.differs or c.status is ClusterStatus.PAUSED:
            continue
        error = _error_message(app, c) if c.error else None
        key = (c.status, tuple(c.objects), tuple(c.overrides), error, c.note)
        groups.setdefault(key, ([], c))[0].append(c.cluster)
    return list(groups.values())


def _md_why(c: ClusterReview) -> str:
    parts = []
    if c.reasons:
        parts.append(": " + _html("; ".join(c.reasons)))
    if c.causes:
        parts.append(" — **because** " + _html("; ".join(c.causes)))
    if c.before:
        parts.append(" (before: " + _html("; ".join(c.before)) + ")")
    if c.note:
        parts.append(f" _{_html(c.note)}_")
    return "".join(parts)


def _error_message(app: str, c: ClusterReview) -> str:
    """A cluster's render error without the ``app A, cluster C:`` that its heading says."""
    error = c.error or ""
    prefix = f"app {app}, cluster {c.cluster}: "
    return error[len(prefix) :] if error.startswith(prefix) else error


def _clip(text: str, limit: int = _MAX_LINE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _size(lines: Sequence[str]) -> int:
    return sum(len(line) + 1 for line in lines)


def _fit(items: Sequence[str], budget: int) -> tuple[list[str], int]:
    """The leading ``items`` (lines, or blocks of lines) that fit in ``budget`` characters, and
    how many were left out."""
    shown: list[str] = []
    used = 0
    for item in items:
        used += len(item) + 1
        if used > budget:
            break
        shown.append(item)
    return shown, len(items) - len(shown)


@dataclass(frozen=True)
class _Problem:
    """A blocking problem in Markdown: one config problem, or one render error of an app on
    every cluster where it is the same."""

    text: str
    app: str | None = None
    clusters: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return max(1, len(self.clusters))

    def line(self, limit: int) -> str:
        if self.app is None:
            return f"- {_code(_clip(self.text, limit))}"
        names = ", ".join(_code(c) for c in self.clusters[:_MAX_NAMES])
        if len(self.clusters) > _MAX_NAMES:
            names += f" and {len(self.clusters) - _MAX_NAMES} more clusters"
        return f"- app {_code(self.app)} on {names}: {_code(_clip(self.text, limit))}"


def _blocking_problems(review: Review) -> list[_Problem]:
    """``review.blocking`` in order, identical render errors of an app grouped across clusters."""
    render: dict[str, tuple[str, str, str]] = {}
    for a in review.apps:
        for c in a.clusters:
            if c.error:
                render[c.error] = (a.app, c.cluster, _error_message(a.app, c))
    groups: dict[tuple[str | None, str], list[str]] = {}
    for problem in review.blocking:
        if problem in render:
            app, cluster, message = render[problem]
            groups.setdefault((app, message), []).append(cluster)
        else:
            groups.setdefault((None, problem), [])
    return [_Problem(text, app, tuple(clusters)) for (app, text), clusters in groups.items()]


def _md_blocking(review: Review, budget: int) -> tuple[list[str], int]:
    """The blocking section within ``budget``, and how many problems it does not list."""
    problems = _blocking_problems(review)
    lines = [
        f"### :x: Blocking: head does not validate ({_plural(len(review.blocking), 'problem')})",
        "",
    ]
    room = budget - _size(lines)
    limit = min(_MAX_LINE, max(80, room // 4))  # a small cap still shows a few problems
    shown, missing = _fit([p.line(limit) for p in problems], room)
    lines += shown
    hidden = sum(p.count for p in problems[len(shown) :]) if missing else 0
    if hidden:
        more = _plural(hidden, "more problem")
        lines.append(f"- … {more} (size cap: `-o text` lists them all)")
    lines.append("")
    return lines, hidden


def _md_capped(items: Sequence[str], budget: int, more: str, noun: str) -> tuple[list[str], int]:
    """``items`` that fit in ``budget``, then ``more`` with the count left out: ``{} notes``."""
    shown, missing = _fit(items, budget)
    if missing:
        shown.append(more.format(_plural(missing, f"more {noun}")))
    return shown, missing


def _md_live(review: Review, full: bool, budget: int | None = None) -> str:
    """The live section; with ``budget``, the targets that fit and a count of the rest."""
    assert review.live is not None
    lines = [f"### Live dry-run of head (instance {_code(review.live_instance)})", ""]
    if not review.live:
        lines += ["Nothing is placed on any cluster.", ""]
    items: list[str] = []  # one per unreachable cluster or per target, each a block of lines
    for cluster, targets in _live_by_cluster(review.live).items():
        down = next((t for t in targets if t.unreachable), None)
        if down is not None:
            error = _clip(down.error or "")
            items.append(f"- {_code(cluster)}: **unreachable** — {_code(error)}\n")
            continue
        for t in targets:
            label = f"- {_code(cluster)} / {_code(t.app)}"
            if t.departed:
                label += " (no longer placed here)"
            if t.error:
                items.append(f"{label}: **error** {_code(_clip(t.error))}")
            elif not t.changes:
                items.append(f"{label}: no changes")
            else:
                drifted = sum(1 for c in t.changes if c.drift)
                extra = f", {drifted} drifted" if drifted else ""
                block = [f"{label}: {_plural(len(t.changes), 'change')}{extra}"]
                if full:
                    body = "\n".join(x for c in t.changes for x in _live_lines(c))
                    block += ["", *("  " + x for x in _fenced(body)), ""]
                items.append("\n".join(block))
    if budget is not None:
        room = budget - _size(lines) - 100
        items, _ = _md_capped(items, room, "- … {} (size cap)", "target")
    lines += items
    if not full:
        lines += ["", "_Live diffs omitted to stay under the size cap._"]
    lines.append("")
    return "\n".join(lines)


def to_markdown(review: Review, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """A pull-request comment: blocking problems first, summary, one collapsible per app.

    Everything counts against ``max_chars``: identical render errors are listed once for all
    their clusters, and what does not fit is counted instead of listed (blocking problems,
    notes, inventory, live targets); app sections lose their diffs first, then are cut to one
    line. A visible note says so. The same review always gives the same bytes.
    """
    head = [
        MARKER,
        f"## reconciler plan {_code(review.base.short)} → {_code(review.head.short)}",
        "",
    ]
    summary_lines = [f"**Summary:** {_html(summary(review))}", ""]
    budget = max_chars - _size(head) - _size(summary_lines) - _RESERVE
    left_out: list[str] = []  # for the truncation note
    if review.blocking:
        blocking, hidden = _md_blocking(review, budget // 2)
        if hidden:
            left_out.append(f"{_plural(hidden, 'blocking problem')} not listed")
        head += blocking
        budget -= _size(blocking)
    head += summary_lines
    limit = min(_MAX_LINE, max(80, budget // 8))  # a small cap still shows a note
    notes = [f"> **Note:** {_html(_clip(n, limit))}\n" for n in review.notes]
    more = "> **Note:** … {} (size cap)\n"
    shown, missing = _md_capped(notes, budget // 4, more, "note")
    if missing:
        left_out.append(f"{_plural(missing, 'note')} not listed")
    head += shown
    budget -= _size(shown)
    if review.inventory:
        items = [f"- {_html(_clip(i, limit))}" for i in review.inventory]
        shown, missing = _md_capped(items, budget // 4, "- … {} (size cap)", "change")
        if missing:
            left_out.append(f"{_plural(missing, 'inventory change')} not listed")
        inventory = ["**Cluster inventory**", "", *shown, ""]
        head += inventory
        budget -= _size(inventory)
    if not review.has_changes and not review.blocking:
        head += ["No changes.", ""]

    tail = []
    unchanged = [_code(a.app) for a in review.apps if a.status is AppStatus.UNCHANGED]
    if unchanged:
        names, missing = _fit([f"{n}, " for n in unchanged], budget // 4)
        more = f"and {missing} more" if missing else ""
        tail += [("Unchanged apps: " + "".join(names) + more).removesuffix(", "), ""]
        budget -= _size(tail)

    live = ""
    shortened = omitted = 0
    if review.live is not None:
        live = _md_live(review, full=True)
        if len(live) > budget // 2:
            live = _md_live(review, full=False, budget=budget // 2)
            shortened += 1
        budget -= len(live)
    sections: list[str] = []
    if review.changed_apps:
        sections += ["### Apps", ""]
        budget -= _size(sections)
    for app in review.changed_apps:
        full = _md_app(app, full=True)
        if len(full) <= budget:
            sections.append(full)
            budget -= len(full) + 1
            continue
        compact = _md_app(app, full=False)
        if len(compact) <= budget:
            sections.append(compact)
            budget -= len(compact) + 1
            shortened += 1
            continue
        stub = (
            f"- **{_html(app.app)}** · {_html(_app_headline(app))} _(details omitted: size cap)_\n"
        )
        if len(stub) <= budget:
            sections.append(stub)
            budget -= len(stub) + 1
        omitted += 1
    if omitted:
        sections.append("")
    if shortened or omitted or left_out:
        also = "".join(f", {x}" for x in left_out)
        note = (
            f"> **Truncated** to stay under {max_chars} characters: "
            f"{_plural(shortened, 'section')} without diffs, {_plural(omitted, 'app')} without "
            f"details{also}. Run `reconciler plan` with `-o text` or `-o json` for the full plan."
        )
        head += [note, ""]
    return "\n".join([*head, *sections, live, *tail]).rstrip("\n") + "\n"
