"""Offline CLI commands: ``render``, ``explain``, ``validate`` (no cluster needed).

Exit codes: 0 success, 2 invalid repo or failed render. Errors are one line each on stderr.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from reconciler.charts.model import ChartLock
from reconciler.cli.common import (
    EXIT_ERROR,
    ChartSources,
    chart_options,
    cluster_of_context,
    context_option,
    lock_charts,
    repo_argument,
)
from reconciler.cli.output import DATA, emit, output_option
from reconciler.cli.stagewarnings import rollout_warnings
from reconciler.config.load import load_repo
from reconciler.config.model import App, Repo
from reconciler.errors import ChartError, ConfigError, RenderError, app_prefix
from reconciler.loading import load_and_render
from reconciler.masking import show_override_change
from reconciler.objects import ObjectRef
from reconciler.overrides import OverrideEffect, unplaced_overrides
from reconciler.placement import no_target_reason, place, select, targets
from reconciler.presentation import CLUSTERS, once_per_message
from reconciler.render import TargetResult, render_target


def register_render_commands(cli_group: click.Group) -> None:
    """Add ``render``, ``explain`` and ``validate`` to ``cli_group``."""
    cli_group.add_command(render_command)
    cli_group.add_command(explain_command)
    cli_group.add_command(validate_command)


def _fail(lines: Iterable[str]) -> NoReturn:
    for line in lines:
        click.echo(f"error: {line}", err=True)
    sys.exit(EXIT_ERROR)


def _load(root: Path) -> Repo:
    try:
        return load_repo(root)
    except ConfigError as err:
        _fail_config(root, err)


def _load_and_render(
    root: Path,
    chart_sources: ChartSources,
    apps: list[str] | None = None,
    clusters: list[str] | None = None,
    check: Callable[[Repo], None] | None = None,
) -> tuple[Repo, list[TargetResult]]:
    """Load, ``check`` the loaded repo (names asked for), lock its charts, render; or fail."""

    def lock(repo: Repo) -> ChartLock:
        if check is not None:
            check(repo)
        return _charts(repo, chart_sources, apps)

    try:
        loaded = load_and_render(root, apps=apps, clusters=clusters, lock=lock)
    except ConfigError as err:
        _fail_config(root, err)
    return loaded.repo, loaded.targets


def _fail_config(root: Path, err: ConfigError) -> NoReturn:
    _fail([*(str(p) for p in err.problems), f"{len(err.problems)} problem(s) in {root}"])


def _charts(repo: Repo, sources: ChartSources, apps: Iterable[str] | None = None) -> ChartLock:
    try:
        return lock_charts(repo, sources.resolver(), apps)
    except ChartError as err:
        _fail([str(err)])


def _check_name(kind: str, name: str | None, known: Iterable[str]) -> None:
    if name is None or name in known:
        return
    close = difflib.get_close_matches(name, list(known), n=1)
    _fail([f"unknown {kind} {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")])


@click.command("render")
@repo_argument
@click.option("--app", "app_name", help="Only this app.")
@click.option("--cluster", "cluster_name", help="Only this cluster.")
@context_option
@click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    help="yaml: the objects as multi-document YAML, each target under a comment naming it "
    "(what kubectl apply -f reads); json: a list of {app, cluster, objects}.",
)
@chart_options
def render_command(
    repo: Path,
    app_name: str | None,
    cluster_name: str | None,
    context: str | None,
    output: str,
    chart_sources: ChartSources,
) -> None:
    """Print the desired objects per app and cluster, offline, as YAML (or JSON).

    Secret values are printed as they are in Git (this is the repo's own content, nothing is
    read from a cluster): mind where the output goes. `explain`, `diff` and `plan` mask them.
    """
    if context is not None:
        cluster_name = cluster_of_context(_load(repo), context, cluster_name)
    apps = [app_name] if app_name else None
    clusters = [cluster_name] if cluster_name else None

    def check(loaded: Repo) -> None:
        _check_name("app", app_name, loaded.apps)
        _check_name("cluster", cluster_name, loaded.clusters)

    loaded, results = _load_and_render(repo, chart_sources, apps, clusters, check)
    good = [r for r in results if r.rendered is not None]
    if output == "json":
        click.echo(json.dumps([_as_json(r) for r in good], indent=2))
    else:
        click.echo(render_yaml(good), nl=False)
    if not results and app_name and cluster_name:
        placed = next(p for p in place(loaded, loaded.apps[app_name]) if p.cluster == cluster_name)
        why = "the cluster is paused" if placed.placed else "it is not placed there"
        click.echo(
            f"note: app {app_name} is not deployed to cluster {cluster_name}: {why}", err=True
        )
    errors = grouped_errors(results) + shared_objects(loaded, results)
    if errors:
        _fail(errors)


def _as_json(result: TargetResult) -> dict[str, Any]:
    assert result.rendered is not None
    return {"app": result.app, "cluster": result.cluster, "objects": result.rendered.objects}


def render_yaml(results: Iterable[TargetResult]) -> str:
    """Multi-document YAML, each target introduced by a comment naming app and cluster."""
    chunks: list[str] = []
    for result in results:
        assert result.rendered is not None
        chunks.append(f"# app: {result.app}, cluster: {result.cluster}\n")
        for obj in result.rendered.objects:
            chunks.append("---\n" + yaml.safe_dump(obj, sort_keys=False, width=1000))
    return "".join(chunks)


@click.command("explain")
@repo_argument
@click.option("--app", "app_name", required=True, help="The app.")
@click.option("--cluster", "cluster_name", help="The cluster (or --context).")
@context_option
@output_option()
@chart_options
def explain_command(
    repo: Path,
    app_name: str,
    cluster_name: str | None,
    context: str | None,
    output: str,
    chart_sources: ChartSources,
) -> None:
    """Why an app is (not) placed on a cluster, and what each override changes there.

    Secret values an override sets are masked: only that they changed is shown.
    """
    loaded = _load(repo)
    _check_name("app", app_name, loaded.apps)
    if context is not None:
        cluster_name = cluster_of_context(loaded, context, cluster_name)
    if cluster_name is None:
        raise click.UsageError("give the cluster: --cluster NAME or --context CONTEXT")
    _check_name("cluster", cluster_name, loaded.clusters)
    document = _explain(loaded, app_name, cluster_name, chart_sources)
    emit(output, lambda: document, lambda: _explain_text(document))
    for warning in document["warnings"]:
        click.echo(f"warning: {warning}", err=True)


def _explain(
    repo: Repo,
    app_name: str,
    cluster_name: str,
    chart_sources: ChartSources,
) -> dict[str, Any]:
    """What ``explain`` prints, as a document: placement, rendered objects, overrides."""
    app, cluster = repo.apps[app_name], repo.clusters[cluster_name]
    placement = next(p for p in place(repo, app) if p.cluster == cluster_name)
    document: dict[str, Any] = {
        "app": app_name,
        "cluster": cluster_name,
        "placed": placement.placed,
        "paused": placement.paused,
        "reasons": list(placement.reasons),
        "objects": None,
        "overrides": None,
        "warnings": [],
    }
    if not placement.placed:
        return document
    try:
        charts = _charts(repo, chart_sources, [app_name])
        rendered = render_target(repo, app, cluster, charts=charts)
    except RenderError as err:
        _fail([str(err)])
    document["objects"] = [str(ObjectRef.of(o)) for o in rendered.objects]
    document["overrides"] = _overrides(repo, app, cluster_name, rendered.overrides_applied)
    document["warnings"] = [
        *unplaced_overrides(repo, app, targets(repo, app)),
        *rendered.warnings,
    ]
    return document


def _overrides(
    repo: Repo, app: App, cluster_name: str, effects: list[OverrideEffect]
) -> list[dict[str, Any]]:
    """Each override of the app in the order they apply: whether it applies here and why,
    the fields it changes (Secret values masked) and its notes."""
    applied = iter(effects)
    cluster = repo.clusters[cluster_name]
    out = []
    for i, override in enumerate(app.overrides):
        matched, reasons = select(repo, override.target, cluster, "target")
        effect = next(applied) if matched else None
        out.append(
            {
                "index": i + 1,
                "name": override.name,
                "where": app.override_where(i),
                "applies": matched,
                "reasons": list(reasons),
                "changes": [show_override_change(c) for c in effect.changes] if effect else [],
                "notes": list(effect.notes) if effect else [],
            }
        )
    return out


def _explain_text(document: dict[str, Any]) -> str:
    state = "placed" if document["placed"] else "not placed"
    if document["placed"] and document["paused"]:
        state = "placed, but the cluster is paused: skipped"
    lines = [f"app {document['app']} on cluster {document['cluster']}: {state}"]
    lines += [f"  - {reason}" for reason in document["reasons"]]
    if not document["placed"]:
        return "\n".join(lines)
    lines.append(f"renders {len(document['objects'])} object(s)")
    overrides = document["overrides"]
    if not overrides:
        lines.append("overrides: none")
        return "\n".join(lines)
    lines.append("overrides, in the order they apply (later wins):")
    for o in overrides:
        head = f"  {o['index']}. {o['name']} ({o['where']}): "
        if not o["applies"]:
            lines.append(head + f"skipped, {'; '.join(o['reasons'])}")
            continue
        lines.append(head + f"applies, {'; '.join(o['reasons'])}")
        lines += [f"       {change}" for change in o["changes"]]
        lines += [f"       note: {note}" for note in o["notes"]]
        if not o["changes"] and not o["notes"]:
            lines.append("       (changes nothing here)")
    return "\n".join(lines)


def grouped_warnings(results: Iterable[TargetResult]) -> list[str]:
    """Render warnings, one line per warning however many clusters it is given on."""
    lines = []
    for result in results:
        for warning in result.rendered.warnings if result.rendered else []:
            head, _, cluster = warning.rpartition(" on cluster ")
            lines.append((f"{head} on {CLUSTERS}", cluster))
    return sorted(once_per_message(lines))


def grouped_errors(results: Iterable[TargetResult]) -> list[str]:
    """Render errors, one line per error however many clusters it is raised on."""
    return once_per_message(
        (app_prefix(r.error.app, CLUSTERS) + r.error.message, r.error.cluster)
        for r in results
        if r.error is not None
    )


def shared_objects(repo: Repo, results: Iterable[TargetResult]) -> list[str]:
    """Objects two or more apps render on one cluster (apply would refuse the second owner),
    one line per object and apps however many clusters, naming each app's file."""
    owners: dict[tuple[str, ObjectRef], list[str]] = {}
    for result in results:
        for obj in result.rendered.objects if result.rendered else []:
            owners.setdefault((result.cluster, ObjectRef.of(obj)), []).append(result.app)

    def named(app: str) -> str:
        found = repo.apps.get(app)
        return f"{app} ({found.file}:{found.line})" if found else app

    return once_per_message(
        (
            f"object {ref} is rendered by apps {' and '.join(map(named, apps))} on {CLUSTERS}",
            cluster,
        )
        for (cluster, ref), apps in owners.items()
        if len(apps) > 1
    )


