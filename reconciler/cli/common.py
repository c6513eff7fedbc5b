"""What every command-line module shares: exit codes and common options."""

from __future__ import annotations

from pathlib import Path

import click

EXIT_OK = 0
EXIT_CHANGES = 1  # diff, plan, drift: something to look at
EXIT_ERROR = 2

repo_argument = click.argument(
    "repo", type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="REPO"
)
kubeconfig_option = click.option(
    "--kubeconfig",
    envvar="KUBECONFIG",
    default=None,
    help="kubeconfig with one context per cluster (default: $KUBECONFIG).",
)


def _valid_instance(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from reconciler.engine import check_instance
    from reconciler.errors import ReconcilerError

    try:
        check_instance(value)
    except ReconcilerError as err:
        raise click.BadParameter(str(err)) from None
    return value


instance_option = click.option(
    "--instance",
    callback=_valid_instance,
    envvar="RECONCILER_INSTANCE",
    default="default",
    show_default=True,
    help="Name of this reconciler's inventories; instances sharing a cluster never prune "
    "each other's apps.",
)
