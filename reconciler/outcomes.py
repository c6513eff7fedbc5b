"""Pure formatting of reconcile outcomes (``diff`` and ``apply``): text, JSON, Markdown.

Every field line names its sides (``spec.replicas: git 5, live 7 (live set by kubectl-edit
at …)``), pending change or drift alike. Secret values arrive masked from the plan.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import click

from reconciler.engine import TargetOutcome
from reconciler.errors import RenderError, app_prefix
from reconciler.fields import Drift, FieldChange
from reconciler.presentation import (
    by_message,
    clusters_phrase,
    field_line,
    fields_json,
    format_time,
    format_value,
)
from reconciler.sync.model import Action, Change

_SYMBOL = {
    Action.CREATE: ("+", "green"),
    Action.UPDATE: ("~", "yellow"),
    Action.PRUNE: ("-", "red"),
    Action.CONFLICT: ("!", "red"),
    Action.KEEP: ("=", "blue"),
    Action.UNCHANGED: (" ", "white"),
}


def _line(f: FieldChange, change: Change) -> str:
    """A field line; in a drifted object, Git's own changes since the last apply say so."""
    pending = change.drift is not None and not change.drifted(f)
    return field_line(f) + ("  (pending Git change)" if pending else "")


def _headline(change: Change) -> str:
    if change.drift is not None:
        verb = {"modified": "drifted", "missing": "missing", "unmanaged": "unmanaged"}[
            change.drift.value
        ]
    elif change.after_crd:
        verb = "create (after CRD)"
    else:
        verb = change.action.value
    extra = f": {change.message}" if change.message and change.drift is None else ""
    if change.drift is not None and change.message:
        extra = f" ({change.message})"
    return f"{change.ref} {verb}{extra}"


def _shown(outcome: TargetOutcome, unchanged: bool = False) -> list[Change]:
    """The changes to show: pending ones and drift (and, ``unchanged``, every object)."""
    if outcome.plan is None:
        return []
    return [
        c for c in outcome.plan.changes if unchanged or c.action is not Action.UNCHANGED or c.drift
    ]


def has_changes(outcomes: Iterable[TargetOutcome]) -> bool:
    """Anything apply would do, or drift. Objects kept on purpose (prune disabled) are shown
    but do not count: they would keep a CI gate red forever."""
    return any(
        c.action is not Action.KEEP or c.drift is not None for o in outcomes for c in _shown(o)
    )


def has_errors(outcomes: Iterable[TargetOutcome]) -> bool:
    return any(not o.ok for o in outcomes)


def has_conflicts(outcomes: Iterable[TargetOutcome]) -> bool:
    """Objects left unapplied because another manager or app owns them."""
    return any(c.action is Action.CONFLICT for o in outcomes if o.plan for c in o.plan.changes)


def _style(text: str, color: bool, fg: str, bold: bool = False) -> str:
    return click.style(text, fg=fg, bold=bold) if color else text


def _cluster_error(outcomes: Sequence[TargetOutcome]) -> str | None:
    """The one error every app of a cluster failed with (unreachable, no context, ...)."""
    messages = {str(o.error) if o.error is not None else None for o in outcomes}
    if len(outcomes) > 1 and len(messages) == 1 and None not in messages:
        return f"error for all {len(outcomes)} apps: {messages.pop()}"
    return None


def _unrendered(outcomes: Iterable[TargetOutcome]) -> list[tuple[tuple[str, str], list[str]]]:
    """Targets that do not render, once per app and error: ``((app, error), clusters)``."""
    return by_message(
        ((o.error.app, o.error.message), o.cluster)
        for o in outcomes
        if isinstance(o.error, RenderError)
    )


def _render_error(app: str, message: str, clusters: Sequence[str]) -> str:
    """``app web, clusters a, b: <error>``, as ``validate`` says it."""
    return app_prefix(app, clusters_phrase(clusters)) + message


def _rendered(outcomes: Sequence[TargetOutcome]) -> list[TargetOutcome]:
    """The outcomes listed per cluster: all but render errors (said once for all clusters)."""
    return [o for o in outcomes if not isinstance(o.error, RenderError)]


def diff_text(outcomes: Sequence[TargetOutcome], color: bool, wide: bool = False) -> str:
    """Human diff, grouped by cluster then app; render errors once across clusters; a summary
    line last. ``wide`` lists the unchanged objects too."""
    lines: list[str] = []
    listed = _rendered(outcomes)
    for cluster in sorted({o.cluster for o in listed}):
        lines.append(_style(f"cluster {cluster}", color, "cyan", bold=True))
        mine = [o for o in listed if o.cluster == cluster]
        if (shared := _cluster_error(mine)) is not None:
            lines.append(_style(f"  {shared}", color, "red"))
            continue
        for o in mine:
            label = f"  app {o.app}" + (" (no longer placed here)" if o.departed else "")
            if o.error is not None:
                lines.append(_style(f"{label}: error: {o.error}", color, "red"))
                continue
            shown = _shown(o, unchanged=wide)
            if not _shown(o):
                lines.append(f"{label}: no changes")
                if not shown:
                    continue
            else:
                lines.append(label)
            for change in shown:
                symbol, fg = ("►", "magenta") if change.drift else _SYMBOL[change.action]
                lines.append("    " + _style(f"{symbol} {_headline(change)}", color, fg))
                for f in change.fields:
                    lines.append("        " + _line(f, change))
    for (app, message), clusters in _unrendered(outcomes):
        lines.append(_style(f"error: {_render_error(app, message, clusters)}", color, "red"))
    lines.append(diff_summary(outcomes))
    return "\n".join(lines)


