"""CLI commands for progressive rollouts: ``rollout status|approve|pause|resume|abort`` and
``rollback``.

They talk to the daemon through its store (``--state-dir``, the same directory it runs with):
a command is a row the daemon takes on its next tick (within a couple of seconds while a
rollout runs), written with the user and the time. Exit codes: 0 done, 2 errors.
"""

from __future__ import annotations

import getpass
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from reconciler.cli.common import state_dir_option
from reconciler.cli.output import emit, output_option
from reconciler.errors import ReconcilerError
from reconciler.rollout.codec import state_from_data
from reconciler.rollout.model import CommandKind, RolloutPhase, RolloutState
from reconciler.rollout.report import status_document, status_text
from reconciler.store.db import Store
from reconciler.store.rows import ALL_CLUSTERS, RolloutRow


def register_rollout_commands(cli_group: click.Group) -> None:
    """Add ``rollout`` (a group) and ``rollback`` to ``cli_group``."""
    cli_group.add_command(rollout_group)
    cli_group.add_command(rollback_command)


def _user(given: str | None) -> str:
    if given:
        return given
    env = os.environ.get("RECONCILER_USER")
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return f"uid-{os.getuid()}"


user_option = click.option(
    "--user",
    default=None,
    help="Who does this, for the record (default: $RECONCILER_USER, else the login name).",
)


def _latest(store: Store, app: str) -> RolloutState:
    rows = store.latest_rollouts(app)
    if not rows:
        raise ReconcilerError(
            f"app {app}: no rollout recorded (an app with spec.rollout starts one when a "
            "commit changes what it renders)"
        )
    return state_from_data(rows[0].data)


def _active(store: Store, app: str) -> RolloutState:
    state = _latest(store, app)
    if state.finished:
        raise ReconcilerError(
            f"app {app}: the rollout of {state.revision[:12]} is {state.phase}, nothing to change"
        )
    return state


@click.group("rollout")
def rollout_group() -> None:
    """Progressive rollouts: see, approve, pause, resume or abort them."""


@rollout_group.command("status")
@click.argument("app", required=False)
@state_dir_option
@output_option()
def status_command(app: str | None, state_dir: Path, output: str) -> None:
    """Each app's newest rollout: stages, clusters, phases, what it waits for and until when."""
    with Store.open_readonly(state_dir) as store:
        rows: list[RolloutRow] = store.latest_rollouts(app)
    if app is not None and not rows:
        raise ReconcilerError(f"app {app}: no rollout recorded")
    states = [state_from_data(r.data) for r in rows]
    now = time.time()
    emit(output, lambda: status_document(states, now), lambda: status_text(states, now))


def _command(app: str, state_dir: Path, kind: CommandKind, user: str, stage: str | None) -> None:
    at = datetime.now(UTC)
    with Store.open(state_dir) as store:
        state = _active(store, app)
        if kind == CommandKind.APPROVE:
            names = [s.name for s in state.plan.stages]
            if stage is None:
                if state.phase != RolloutPhase.WAITING_APPROVAL:
                    gated = [s.name for s in state.plan.stages[state.stage :] if s.approval]
                    ahead = ", ".join(gated)
                    hint = f" (stages with a manual gate ahead: {ahead})" if gated else ""
                    raise ReconcilerError(
                        f"app {app}: no stage waits for approval now; name one with --stage to "
                        f"approve it ahead{hint}"
                    )
                stage = names[state.stage]
            elif stage not in names:
                raise ReconcilerError(
                    f"app {app}: the rollout of {state.revision[:12]} has no stage {stage!r} "
                    f"(stages: {', '.join(names)})"
                )
        store.add_rollout_command(app, state.revision, str(kind), stage, user, at)
    what = f"{kind} of stage {stage}" if stage else str(kind)
    click.echo(
        f"{app}: {what} of the rollout of {state.revision[:12]} recorded for {user} at "
        f"{at.strftime('%Y-%m-%dT%H:%M:%SZ')}; the daemon takes it on its next tick"
    )


@rollout_group.command("approve")
@click.argument("app")
@click.option("--stage", help="The stage to approve (default: the stage that waits now).")
@state_dir_option
@user_option
def approve_command(app: str, stage: str | None, state_dir: Path, user: str | None) -> None:
    """Let a stage with `approval: manual` start."""
    _command(app, state_dir, CommandKind.APPROVE, _user(user), stage)


@rollout_group.command("pause")
@click.argument("app")
@state_dir_option
@user_option
def pause_command(app: str, state_dir: Path, user: str | None) -> None:
    """Start no new batch (the one in flight finishes; failures are still handled)."""
    _command(app, state_dir, CommandKind.PAUSE, _user(user), None)


@rollout_group.command("resume")
@click.argument("app")
@state_dir_option
@user_option
def resume_command(app: str, state_dir: Path, user: str | None) -> None:
    """Go on after ``pause``."""
    _command(app, state_dir, CommandKind.RESUME, _user(user), None)


@rollout_group.command("abort")
@click.argument("app")
@state_dir_option
@user_option
def abort_command(app: str, state_dir: Path, user: str | None) -> None:
    """Stop the rollout where it is: updated clusters keep the new revision, the others their
    old one (``reconciler rollback`` to go back)."""
    _command(app, state_dir, CommandKind.ABORT, _user(user), None)


@click.command("rollback")
@click.argument("app")
@click.option("--to", "to", metavar="REV", help="The revision to run (a sha or its prefix).")
@click.option("--cluster", "clusters", multiple=True, help="Only this cluster (repeatable).")
@click.option("--release", is_flag=True, help="Release the pin: back to what rollouts decide.")
@state_dir_option
@user_option
def rollback_command(
    app: str,
    to: str | None,
    clusters: tuple[str, ...],
    release: bool,
    state_dir: Path,
    user: str | None,
) -> None:
    """Pin APP (or some of its clusters) to an older revision until ``--release``.

    A pinned target runs that revision whatever later commits say; rollouts pass it over.
    """
    if release == (to is not None):
        raise click.UsageError("give exactly one of --to REV, --release")
    who = _user(user)
    at = datetime.now(UTC)
    with Store.open(state_dir) as store:
        if release:
            count = store.unpin(app, list(clusters) if clusters else None)
            if count == 0:
                raise ReconcilerError(f"app {app}: nothing pinned{_on(clusters)}")
            click.echo(f"{app}: released {count} pin{'s' if count > 1 else ''}{_on(clusters)}")
            return
        assert to is not None
        found = [r for r in store.find_revisions(to.lower()) if r.valid]
        if not found:
            raise ReconcilerError(
                f"revision {to!r}: not a valid revision the daemon has seen "
                "(reconciler status lists the newest)"
            )
        shas = {r.sha for r in found}
        if len(shas) > 1:
            raise ReconcilerError(f"revision {to!r} is ambiguous: {', '.join(sorted(shas))}")
        sha = found[0].sha
        store.pin(app, list(clusters) or [ALL_CLUSTERS], sha, who, at)
    click.echo(
        f"{app}{_on(clusters)} pinned to {sha[:12]} by {who} at "
        f"{at.strftime('%Y-%m-%dT%H:%M:%SZ')}; release with: reconciler rollback {app} --release"
    )


def _on(clusters: tuple[str, ...]) -> str:
    return f" on {', '.join(clusters)}" if clusters else ""
