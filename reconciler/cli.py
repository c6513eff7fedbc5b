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
from reconciler.errors import ReconcilerError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_CHANGES = 1
EXIT_ERROR = 2


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


# ---- dev: local real clusters ------------------------------------------------------------------


@cli.group()
def dev() -> None:
    """Local real Kubernetes API servers (etcd + kube-apiserver) for the demo and tests."""


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
@_dir_option
def dev_up(clusters: str, port: int | None, directory: str | None) -> None:
    """Start the local clusters in the background (idempotent)."""
    from reconciler.devenv import controlplane

    names = [n.strip() for n in clusters.split(",") if n.strip()]
    state, started = controlplane.up(
        _devenv_dir(directory),
        names,
        base_port=port,
        progress=lambda msg: click.echo(msg, err=True),
    )
    verb = "started" if started else "already running:"
    for c in state.clusters:
        click.echo(f"{verb} cluster {c.name} at {c.server}", err=True)
    click.echo(f"export KUBECONFIG={state.kubeconfig}")


@dev.command("provision")
def dev_provision() -> None:
    """Locate or build the pinned etcd, kube-apiserver, kubectl, helm and kustomize."""
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


def main() -> None:
    cli(prog_name="reconciler")
