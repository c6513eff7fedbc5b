"""``diff`` and ``apply``: one pass against the live clusters, printed; exit code from the outcome.

Exit codes: 0 success / no change, 1 changes found (diff), 2 and above errors.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    chart_options,
    chart_resolver,
    cluster_of_context,
    context_option,
    instance_option,
    kubeconfig_option,
    lock_charts,
    repo_argument,
    request_timeout_option,
)
from reconciler.cli.output import WIDE, emit, output_option
from reconciler.cli.terminal import color

if TYPE_CHECKING:
    from reconciler.charts.model import ChartLock
    from reconciler.config.model import Repo


def register_sync_commands(cli_group: click.Group) -> None:
    """Add ``diff`` and ``apply`` to ``cli_group``."""
    cli_group.add_command(diff)
    cli_group.add_command(apply)


def _select(repo: Any, app: str | None, cluster: str | None) -> None:
    from reconciler.errors import ReconcilerError

    if app is not None and app not in repo.apps:
        known = ", ".join(repo.apps) or "none"
        raise ReconcilerError(f"unknown app {app!r} (apps: {known})")
    if cluster is not None and cluster not in repo.clusters:
        known = ", ".join(repo.clusters) or "none"
        raise ReconcilerError(f"unknown cluster {cluster!r} (clusters: {known})")


def _revision(path: Path) -> str:
    from reconciler.errors import SourceError
    from reconciler.source import resolve_rev

    try:
        return resolve_rev(path, "HEAD")[:12]
    except SourceError:
        return "local"


def _reconcile_once(
    repo_path: Path,
    app: str | None,
    cluster: str | None,
    kubeconfig: str | None,
    instance: str,
    apply: bool,
    chart_cache: Path | None = None,
    chart_credentials: Path | None = None,
    request_timeout: float | None = None,
    context: str | None = None,
) -> list[Any]:
    from reconciler.cli.terminal import StatusLine
    from reconciler.config.load import load_repo
    from reconciler.discovery import cluster_capabilities
    from reconciler.engine import reconcile
    from reconciler.kube.client import DEFAULT_TIMEOUT
    from reconciler.kube.pool import Clients
    from reconciler.loading import load_and_render
    from reconciler.progress import PassProgress

    apps = [app] if app else None
    clients = Clients(kubeconfig, request_timeout or DEFAULT_TIMEOUT)
    try:
        credentials = clients.parse()  # an unreadable kubeconfig is one error, not one per cluster
        if context is not None:
            cluster = cluster_of_context(load_repo(repo_path), context, cluster, credentials)

        def lock(repo: Repo) -> ChartLock:
            _select(repo, app, cluster)  # names first: no chart is fetched for a typo
            return lock_charts(repo, chart_resolver(chart_cache, chart_credentials), apps)

        only = [cluster] if cluster else None
        # Helm renders per cluster as that cluster would be seen by helm install.
        repo, rendered, _ = load_and_render(
            repo_path,
            apps=apps,
            clusters=only,
            lock=lock,
            capabilities=lambda repo: cluster_capabilities(repo, clients, only),
        )
        progress = PassProgress("apply" if apply else "diff")
        with StatusLine(progress.line):
            return reconcile(
                repo,
                rendered,
                clients,
                _revision(repo_path),
                apply=apply,
                clusters=only,
                prune_departed=app is None,  # only a whole-repo pass knows what left a cluster
                instance=instance,
                progress=progress,
            )
    finally:
        clients.close()


@click.command()
@repo_argument
@click.option("--app", default=None, help="Only this app.")
@click.option("--cluster", default=None, help="Only this cluster.")
@context_option
@output_option("markdown", wide="the unchanged objects too", aliases={"text": "table"})
@kubeconfig_option
@instance_option
@request_timeout_option
@chart_options
def diff(
    repo: Path,
    app: str | None,
    cluster: str | None,
    context: str | None,
    output: str,
    kubeconfig: str | None,
    instance: str,
    request_timeout: float,
    chart_cache: Path | None,
    chart_credentials: Path | None,
) -> None:
    """Show what apply would change on the live clusters (server-side apply dry-run).

    Exit 0: no changes; 1: changes or drift; 2: errors (other clusters are still shown).
    """
    from reconciler import outcomes as fmt

    results = _reconcile_once(
        repo,
        app,
        cluster,
        kubeconfig,
        instance,
        False,
        chart_cache,
        chart_credentials,
        request_timeout,
        context,
    )
    if output == "markdown":
        click.echo(fmt.diff_markdown(results))
    else:
        emit(
            output,
            lambda: fmt.diff_data(results),
            lambda: fmt.diff_text(results, color=color(), wide=output == WIDE),
        )
    if fmt.has_errors(results):
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_CHANGES if fmt.has_changes(results) else EXIT_OK)


@click.command()
@repo_argument
@click.option("--app", default=None, help="Only this app.")
@click.option("--cluster", default=None, help="Only this cluster.")
@context_option
@output_option(wide="the unchanged objects too")
@kubeconfig_option
@instance_option
@request_timeout_option
@chart_options
def apply(
    repo: Path,
    app: str | None,
    cluster: str | None,
    context: str | None,
    output: str,
    kubeconfig: str | None,
    instance: str,
    request_timeout: float,
    chart_cache: Path | None,
    chart_credentials: Path | None,
) -> None:
    """One-shot sync: apply what changed, create namespaces, prune what left Git.

    Exit 0: all applied; 2: any error or conflict left unapplied (every other cluster and
    object is still synced).
    """
    from reconciler import outcomes as fmt

    results = _reconcile_once(
        repo,
        app,
        cluster,
        kubeconfig,
        instance,
        True,
        chart_cache,
        chart_credentials,
        request_timeout,
        context,
    )
    emit(
        output,
        lambda: fmt.apply_data(results),
        lambda: fmt.apply_text(results, color=color(), wide=output == WIDE),
    )
    failed = fmt.has_errors(results) or fmt.has_conflicts(results)
    sys.exit(EXIT_ERROR if failed else EXIT_OK)
