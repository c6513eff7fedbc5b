"""``reconciler status``: the source, the newest revision, and every target's sync and health
state, rollouts and pins, as the daemon last recorded them (read-only).

Exit codes: 0; with ``--exit-code`` 1 when a target is failing or unhealthy. Errors: 2.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from reconciler.cli.common import (
    EXIT_CHANGES,
    EXIT_OK,
    ManagementCluster,
    shared_options,
    state_dir_option,
)
from reconciler.cli.daemonlock import daemon_running
from reconciler.cli.output import DATA, emit, output_option
from reconciler.cli.shared import Fleetwide, read_rollouts, read_status
from reconciler.cli.terminal import color
from reconciler.health.model import Health
from reconciler.presentation import format_time
from reconciler.published.rollout import SharedRollout
from reconciler.report import source_line, status_document, status_table
from reconciler.report.status import invalid_targets
from reconciler.rollout.codec import state_from_data, state_to_data
from reconciler.rollout.report import status_section
from reconciler.store.db import Store
from reconciler.store.rows import RevisionRow, RolloutRow, State, StatusRow

_FAILING = (State.FAILED, State.UNREACHABLE, State.INVALID_CONFIG, State.HELD)
_UNHEALTHY = (Health.DEGRADED, Health.MISSING)


def register_status_command(cli_group: click.Group) -> None:
    cli_group.add_command(status_command)


def _revision_header(revision: RevisionRow | None, rows: Sequence[StatusRow]) -> str:
    """The newest revision and whether it applies; ``rows``: the targets it is for (a valid
    revision whose config does not render for some of them says how many)."""
    if revision is None:
        return ""
    seen = format_time(revision.seen_at)
    if revision.held:
        return f"Revision {revision.sha[:12]} (seen {seen}): HELD, not applied\n  {revision.held}\n"
    if revision.valid and not revision.error:
        broken = invalid_targets(rows)
        verdict = (
            f"valid, but {broken} of {len(rows)} target{'s' if len(rows) != 1 else ''} "
            f"{'do' if broken != 1 else 'does'} not render (InvalidConfig)"
            if broken
            else "valid"
        )
        return f"Revision {revision.sha[:12]} (seen {seen}): {verdict}\n"
    verdict = "applied except where it is broken" if revision.valid else "INVALID, not applied"
    lines = [f"Revision {revision.sha[:12]} (seen {seen}): {verdict}"]
    lines += [f"  {line}" for line in (revision.error or "").splitlines()]
    return "\n".join(lines) + "\n"


@click.command("status")
@state_dir_option
@output_option(
    wide="the table with the message of every target, also those in sync (and, shared, each "
    "target's replica)"
)
@click.option(
    "--exit-code",
    is_flag=True,
    help="Exit 1 when a target is failing (Failed, Unreachable, InvalidConfig, Held) or "
    "unhealthy (Degraded, Missing).",
)
@shared_options
def status_command(
    state_dir: Path,
    output: str,
    exit_code: bool,
    shared: ManagementCluster | None,
) -> None:
    """How fetching the repo goes, the newest revision, and the state of every app on every
    cluster, as the daemon last saw them.

    With --shard-lease-namespace: as every replica published them on the management cluster.
    """
    if shared is not None:
        objects = shared.connect()
        _shared_status(output, exit_code, read_status(objects), read_rollouts(objects))
        return
    with Store.open_readonly(state_dir) as store:
        rows = store.list_status()
        revision = store.last_revision()
        source = store.source_status()
        health = {(h.app, h.cluster): h for h in store.list_health()}
        rollout_rows = store.latest_rollouts()
        pin_rows = store.list_pins()
    running = daemon_running(state_dir)
    failing = any(r.state in _FAILING for r in rows) or any(
        h.health.health in _UNHEALTHY for h in health.values()
    )
    code = EXIT_CHANGES if exit_code and failing else EXIT_OK
    if output in DATA:
        document = status_document(rows, source, revision, running, health, rollout_rows, pin_rows)
        emit(output, lambda: document, str)
        sys.exit(code)
    now = time.time()
    rollouts = [state_from_data(r.data) for r in rollout_rows]
    pins = [(p.app, p.cluster, p.revision, p.user, p.at.timestamp()) for p in pin_rows]
    colored = color()
    header = source_line(source, color=colored) + _revision_header(revision, rows)
    if not running:
        newest = max((r.updated_at for r in rows), default=None)
        note = f"Daemon not running: state as of {format_time(newest) or 'never'}\n"
        header = (click.style(note, fg="yellow") if colored else note) + header
    table = status_table(rows, color=colored, health=health, every_message=output == "wide")
    section = status_section(rollouts, pins, now)
    click.echo(
        (header + "\n" if header else "") + table + ("\n" + section if section else ""),
        nl=False,
    )
    sys.exit(code)


def _own(fleet: Fleetwide, replica: str) -> list[StatusRow]:
    """The status rows ``replica`` published (the targets its revision is for)."""
    return [r for r in fleet.status if fleet.replicas.get((r.app, r.cluster)) == replica]


def _shared_status(
    output: str, exit_code: bool, fleet: Fleetwide, shared_rollouts: list[SharedRollout]
) -> None:
    """``status`` from what the replicas published: the same table and formats, a REPLICA
    column in wide output and a ``replica`` per target in JSON/YAML."""
    rollouts = [r.state for r in shared_rollouts if r.state is not None]
    pin_rows = [p for r in shared_rollouts for p in r.pins]
    failing = any(r.state in _FAILING for r in fleet.status) or any(
        h.health.health in _UNHEALTHY for h in fleet.health.values()
    )
    code = EXIT_CHANGES if exit_code and failing else EXIT_OK
    if output in ("json", "yaml"):
        rollout_rows = [
            RolloutRow(
                s.app,
                s.revision,
                str(s.phase),
                state_to_data(s),
                datetime.fromtimestamp(s.started_at, UTC),
                datetime.fromtimestamp(s.updated_at, UTC),
            )
            for s in rollouts
        ]
        document = status_document(
            fleet.status,
            health=fleet.health,
            rollouts=rollout_rows,
            pins=pin_rows,
            replicas=fleet.replicas,
        )
        document["replicas"] = [
            {"replica": r.replica, "source": own["source"], "revision": own["revision"]}
            for r in fleet.own
            for own in (status_document(_own(fleet, r.replica), r.source, r.revision),)
        ]
        emit(output, lambda: document, str)
        sys.exit(code)
    pins = [(p.app, p.cluster, p.revision, p.user, p.at.timestamp()) for p in pin_rows]
    colored = color()
    table = status_table(
        fleet.status,
        color=colored,
        health=fleet.health,
        replicas=fleet.replicas if output == "wide" else None,
        every_message=output == "wide",
    )
    section = status_section(rollouts, pins, time.time())
    header = "".join(
        f"Replica {r.replica}:\n"
        + "".join(
            f"  {line}\n"
            for line in (
                source_line(r.source, color=colored)
                + _revision_header(r.revision, _own(fleet, r.replica))
            )
            .rstrip("\n")
            .splitlines()
        )
        for r in fleet.own
    )
    click.echo(
        (header + "\n" if header else "") + table + ("\n" + section if section else ""),
        nl=False,
    )
    sys.exit(code)