def diff_summary(outcomes: Sequence[TargetOutcome]) -> str:
    changes = sum(len(_shown(o)) for o in outcomes)
    drifted = sum(1 for o in outcomes for c in _shown(o) if c.drift)
    errors = [o for o in outcomes if o.error is not None]
    clusters = len({o.cluster for o in outcomes})
    parts = [f"{changes} change{'s' if changes != 1 else ''}"]
    if drifted:
        parts.append(f"{drifted} drifted")
    if errors:
        parts.append(f"{len(errors)} error{'s' if len(errors) != 1 else ''}")
    apps = len({o.app for o in outcomes})
    return (
        f"{apps} app{'s' if apps != 1 else ''} on {clusters} cluster"
        + ("s" if clusters != 1 else "")
        + ": "
        + ", ".join(parts)
    )


def _change_json(change: Change) -> dict[str, Any]:
    return {
        "object": str(change.ref),
        "group": change.ref.group,
        "kind": change.ref.kind,
        "namespace": change.ref.namespace,
        "name": change.ref.name,
        "action": change.action.value,
        "drift": change.drift.value if change.drift else None,
        "after_crd": change.after_crd,
        "managers": change.managers,
        "message": change.message,
        "fields": fields_json(change.fields, git="desired", live="live"),
    }


def diff_data(outcomes: Sequence[TargetOutcome]) -> list[dict[str, Any]]:
    """``diff -o json|yaml``: per target, its pending changes and drift."""
    return [
        {
            "app": o.app,
            "cluster": o.cluster,
            "departed": o.departed,
            "error": str(o.error) if o.error else None,
            "unreachable": o.unreachable,
            "changes": [_change_json(c) for c in _shown(o)],
        }
        for o in outcomes
    ]


def diff_json(outcomes: Sequence[TargetOutcome]) -> str:
    return json.dumps(diff_data(outcomes), indent=2, sort_keys=True, default=str)


def apply_data(outcomes: Sequence[TargetOutcome], heal: bool = False) -> list[dict[str, Any]]:
    """``apply -o json|yaml``: per target, the objects created, configured, unchanged, pruned,
    skipped (why), failed (why) and whose drift was corrected; with ``heal``, each healed
    object with its drifted fields (``live`` what it was, ``git`` what it is again)."""
    out = []
    for o in outcomes:
        r = o.result
        healed: dict[str, Any] = {}
        if heal:
            healed["healed"] = [
                {
                    "object": str(c.ref),
                    "fields": fields_json(c.drift_fields, git="git", live="live"),
                }
                for c in (o.plan.changes if o.plan is not None else [])
                if r is not None and c.drift is not None and c.ref in r.corrected
            ]
        out.append(
            healed
            | {
                "app": o.app,
                "cluster": o.cluster,
                "departed": o.departed,
                "error": str(o.error) if o.error else None,
                "unreachable": o.unreachable,
                "revision": r.revision if r else None,
                "created": [str(ref) for ref in r.created] if r else [],
                "configured": [str(ref) for ref in r.configured] if r else [],
                "unchanged": [str(ref) for ref in r.unchanged] if r else [],
                "pruned": [str(ref) for ref in r.pruned] if r else [],
                "corrected": [str(ref) for ref in r.corrected] if r else [],
                "skipped": [{"object": str(ref), "reason": why} for ref, why in r.skipped]
                if r
                else [],
                "failed": [{"object": str(ref), "reason": why} for ref, why in r.failed]
                if r
                else [],
            }
        )
    return out


def diff_markdown(outcomes: Sequence[TargetOutcome]) -> str:
    """One collapsible section per target with changes or an error; a render error once for
    every cluster where the app fails with it."""
    lines = ["## reconciler diff", "", diff_summary(outcomes), ""]
    for (app, message), clusters in _unrendered(outcomes):
        where = clusters_phrase(clusters)
        lines += [f"<details><summary><b>{app}</b> on <b>{where}</b></summary>", ""]
        lines += [f"**error:** `{_render_error(app, message, clusters)}`", "", "</details>", ""]
    for o in _rendered(outcomes):
        shown = _shown(o)
        if o.error is None and not shown:
            continue
        lines.append(f"<details><summary><b>{o.app}</b> on <b>{o.cluster}</b></summary>")
        lines.append("")
        if o.error is not None:
            lines += [f"**error:** `{o.error}`", ""]
        if shown:  # an error alone gets no empty diff block
            lines.append("```diff")
            for change in shown:
                symbol = "!" if change.drift else _SYMBOL[change.action][0]
                lines.append(f"{symbol} {_headline(change)}")
                for f in change.fields:
                    lines.append(f"    {_line(f, change)}")
            lines += ["```", ""]
        lines += ["</details>", ""]
    return "\n".join(lines)


