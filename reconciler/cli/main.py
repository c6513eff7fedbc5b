"""Command-line front end: parses arguments, calls the stages, prints, picks the exit code.

Exit codes: 0 success / no change, 1 changes found (diff, plan, drift), 2 and above errors.
A user error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from reconciler import __version__
from reconciler.cli.common import (
    EXIT_ERROR,
)
from reconciler.cli.daemon import register_daemon_commands
from reconciler.cli.dev import register_dev_commands
from reconciler.cli.render import register_render_commands
from reconciler.cli.review import register_review_commands
from reconciler.cli.sync import register_sync_commands
from reconciler.cli.wait import register_wait_command
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


register_sync_commands(cli)
register_render_commands(cli)
register_review_commands(cli)
register_daemon_commands(cli)
register_wait_command(cli)
register_dev_commands(cli)


def main() -> None:
    cli(prog_name="reconciler")
