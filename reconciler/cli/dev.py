"""``dev``: local real Kubernetes clusters (apiservers, controllers, kwok) for demo and tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import click

from reconciler.cli.common import env_option
from reconciler.cli.output import emit, output_option


def register_dev_commands(cli_group: click.Group) -> None:
    """Add the ``dev`` group to ``cli_group``."""
    cli_group.add_command(dev)


@click.group()
def dev() -> None:
    """Local real Kubernetes clusters (etcd, apiservers, controllers, kwok) for demo and tests."""


def _devenv_dir(value: str | None) -> Path:
    from reconciler.devenv import controlplane

    return Path(value) if value else controlplane.default_dir()


_dir_option = env_option(
    "--dir",
    "directory",
    envvar="RECONCILER_DEVENV_DIR",
    help="Where the local control plane keeps its state (default: cache dir).",
)


@contextlib.contextmanager
def _progress(first: str) -> Iterator[Callable[[str], None]]:
    """What a long step does now (``building kube-apiserver ...``), as a status line with the
    time elapsed on a terminal (stderr); nothing when stderr is not a terminal."""
    from reconciler.cli.terminal import StatusLine

    now = [first]
    with StatusLine(lambda: now[0]) as line:

        def progress(message: str) -> None:
            now[0] = message
            line.refresh()

        yield progress


@dev.command("up")
@click.option(
    "--clusters",
    default="beijing-1,beijing-2,us-west-1",
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
    with _progress("starting local clusters") as progress:
        result = controlplane.up(
            _devenv_dir(directory),
            names,
            replace(controlplane.UP, base_port=port, workloads=not light, progress=progress),
        )
    for what in result.restarted:
        click.echo(what, err=True)
    verb = "started" if result.fresh else "running" if result.restarted else "already running:"
    for c in result.state.clusters:
        click.echo(f"{verb} cluster {c.name} at {c.server}", err=True)
    click.echo(f"export KUBECONFIG={result.state.kubeconfig}")


@dev.command("demo")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=9465,
    help="The daemon's page and /metrics port (checked before anything starts).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The demo's folder: clusters, config repo, state "
    "(default: $RECONCILER_DEMO_DIR or ~/.local/state/reconciler-demo).",
)
@click.option(
    "--sample",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("sample-repo"),
    help="The config repo copied (once) into the demo's folder.",
)
def dev_demo(port: int, directory: Path | None, sample: Path) -> None:
    """`make demo`: local clusters, then the daemon on a Git copy of sample-repo/ (^C stops it)."""
    import os

    from reconciler.devenv import binaries, controlplane, demo

    demo.check_port(port)  # before anything starts
    paths = demo.Paths(directory or demo.default_dir())

    def progress(message: str) -> None:
        click.echo(message, err=True)

    binaries.ensure_all(progress)  # helm and kustomize too: sample-repo renders with both
    result = controlplane.up(paths.devenv, launch=replace(controlplane.UP, progress=progress))
    for c in result.state.clusters:
        click.echo(f"cluster {c.name} at {c.server}", err=True)
    demo.prepare_repo(paths, sample)
    binary = demo.reconciler_bin()
    argv = demo.daemon_argv(binary, paths, port, result.state.kubeconfig)
    lines = demo.instructions(binary, paths, port, result.state.kubeconfig)
    click.echo("\n" + "\n".join(lines) + "\n")  # click.echo flushes: nothing lost to exec
    os.execv(argv[0], argv)


@dev.command("provision")
@output_option()
def dev_provision(output: str) -> None:
    """Locate or build every pinned binary (control plane, kwok, helm, kustomize, registry)."""
    from reconciler.devenv import binaries

    with _progress("checking pinned binaries") as progress:
        found = binaries.ensure_all(progress)
    emit(
        output,
        lambda: {"binaries": {name: str(path) for name, path in found.items()}},
        lambda: "\n".join(f"{name}\t{path}" for name, path in found.items()),
    )


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
    from reconciler.devenv import controlplane, demo

    where = _devenv_dir(directory)
    state = controlplane.running(where)
    if state is None:
        raise controlplane.DevEnvError(
            f"no local clusters running in {where}: run `reconciler dev up`, or give the --dir "
            f"they run in (make demo's: --dir {demo.Paths(demo.default_dir()).devenv})"
        )
    click.echo(state.kubeconfig)
