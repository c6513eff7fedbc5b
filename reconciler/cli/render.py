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
    chart_options,
    chart_resolver,
    lock_charts,
    output_option,
    repo_argument,
)
from reconciler.config.load import load_repo
from reconciler.config.model import App, Repo
from reconciler.errors import ChartError, ConfigError, RenderError
from reconciler.loading import load_and_render
from reconciler.masking import show_override_change
from reconciler.overrides import OverrideEffect, unplaced_overrides
from reconciler.placement import place, select, targets
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
    chart_cache: Path | None,
    chart_credentials: Path | None,
    apps: list[str] | None = None,
    clusters: list[str] | None = None,
    check: Callable[[Repo], None] | None = None,
) -> tuple[Repo, list[TargetResult]]:
    """Load, ``check`` the loaded repo (names asked for), lock its charts, render; or fail."""

    def lock(repo: Repo) -> ChartLock:
        if check is not None:
            check(repo)
        return _charts(repo, chart_cache, chart_credentials, apps)

    try:
        loaded = load_and_render(root, apps=apps, clusters=clusters, lock=lock)
    except ConfigError as err:
        _fail_config(root, err)
    return loaded.repo, loaded.targets


def _fail_config(root: Path, err: ConfigError) -> NoReturn:
    _fail([*(str(p) for p in err.problems), f"{len(err.problems)} problem(s) in {root}"])


def _charts(
    repo: Repo, cache: Path | None, credentials: Path | None, apps: Iterable[str] | None = None
) -> ChartLock:
    try:
        return lock_charts(repo, chart_resolver(cache, credentials), apps)
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
@output_option("yaml", "json")
@chart_options
def render_command(
    repo: Path,
    app_name: str | None,
    cluster_name: str | None,
    output: str,
    chart_cache: Path | None,
    chart_credentials: Path | None,
) -> None:
    """Print the desired objects per app and cluster, offline.

    Secret values are printed as they are in Git (this is the repo's own content, nothing is
    read from a cluster): mind where the output goes. `explain`, `diff` and `plan` mask them.
    """
    apps = [app_name] if app_name else None
    clusters = [cluster_name] if cluster_name else None

    def check(loaded: Repo) -> None:
        _check_name("app", app_name, loaded.apps)
        _check_name("cluster", cluster_name, loaded.clusters)

    _, results = _load_and_render(repo, chart_cache, chart_credentials, apps, clusters, check)
    good = [r for r in results if r.rendered is not None]
    if output == "json":
        click.echo(json.dumps([_as_json(r) for r in good], indent=2))
    else:
        click.echo(render_yaml(good), nl=False)
    if not results and app_name and cluster_name:
        click.echo(f"note: app {app_name} is not deployed to cluster {cluster_name}", err=True)
    errors = [r.error for r in results if r.error is not None]
    if errors:
        _fail(str(e) for e in errors)


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
@click.option("--cluster", "cluster_name", required=True, help="The cluster.")
@chart_options
def explain_command(
    repo: Path,
    app_name: str,
    cluster_name: str,
    chart_cache: Path | None,
    chart_credentials: Path | None,
) -> None:
    """Why an app is (not) placed on a cluster, and what each override changes there.

    Secret values an override sets are masked: only that they changed is shown.
    """
    loaded = _load(repo)
    _check_name("app", app_name, loaded.apps)
    _check_name("cluster", cluster_name, loaded.clusters)
    app, cluster = loaded.apps[app_name], loaded.clusters[cluster_name]
    placement = next(p for p in place(loaded, app) if p.cluster == cluster_name)
    state = "placed" if placement.placed else "not placed"
    if placement.placed and placement.paused:
        state = "placed, but the cluster is paused: skipped"
    click.echo(f"app {app_name} on cluster {cluster_name}: {state}")
    for reason in placement.reasons:
        click.echo(f"  - {reason}")
    if not placement.placed:
        return
    try:
        charts = _charts(loaded, chart_cache, chart_credentials, [app_name])
        rendered = render_target(loaded, app, cluster, charts=charts)
    except RenderError as err:
        _fail([str(err)])
    click.echo(f"renders {len(rendered.objects)} object(s)")
    _explain_overrides(loaded, app, cluster_name, rendered.overrides_applied)
    for warning in [*unplaced_overrides(loaded, app, targets(loaded, app)), *rendered.warnings]:
        click.echo(f"warning: {warning}", err=True)


def grouped_warnings(results: Iterable[TargetResult]) -> list[str]:
    """Render warnings, one line per patch however many clusters it misses on."""
    clusters: dict[str, list[str]] = {}
    for result in results:
        for warning in result.rendered.warnings if result.rendered else []:
            head, _, cluster = warning.rpartition(" on cluster ")
            clusters.setdefault(head, []).append(cluster)
    return [
        f"{head} on cluster{'s' if len(names) > 1 else ''} {', '.join(sorted(names))}"
        for head, names in sorted(clusters.items())
    ]


def _explain_overrides(
    repo: Repo, app: App, cluster_name: str, effects: list[OverrideEffect]
) -> None:
    if not app.overrides:
        click.echo("overrides: none")
        return
    click.echo("overrides, in the order they apply (later wins):")
    applied = iter(effects)
    cluster = repo.clusters[cluster_name]
    for i, override in enumerate(app.overrides):
        matched, reasons = select(repo, override.target, cluster, "target")
        where = app.override_where(i)
        if not matched:
            click.echo(f"  {i + 1}. {override.name} ({where}): skipped, {'; '.join(reasons)}")
            continue
        effect = next(applied)
        click.echo(f"  {i + 1}. {override.name} ({where}): applies, {'; '.join(reasons)}")
        for change in effect.changes:
            click.echo(f"       {show_override_change(change)}")
        for note in effect.notes:
            click.echo(f"       note: {note}")
        if not effect.changes and not effect.notes:
            click.echo("       (changes nothing here)")


@click.command("validate")
@repo_argument
@chart_options
def validate_command(repo: Path, chart_cache: Path | None, chart_credentials: Path | None) -> None:
    """Check a config repo (schema, references, templates, charts, renders); exit 2 when invalid.

    Charts from Helm repositories and OCI registries are resolved and fetched (into the chart
    cache) exactly as for rendering.
    """
    loaded, results = _load_and_render(repo, chart_cache, chart_credentials)
    errors = [str(r.error) for r in results if r.error is not None]
    if errors:
        _fail([*errors, f"{len(errors)} target(s) failed to render"])
    for app in loaded.apps.values():
        placed = targets(loaded, app)
        if not placed:
            click.echo(f"note: app {app.name} is placed on no cluster", err=True)
            continue
        for warning in unplaced_overrides(loaded, app, placed):
            click.echo(f"warning: {warning}", err=True)
    for warning in grouped_warnings(results):
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"valid: {len(loaded.clusters)} cluster(s), {len(loaded.groups)} group(s), "
        f"{len(loaded.apps)} app(s), {len(results)} target(s) rendered"
    )
