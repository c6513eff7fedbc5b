"""``reconciler status``: the source, the newest revision, and every target's sync and health
state, rollouts and pins, as the daemon last recorded them (read-only).

Exit codes: 0; with ``--exit-code`` 1 when a target is failing or unhealthy. Errors: 2.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from reconciler.cli.common import EXIT_CHANGES, EXIT_OK, echo_json_as_yaml, state_dir_option
from reconciler.cli.daemonlock import daemon_running
from reconciler.health.model import Health
from reconciler.presentation import format_time
from reconciler.report import source_line, status_json, status_table
from reconciler.rollout.codec import state_from_data
from reconciler.rollout.report import status_section
from reconciler.store.db import Store
from reconciler.store.rows import RevisionRow, State

_FAILING = (State.FAILED, State.UNREACHABLE, State.INVALID_CONFIG, State.HELD)
_UNHEALTHY = (Health.DEGRADED, Health.MISSING)


def register_status_command(cli_group: click.Group) -> None:
    cli_group.add_command(status_command)


def _revision_header(revision: RevisionRow | None) -> str:
    if revision is None:
        return ""
    seen = format_time(revision.seen_at)
    if revision.held:
        return f"Revision {revision.sha[:12]} (seen {seen}): HELD, not applied\n  {revision.held}\n"
    if revision.valid and not revision.error:
        return f"Revision {revision.sha[:12]} (seen {seen}): valid\n"
    verdict = "applied except where it is broken" if revision.valid else "INVALID, not applied"
    lines = [f"Revision {revision.sha[:12]} (seen {seen}): {verdict}"]
    lines += [f"  {line}" for line in (revision.error or "").splitlines()]
    return "\n".join(lines) + "\n"


@click.command("status")
@state_dir_option
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "wide", "json", "yaml"]),
    default="table",
    show_default=True,
    help="wide: the table with every message in full.",
)
@click.option(
    "--exit-code",
    is_flag=True,
    help="Exit 1 when a target is failing (Failed, Unreachable, InvalidConfig, Held) or "
    "unhealthy (Degraded, Missing).",
)
def status_command(state_dir: Path, output: str, exit_code: bool) -> None:
    """How fetching the repo goes, the newest revision, and the state of every app on every
    cluster, as the daemon last saw them."""
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
    if output in ("json", "yaml"):
        document = status_json(rows, source, revision, running, health, rollout_rows, pin_rows)
        click.echo(document, nl=False) if output == "json" else echo_json_as_yaml(document)
        sys.exit(code)
    now = time.time()
    rollouts = [state_from_data(r.data) for r in rollout_rows]
    pins = [(p.app, p.cluster, p.revision, p.user, p.at.timestamp()) for p in pin_rows]
    color = sys.stdout.isatty()
    header = source_line(source, color=color) + _revision_header(revision)
    if not running:
        newest = max((r.updated_at for r in rows), default=None)
        note = f"Daemon not running: state as of {format_time(newest) or 'never'}\n"
        header = (click.style(note, fg="yellow") if color else note) + header
    table = status_table(rows, color=color, health=health)
    section = status_section(rollouts, pins, now)
    click.echo(
        (header + "\n" if header else "") + table + ("\n" + section if section else ""),
        nl=False,
    )
    if output == "wide":
        for r in rows:
            if r.message:
                click.echo(f"{r.app}/{r.cluster}: {r.message}")
    sys.exit(code)