def apply_text(outcomes: Sequence[TargetOutcome], color: bool, wide: bool = False) -> str:
    """Per cluster and app: what was created, configured, unchanged, pruned; summary last.
    ``wide`` lists the unchanged objects too."""
    lines: list[str] = []
    totals = {"created": 0, "configured": 0, "unchanged": 0, "pruned": 0, "skipped": 0}
    unrendered = _unrendered(outcomes)
    failures = sum(len(clusters) for _, clusters in unrendered)
    listed = _rendered(outcomes)
    for cluster in sorted({o.cluster for o in listed}):
        lines.append(_style(f"cluster {cluster}", color, "cyan", bold=True))
        mine = [o for o in listed if o.cluster == cluster]
        if (shared := _cluster_error(mine)) is not None:
            failures += len(mine)
            lines.append(_style(f"  {shared}", color, "red"))
            continue
        for o in mine:
            if o.error is not None or o.result is None:
                failures += 1
                lines.append(_style(f"  app {o.app}: error: {o.error}", color, "red"))
                continue
            r = o.result
            counts = {action: n for action, n in r.counts().items() if action != "failed"}
            for key, n in counts.items():
                totals[key] += n
            summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
            lines.append(f"  app {o.app}: {summary or 'nothing to do'}")
            for verb, refs in (("created", r.created), ("configured", r.configured)):
                for ref in refs:
                    fixed = " (drift corrected)" if ref in r.corrected else ""
                    lines.append(_style(f"    {verb} {ref}{fixed}", color, "green"))
            for ref in r.pruned:
                lines.append(_style(f"    pruned {ref}", color, "red"))
            for ref in r.unchanged if wide else ():
                lines.append(f"    unchanged {ref}")
            for ref, why in r.skipped:
                lines.append(_style(f"    skipped {ref}: {why}", color, "yellow"))
            for ref, why in r.failed:
                failures += 1
                lines.append(_style(f"    failed {ref}: {why}", color, "red"))
    for (app, message), names in unrendered:
        lines.append(_style(f"error: {_render_error(app, message, names)}", color, "red"))
    clusters = len({o.cluster for o in outcomes})
    done = ", ".join(f"{n} {k}" for k, n in totals.items())
    tail = f"; {failures} error{'s' if failures != 1 else ''}" if failures else ""
    lines.append(f"applied {len(outcomes)} targets on {clusters} clusters: {done}{tail}")
    return "\n".join(lines)


def healed_objects(outcomes: Iterable[TargetOutcome]) -> list[tuple[str, str, str]]:
    """(app, cluster, object) of every drifted object the apply corrected."""
    return [
        (o.app, o.cluster, str(change.ref))
        for o in outcomes
        if o.plan is not None and o.result is not None
        for change in o.plan.changes
        if change.drift is not None and change.ref in o.result.corrected
    ]


def healed_text(outcomes: Sequence[TargetOutcome], color: bool) -> str:
    """What ``apply --heal`` corrected: per object, each drifted field from live back to Git.

    ``healed 1 field on ConfigMap/ns/web (app web, cluster us-west-1):`` then one line per field,
    ``data.mode: live "edited" → git "git" (live set by kubectl-edit at …)``."""
    lines: list[str] = []
    for o in outcomes:
        if o.plan is None or o.result is None:
            continue
        for change in o.plan.changes:
            if change.drift is None or change.ref not in o.result.corrected:
                continue
            where = f"(app {o.app}, cluster {o.cluster})"
            fields = change.drift_fields
            if change.drift is Drift.MISSING or not fields:
                lines.append(_style(f"healed {change.ref} {where}: re-created", color, "green"))
                continue
            count = f"{len(fields)} field{'s' if len(fields) != 1 else ''}"
            lines.append(_style(f"healed {count} on {change.ref} {where}:", color, "green"))
            lines += [f"  {healed_line(f)}" for f in fields]
    return "\n".join(lines) if lines else "nothing to heal: no drift found"


def healed_line(f: FieldChange) -> str:
    """One healed field, live value first: what it was, then what Git made it again."""
    line = f"{f.path}: live {format_value(f.live)} → git {format_value(f.git)}"
    if not f.manager:
        return line
    when = f" at {format_time(f.time)}" if f.time else ""
    return f"{line} (live set by {f.manager}{when})"
