"""``reconciler drift``: the drift history (what differed from Git, who changed it, when, whether
it was corrected), or with ``--health`` the targets' health changes, from the daemon's store.

Exit codes: 1 when listed drift is still open, 0 when none is (always 0 with ``--health``);
errors 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from reconciler.cli.common import (
    EXIT_CHANGES,
    EXIT_OK,
    ManagementCluster,
    parse_since,
    shared_options,
    state_dir_option,
    unseen,
)
from reconciler.cli.output import emit, output_option
from reconciler.cli.shared import read_status
from reconciler.cli.terminal import color
from reconciler.report import (
    drift_document,
    drift_markdown,
    drift_table,
    health_changes_markdown,
    health_changes_table,
)
from reconciler.report.health import health_changes_document
from reconciler.store.db import Store
from reconciler.store.rows import DriftRow, StatusRow


def register_drift_command(cli_group: click.Group) -> None:
    cli_group.add_command(drift_command)


def _known(store: Store, app: str | None, cluster: str | None) -> None:
    """``--app`` and ``--cluster`` must name what the daemon has seen: a typo is an error
    listing what exists, not an empty history."""
    _known_in(store.list_status(), store.list_drift(), app, cluster)


def _known_in(
    rows: Sequence[StatusRow], drift: Sequence[DriftRow], app: str | None, cluster: str | None
) -> None:
    for flag, given, seen in (
        ("app", app, {r.app for r in rows} | {d.app for d in drift}),
        ("cluster", cluster, {r.cluster for r in rows} | {d.cluster for d in drift}),
    ):
        if given is not None and given not in seen:
            raise unseen(f"--{flag} {given}", flag, given, seen)


def _echo(
    output: str,
    rows: Sequence[Any],
    as_data: Callable[[Any], Any],
    as_markdown: Callable[[Any], str],
    as_table: Callable[..., str],
) -> None:
    """``rows`` in the ``-o`` format (wide is the table)."""
    if output == "markdown":
        click.echo(as_markdown(rows), nl=False)
    else:
        emit(output, lambda: as_data(rows), lambda: as_table(rows, color=color()))


@click.command("drift")
@state_dir_option
@click.option("--app", help="Only this app.")
@click.option("--cluster", help="Only this cluster.")
@click.option(
    "--since", help="Detected since: a duration ago with its unit (1h, 30m, 90s) or an ISO time."
)
@click.option("--open", "only_open", is_flag=True, help="Only drift that is still open.")
@click.option(
    "--health",
    "health_changes",
    is_flag=True,
    help="List the targets' health changes (Healthy, Progressing, Degraded, ...) instead.",
)
@output_option("markdown")
@shared_options
def drift_command(
    state_dir: Path,
    app: str | None,
    cluster: str | None,
    since: str | None,
    only_open: bool,
    health_changes: bool,
    output: str,
    shared: ManagementCluster | None,
) -> None:
    """Drift history: what differed from Git, who changed it, when, and whether it was corrected.
    With --health, the history of the targets' health instead.

    Exit code 1 when any listed drift is still open, 0 when none is (always 0 with --health).
    With --shard-lease-namespace: the open drift every replica published on the management
    cluster (each replica's history stays in its own state dir).
    """
    since_at = None
    if since is not None:
        try:
            since_at = parse_since(since, datetime.now(UTC))
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--since") from None
    if shared is not None:
        if health_changes:
            raise click.UsageError(
                "--health reads a replica's own history: use it with --state-dir, "
                "not --shard-lease-namespace"
            )
        fleet = read_status(shared.connect())
        _known_in(fleet.status, fleet.drift, app, cluster)
        published = [
            r
            for r in fleet.drift
            if (app is None or r.app == app)
            and (cluster is None or r.cluster == cluster)
            and (since_at is None or r.detected_at >= since_at)
        ]
        _echo(output, published, drift_document, drift_markdown, drift_table)
        sys.exit(EXIT_CHANGES if published else EXIT_OK)
    with Store.open_readonly(state_dir) as store:
        _known(store, app, cluster)
        if health_changes:
            changes = store.health_history(app=app, cluster=cluster, since=since_at)
        else:
            rows = store.list_drift(app=app, cluster=cluster, since=since_at, open_only=only_open)
    if health_changes:
        _echo(
            output, changes, health_changes_document, health_changes_markdown, health_changes_table
        )
        sys.exit(EXIT_OK)
    _echo(output, rows, drift_document, drift_markdown, drift_table)
    sys.exit(EXIT_CHANGES if any(r.open for r in rows) else EXIT_OK)