@click.command("validate")
@repo_argument
@output_option()
@chart_options
def validate_command(repo: Path, output: str, chart_sources: ChartSources) -> None:
    """Check a config repo (schema, references, templates, charts, renders); exit 2 when invalid.

    Charts from Helm repositories and OCI registries are resolved and fetched (into the chart
    cache) exactly as for rendering. Problems, warnings and notes go to stderr with table, into
    the document with json and yaml.
    """
    document = _validate(repo, chart_sources)
    if output in DATA:
        emit(output, lambda: document, str)
    else:
        for line in document["errors"]:
            click.echo(f"error: {line}", err=True)
        for line in document["warnings"]:
            click.echo(f"warning: {line}", err=True)
        for line in document["notes"]:
            click.echo(f"note: {line}", err=True)
        if document["valid"]:
            click.echo(document["summary"])
        else:
            click.echo(f"error: {document['summary']}", err=True)
    if not document["valid"]:
        sys.exit(EXIT_ERROR)


def _validate(root: Path, chart_sources: ChartSources) -> Any:
    """What ``validate`` found, as a document: valid, counts, errors, warnings, notes."""
    document: dict[str, Any] = {"valid": False, "errors": [], "warnings": [], "notes": []}

    def lock(repo: Repo) -> ChartLock:
        return lock_charts(repo, chart_sources.resolver())

    try:
        rendered = load_and_render(root, lock=lock)
    except ConfigError as err:
        document["errors"] = [str(p) for p in err.problems]
        document["summary"] = f"{len(err.problems)} problem(s) in {root}"
        return document
    except ChartError as err:
        document["errors"] = [str(err)]
        document["summary"] = "1 chart could not be resolved"
        return document
    loaded, results = rendered.repo, rendered.targets
    errors = grouped_errors(results)
    if errors:
        failed = sum(1 for r in results if r.error is not None)
        document["errors"] = errors + shared_objects(loaded, results)
        document["summary"] = f"{failed} target(s) failed to render"
        return document
    shared = shared_objects(loaded, results)
    if shared:
        document["errors"] = shared
        document["summary"] = f"{len(shared)} object(s) rendered by more than one app"
        return document
    for app in loaded.apps.values():
        placed = targets(loaded, app)
        if not placed:
            why = no_target_reason(loaded, app)
            document["notes"].append(f"app {app.name} is placed on no cluster: {why}")
            continue
        document["warnings"] += unplaced_overrides(loaded, app, placed)
        document["warnings"] += rollout_warnings(loaded, app)
    document["warnings"] += grouped_warnings(results)
    counts = {
        "clusters": len(loaded.clusters),
        "groups": len(loaded.groups),
        "apps": len(loaded.apps),
        "targets": len(results),
    }
    document |= counts | {"valid": True}
    document["summary"] = (
        f"valid: {counts['clusters']} cluster(s), {counts['groups']} group(s), "
        f"{counts['apps']} app(s), {counts['targets']} target(s) rendered"
    )
    return document
