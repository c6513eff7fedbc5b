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
    ChartSources,
    cluster_of_context,
    context_option,
    env_option,
    live_options,
    lock_charts,
    repo_argument,
)
from reconciler.cli.output import DATA, WIDE, emit, output_option
from reconciler.cli.terminal import color

if TYPE_CHECKING:
    from reconciler.charts.model import ChartLock
    from reconciler.config.model import Repo
    from reconciler.kube.client import ClusterClient
    from reconciler.kube.pool import Clients
    from reconciler.review.plan import LiveOptions


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
    context: str | None,
    live: LiveOptions,
    chart_sources: ChartSources,
    *,
    apply: bool,
    heal: bool = False,
) -> list[Any]:
    from reconciler.cli import settled
    from reconciler.cli.terminal import StatusLine
    from reconciler.config.load import load_repo
    from reconciler.discovery import cluster_capabilities
    from reconciler.engine import reconcile
    from reconciler.kube.client import DEFAULT_TIMEOUT
    from reconciler.kube.pool import Clients
    from reconciler.loading import load_and_render
    from reconciler.progress import PassProgress

    apps = [app] if app else None
    clients = Clients(live.kubeconfig, live.timeout or DEFAULT_TIMEOUT)
    try:
        credentials = clients.parse()  # an unreadable kubeconfig is one error, not one per cluster
        if context is not None:
            cluster = cluster_of_context(load_repo(repo_path), context, cluster, credentials)

        def lock(repo: Repo) -> ChartLock:
            _select(repo, app, cluster)  # names first: no chart is fetched for a typo
            selected = [repo.apps[app]] if app else list(repo.apps.values())
            if not any(a.source.helm is not None and a.source.helm.version for a in selected):
                from reconciler.charts.model import ChartLock

                return ChartLock()  # no remote chart: the resolver is not even imported
            return lock_charts(repo, chart_sources.resolver(), apps)

        only = [cluster] if cluster else None
        # Helm renders per cluster as that cluster would be seen by helm install.
        loaded = load_and_render(
            repo_path,
            apps=apps,
            clusters=only,
            lock=lock,
            capabilities=lambda repo: cluster_capabilities(repo, clients, only),
        )
        remembered = _remember(clients, loaded.repo, only)
        progress = PassProgress("apply" if apply else "diff")
        try:
            with StatusLine(progress.line):
                return reconcile(
                    loaded.repo,
                    loaded.targets,
                    clients,
                    _revision(repo_path),
                    apply=apply,
                    clusters=only,
                    prune_departed=app is None,  # only a whole-repo pass knows what left a cluster
                    instance=live.instance,
                    heal=heal,
                    progress=progress,
                )
        finally:
            for client in remembered:
                settled.save(client)
    finally:
        clients.close()


def _remember(clients: Clients, repo: Repo, only: list[str] | None) -> list[ClusterClient]:
    """Each cluster's memory of what earlier runs settled (``cli/settled.py``): an object
    unchanged on both sides since needs no dry-run."""
    from reconciler.cli import settled
    from reconciler.errors import ReconcilerError

    names = only or [n for n, c in repo.clusters.items() if not c.paused]
    remembered = []
    for name in names:
        if name not in repo.clusters:
            continue
        try:
            client = clients.get(name, repo.clusters[name].context)
        except ReconcilerError:
            continue  # the pass reports it
        settled.load(client)
        remembered.append(client)
    return remembered


@click.command()
@repo_argument
@click.option("--app", default=None, help="Only this app.")
@click.option("--cluster", default=None, help="Only this cluster.")
@context_option
@output_option("markdown", wide="the unchanged objects too", aliases={"text": "table"})
@live_options
def diff(
    repo: Path,
    app: str | None,
    cluster: str | None,
    context: str | None,
    output: str,
    live: LiveOptions,
    chart_sources: ChartSources,
) -> None:
    """Show what apply would change on the live clusters (server-side apply dry-run).

    Exit 0: no changes; 1: changes or drift; 2: errors (other clusters are still shown).
    """
    from reconciler import outcomes as fmt

    results = _reconcile_once(repo, app, cluster, context, live, chart_sources, apply=False)
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
@click.option(
    "--heal",
    is_flag=True,
    help="Also correct drift on apps with sync.selfHeal: false, this once (reported as healed).",
)
@env_option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="RECONCILER_STATE_DIR",
    help="With --heal: the daemon's state; its open drift records of what was healed are "
    "closed as healed by you.",
)
@live_options
def apply(
    repo: Path,
    app: str | None,
    cluster: str | None,
    context: str | None,
    output: str,
    heal: bool,
    state_dir: Path | None,
    live: LiveOptions,
    chart_sources: ChartSources,
) -> None:
    """One-shot sync: apply what changed, create namespaces, prune what left Git.

    With --heal, drift is corrected on apps whose sync.selfHeal is false too (only this run:
    later drift is again only recorded); each healed field is listed, live value then Git's.

    Exit 0: all applied; 2: any error or conflict left unapplied (every other cluster and
    object is still synced).
    """
    from reconciler import outcomes as fmt

    open_drift = _open_drift(state_dir) if heal and state_dir is not None else None
    results = _reconcile_once(
        repo, app, cluster, context, live, chart_sources, apply=True, heal=heal
    )
    colored = color()

    def table() -> str:
        text = fmt.apply_text(results, color=colored, wide=output == WIDE)
        return text + "\n" + fmt.healed_text(results, color=colored) if heal else text

    emit(output, lambda: fmt.apply_data(results, heal=heal), table)
    if heal and state_dir is not None and open_drift is not None:
        marked = _record_heal(state_dir, open_drift, results)
        if marked:
            click.echo(
                f"{marked} drift record{'s' if marked != 1 else ''} in {state_dir} "
                "marked healed by hand",
                err=output in DATA,  # the document alone on stdout
            )
    failed = fmt.has_errors(results) or fmt.has_conflicts(results)
    sys.exit(EXIT_ERROR if failed else EXIT_OK)


def _open_drift(state_dir: Path) -> dict[tuple[str, str, str], int]:
    """The daemon's open drift records before healing: (app, cluster, object) -> record id.

    Read first, so a record the daemon closes meanwhile (it saw the heal) is still marked."""
    from reconciler.store.db import Store

    with Store.open_existing(state_dir) as store:
        rows = store.list_drift(open_only=True)
    return {(r.app, r.cluster, r.object): r.id for r in rows}


def _record_heal(
    state_dir: Path, open_drift: dict[tuple[str, str, str], int], results: list[Any]
) -> int:
    """Close the healed objects' drift records as healed by this user, now; how many."""
    import getpass
    from datetime import UTC, datetime

    from reconciler.outcomes import healed_objects
    from reconciler.store.db import Store

    ids = [open_drift[key] for key in healed_objects(results) if key in open_drift]
    if not ids:
        return 0
    with Store.open(state_dir) as store:
        return store.mark_healed(ids, getpass.getuser(), datetime.now(UTC))
