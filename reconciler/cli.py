"""Command-line front end: parses arguments, calls the stages, prints, picks the exit code.

Exit codes: 0 success / no change, 1 changes found (diff, plan, drift), 2 and above errors.
A user error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler import __version__
from reconciler.cli_common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    instance_option,
    kubeconfig_option,
    repo_argument,
)
from reconciler.errors import ReconcilerError

F = TypeVar("F", bound=Callable[..., Any])


class ReconcilerGroup(click.Group):
    """Turns every ReconcilerError into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ReconcilerError as err:
            for line in str(err).splitlines() or ["error"]:
                click.echo(f"error: {line}", err=True)
            sys.exit(EXIT_ERROR)


@click.group(cls=ReconcilerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """GitOps delivery of the same applications to many Kubernetes clusters."""


# ---- diff / apply: against live clusters ------------------------------------------------------


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
) -> list[Any]:
    from reconciler.config import load_repo
    from reconciler.engine import Clients, reconcile
    from reconciler.render import render_all

    repo = load_repo(repo_path)
    _select(repo, app, cluster)
    rendered = render_all(
        repo, apps=[app] if app else None, clusters=[cluster] if cluster else None
    )
    clients = Clients(kubeconfig)
    clients.parse()  # an unreadable kubeconfig is one error, not one per cluster
    try:
        return reconcile(
            repo,
            rendered,
            clients,
            _revision(repo_path),
            apply=apply,
            clusters=[cluster] if cluster else None,
            prune_departed=app is None,  # only a whole-repo pass knows what left a cluster
            instance=instance,
        )
    finally:
        clients.close()


@cli.command()
@repo_argument
@click.option("--app", default=None, help="Only this app.")
@click.option("--cluster", default=None, help="Only this cluster.")
@click.option("-o", "--output", type=click.Choice(["text", "json", "markdown"]), default="text")
@kubeconfig_option
@instance_option
def diff(
    repo: Path,
    app: str | None,
    cluster: str | None,
    output: str,
    kubeconfig: str | None,
    instance: str,
) -> None:
    """Show what apply would change on the live clusters (server-side apply dry-run).

    Exit 0: no changes; 1: changes or drift; 2: errors (other clusters are still shown).
    """
    from reconciler import outcomes as fmt

    results = _reconcile_once(repo, app, cluster, kubeconfig, instance, apply=False)
    if output == "json":
        click.echo(fmt.diff_json(results))
    elif output == "markdown":
        click.echo(fmt.diff_markdown(results))
    else:
        click.echo(fmt.diff_text(results, color=sys.stdout.isatty()))
    if fmt.has_errors(results):
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_CHANGES if fmt.has_changes(results) else EXIT_OK)


@cli.command()
@repo_argument
@click.option("--app", default=None, help="Only this app.")
@click.option("--cluster", default=None, help="Only this cluster.")
@kubeconfig_option
@instance_option
def apply(
    repo: Path, app: str | None, cluster: str | None, kubeconfig: str | None, instance: str
) -> None:
    """One-shot sync: apply what changed, create namespaces, prune what left Git.

    Exit 0: all applied; 2: any error or conflict left unapplied (every other cluster and
    object is still synced).
    """
    from reconciler import outcomes as fmt

    results = _reconcile_once(repo, app, cluster, kubeconfig, instance, apply=True)
    click.echo(fmt.apply_text(results, color=sys.stdout.isatty()))
    failed = fmt.has_errors(results) or fmt.has_conflicts(results)
    sys.exit(EXIT_ERROR if failed else EXIT_OK)


# ---- dev: local real clusters ------------------------------------------------------------------


@cli.group()
def dev() -> None:
    """Local real Kubernetes clusters (etcd, apiservers, controllers, kwok) for demo and tests."""


def _devenv_dir(value: str | None) -> Path:
    from reconciler.devenv import controlplane

    return Path(value) if value else controlplane.default_dir()


_dir_option = click.option(
    "--dir",
    "directory",
    envvar="RECONCILER_DEVENV_DIR",
    help="Where the local control plane keeps its state (default: cache dir).",
)


@dev.command("up")
@click.option(
    "--clusters",
    default="beijing-1,beijing-2,us-west-1",
    show_default=True,
    help="Comma-separated cluster names; one kube-apiserver and kubeconfig context each.",
)
@click.option("--port", type=int, default=None, help="First apiserver port (default: free ports).")
@click.option(
    "--light",
    is_flag=True,
    help="API servers only: no controllers, scheduler or kwok nodes (nothing runs workloads).",
)
@_dir_option
def dev_up(clusters: str, port: int | None, light: bool, directory: str | None) -> None:
    """Start the local clusters in the background (idempotent; restarts only what died)."""
    from reconciler.devenv import controlplane

    names = [n.strip() for n in clusters.split(",") if n.strip()]
    result = controlplane.up(
        _devenv_dir(directory),
        names,
        base_port=port,
        workloads=not light,
        progress=lambda msg: click.echo(msg, err=True),
    )
    for what in result.restarted:
        click.echo(f"restarted {what}", err=True)
    verb = "started" if result.fresh else "running" if result.restarted else "already running:"
    for c in result.state.clusters:
        click.echo(f"{verb} cluster {c.name} at {c.server}", err=True)
    click.echo(f"export KUBECONFIG={result.state.kubeconfig}")


@dev.command("provision")
def dev_provision() -> None:
    """Locate or build every pinned binary (control plane, kwok, helm, kustomize, registry)."""
    from reconciler.devenv import binaries

    for name, path in binaries.ensure_all(lambda msg: click.echo(msg, err=True)).items():
        click.echo(f"{name}\t{path}")


@dev.command("down")
@_dir_option
def dev_down(directory: str | None) -> None:
    """Stop the local clusters started by `dev up`."""
    from reconciler.devenv import controlplane

    stopped = controlplane.stop(_devenv_dir(directory))
    click.echo(f"stopped {len(stopped)} processes" if stopped else "nothing was running", err=True)


@dev.command("kubeconfig")
@_dir_option
def dev_kubeconfig(directory: str | None) -> None:
    """Print the path of the local clusters' kubeconfig."""
    from reconciler.devenv import controlplane

    state = controlplane.running(_devenv_dir(directory))
    if state is None:
        raise controlplane.DevEnvError("local clusters are not running: run `reconciler dev up`")
    click.echo(state.kubeconfig)


from reconciler.cli_render import register_render_commands  # noqa: E402
from reconciler.cli_review import register_review_commands  # noqa: E402

register_render_commands(cli)
register_review_commands(cli)


from reconciler.cli_daemon import register_daemon_commands  # noqa: E402

register_daemon_commands(cli)


def main() -> None:
    cli(prog_name="reconciler")
