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

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reconciler.charts.lock import lock_charts
from reconciler.charts.model import ChartLock
from reconciler.charts.resolver import ChartResolver
from reconciler.config.model import Repo
from reconciler.engine import TargetOutcome, reconcile
from reconciler.errors import ConfigError, RenderError
from reconciler.kube.client import DEFAULT_TIMEOUT
from reconciler.kube.pool import Clients
from reconciler.loading import load_and_render
from reconciler.render import TargetResult
from reconciler.review.compare import compare
from reconciler.review.model import LiveChange, LiveTarget, Review, Revision
from reconciler.source import export_rev, merge_base, resolve_rev
from reconciler.sync.model import DEFAULT_INSTANCE, Action, Change
from reconciler.toolchain import Toolchain


@dataclass(frozen=True)
class LiveOptions:
    """How to reach the clusters for ``--live`` (same meaning as for ``reconciler diff``)."""

    kubeconfig: str | None
    instance: str = DEFAULT_INSTANCE
    timeout: float = DEFAULT_TIMEOUT


def plan(
    repo_path: Path,
    base: str,
    head: str,
    *,
    live: LiveOptions | None = None,
    tools: Toolchain | None = None,
    charts: ChartResolver | None = None,
) -> Review:
    """Export ``base`` and ``head`` of the local Git repo, render both, compare; dry-run head.

    ``repo_path`` may be a directory inside the work tree (a config repo kept in a subfolder).
    ``base`` counts from its merge base with ``head``, as a pull request does: changes made
    on ``base`` since ``head`` branched off are not shown as the head's.
    Raises SourceError when a revision does not exist; an invalid head is reported in
    ``Review.blocking``, an invalid base in ``Review.notes``. Charts from Helm repositories
    and OCI registries are resolved for both sides now, through ``charts`` (as the daemon would
    for a new commit); without a resolver such apps fail to render.
    """
    repo_path = Path(repo_path)
    prefix = _prefix_in_work_tree(repo_path)
    revisions = (
        Revision(base, merge_base(repo_path, base, head)),  # what a pull request diffs from
        Revision(head, resolve_rev(repo_path, head)),
    )
    with tempfile.TemporaryDirectory(prefix="reconciler-plan-") as tmp:
        loaded: list[tuple[Repo | None, list[TargetResult], list[str], ChartLock]] = []
        for side, revision in zip(("base", "head"), revisions, strict=True):
            # Only the config repo's folder: a monorepo's other files are never written.
            tree = export_rev(repo_path, revision.sha, Path(tmp) / side, subdir=prefix)
            if prefix.parts and not any(tree.iterdir()):  # Git has no empty folders
                missing = f"{prefix.as_posix()}: no such folder in {revision.short}"
                loaded.append((None, [], [missing], ChartLock()))
            else:
                loaded.append(_load_side(tree, tools, charts))
        base_repo, base_results, base_problems, base_charts = loaded[0]
        head_repo, head_results, head_problems, head_charts = loaded[1]
        review = compare(
            revisions[0],
            revisions[1],
            base_repo,
            base_results,
            head_repo,
            head_results,
            base_problems=base_problems,
            head_problems=head_problems,
            base_charts=base_charts,
            head_charts=head_charts,
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


def _load_side(
    root: Path, tools: Toolchain | None, resolver: ChartResolver | None
) -> tuple[Repo | None, list[TargetResult], list[str], ChartLock]:
    """One exported revision, loaded and rendered; problems instead of an exception."""

    def lock(repo: Repo) -> ChartLock:
        return lock_charts(repo, resolver) if resolver is not None else ChartLock()

    try:
        repo, results, charts, _ = load_and_render(root, tools=tools, lock=lock)
    except ConfigError as err:
        return None, [], [str(p) for p in err.problems], ChartLock()
    for result in results:
        if result.error is not None:
            # Tool output may name the temp export: keep output stable and paths repo-relative.
            message = _strip_root(result.error.message, root)
            result.error = RenderError(message, app=result.app, cluster=result.cluster)
    return repo, results, [], charts


def _strip_root(text: str, root: Path) -> str:
    """``text`` with ``root`` (as given and resolved) made relative: ``apps/x``, ``.``.

    The longer form goes first, always: one may contain the other (a symlinked TMPDIR), and
    replacing the shorter first would leave the rest of the longer in the text.
    """
    forms = sorted({str(root), str(root.resolve())}, key=lambda f: (-len(f), f))
    for form in forms:
        text = text.replace(form + "/", "").replace(form, ".")
    return text


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
        fields=tuple(change.fields),
        self_heal=self_heal,
    )
