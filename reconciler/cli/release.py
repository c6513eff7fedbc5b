"""``reconciler release``: let a revision the prune guard holds apply (recorded: who, when)."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path

import click

from reconciler.cli.common import state_dir_option
from reconciler.errors import ReconcilerError
from reconciler.presentation import format_time
from reconciler.store.db import Store


def register_release_command(cli_group: click.Group) -> None:
    cli_group.add_command(release_command)


@click.command("release")
@click.argument("revision")
@state_dir_option
def release_command(revision: str, state_dir: Path) -> None:
    """Let a revision the prune guard holds apply (recorded with your user name and the time).

    REVISION is its sha or a unique prefix, as `reconciler status` shows it.
    """
    with Store.open_existing(state_dir) as store:
        found = store.find_revisions(revision.strip().lower())
        if not found:
            raise ReconcilerError(f"{revision}: no such revision seen by the daemon")
        if len({r.sha for r in found}) > 1:
            raise ReconcilerError(f"{revision}: ambiguous, matches {len(found)} revisions")
        row = found[0]
        if row.held is None:
            raise ReconcilerError(f"revision {row.sha[:12]} is not held: nothing to release")
        done = store.release(row.sha, getpass.getuser(), datetime.now(UTC))
    click.echo(
        f"revision {row.sha[:12]} released by {done.user} at {format_time(done.at)}; "
        "the daemon applies it within seconds"
    )
