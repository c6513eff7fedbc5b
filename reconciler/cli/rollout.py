"""CLI commands for progressive rollouts: ``rollout status|approve|pause|resume|abort`` and
``rollback``.

They talk to the daemon through its store (``--state-dir``, the same directory it runs with):
a command is a row the daemon takes on its next tick (within a couple of seconds while a
rollout runs), written with the user and the time. With several replicas
(``--shard-lease-namespace``, as ``run``), they read and write the app's shared rollout on the
management cluster instead (a conditional update, retried when a replica wrote meanwhile); the
replica driving the app takes the command. Exit codes: 0 done, 2 errors.
"""

from __future__ import annotations

import getpass
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.cli.common import ManagementCluster, shared_options, state_dir_option, unseen
from reconciler.cli.output import emit, output_option
from reconciler.cli.shared import read_rollouts, read_status, update_rollout
from reconciler.errors import ReconcilerError
from reconciler.published.rollout import SharedRollout
from reconciler.rollout.codec import state_from_data
from reconciler.rollout.model import CommandKind, RolloutPhase, RolloutState
from reconciler.rollout.report import status_document, status_text
from reconciler.store.db import Store
from reconciler.store.rows import ALL_CLUSTERS, RolloutRow

if TYPE_CHECKING:
    from reconciler.kube.management import SharedObjects


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
    return _recorded(app, state_from_data(rows[0].data) if rows else None)


def _recorded(app: str, state: RolloutState | None) -> RolloutState:
    if state is None:
        raise ReconcilerError(
            f"app {app}: no rollout recorded (an app with spec.rollout starts one when a "
            "commit changes what it renders)"
        )
    return state


def _active(store: Store, app: str) -> RolloutState:
    return _running(app, _latest(store, app))


def _running(app: str, state: RolloutState) -> RolloutState:
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
@shared_options
def status_command(
    app: str | None, state_dir: Path, output: str, shared: ManagementCluster | None
) -> None:
    """Each app's newest rollout: stages, clusters, phases, what it waits for and until when."""
    if shared is not None:
        states = [
            r.state
            for r in read_rollouts(shared.connect())
            if r.state is not None and (app is None or r.app == app)
        ]
    else:
        with Store.open_readonly(state_dir) as store:
            rows: list[RolloutRow] = store.latest_rollouts(app)
        states = [state_from_data(r.data) for r in rows]
    if app is not None and not states:
        raise ReconcilerError(f"app {app}: no rollout recorded")
    now = time.time()
    emit(output, lambda: status_document(states, now), lambda: status_text(states, now))


def _stage(app: str, state: RolloutState, kind: CommandKind, stage: str | None) -> str | None:
    """The stage an approval is for (the one that waits, else the one named); None otherwise."""
    if kind != CommandKind.APPROVE:
        return stage
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
        return names[state.stage]
    if stage not in names:
        raise ReconcilerError(
            f"app {app}: the rollout of {state.revision[:12]} has no stage {stage!r} "
            f"(stages: {', '.join(names)})"
        )
    return stage


def _command(
    app: str,
    state_dir: Path,
    kind: CommandKind,
    user: str,
    stage: str | None,
    shared: ManagementCluster | None,
) -> None:
    at = datetime.now(UTC)
    if shared is not None:
        asked: list[str | None] = []

        def add(current: SharedRollout) -> SharedRollout:
            state = _running(app, _recorded(app, current.state))
            asked[:] = [_stage(app, state, kind, stage)]
            return current.with_command(str(kind), asked[0], user, at)[0]

        changed = update_rollout(shared.connect(), app, add)
        assert changed.state is not None
        state, stage = changed.state, asked[0]
        taker = "the replica driving it takes it on its next tick"
    else:
        with Store.open_existing(state_dir) as store:
            state = _active(store, app)
            stage = _stage(app, state, kind, stage)
            store.add_rollout_command(app, state.revision, str(kind), stage, user, at)
        taker = "the daemon takes it on its next tick"
    what = f"{kind} of stage {stage}" if stage else str(kind)
    click.echo(
        f"{app}: {what} of the rollout of {state.revision[:12]} recorded for {user} at "
        f"{at.strftime('%Y-%m-%dT%H:%M:%SZ')}; {taker}"
    )


@rollout_group.command("approve")
@click.argument("app")
@click.option("--stage", help="The stage to approve (default: the stage that waits now).")
@state_dir_option
@user_option
@shared_options
def approve_command(
    app: str, stage: str | None, state_dir: Path, user: str | None, shared: ManagementCluster | None
) -> None:
    """Let a stage with `approval: manual` start."""
    _command(app, state_dir, CommandKind.APPROVE, _user(user), stage, shared)


def _state_command(name: str, kind: CommandKind, help_text: str) -> click.Command:
    """``rollout pause|resume|abort APP``: record ``kind`` for the app's running rollout."""

    @rollout_group.command(name, help=help_text)
    @click.argument("app")
    @state_dir_option
    @user_option
    @shared_options
    def command(
        app: str, state_dir: Path, user: str | None, shared: ManagementCluster | None
    ) -> None:
        _command(app, state_dir, kind, _user(user), None, shared)

    return command


pause_command = _state_command(
    "pause",
    CommandKind.PAUSE,
    "Start no new batch (the one in flight finishes; failures are still handled).",
)
resume_command = _state_command("resume", CommandKind.RESUME, "Go on after ``pause``.")
abort_command = _state_command(
    "abort",
    CommandKind.ABORT,
    "Stop the rollout where it is: updated clusters keep the new revision, the others their "
    "old one (``reconciler rollback`` to go back).",
)


@click.command("rollback")
@click.argument("app")
@click.option("--to", "to", metavar="REV", help="The revision to run (a sha or its prefix).")
@click.option("--cluster", "clusters", multiple=True, help="Only this cluster (repeatable).")
@click.option("--release", is_flag=True, help="Release the pin: back to what rollouts decide.")
@state_dir_option
@user_option
@shared_options
def rollback_command(
    app: str,
    to: str | None,
    clusters: tuple[str, ...],
    release: bool,
    state_dir: Path,
    user: str | None,
    shared: ManagementCluster | None,
) -> None:
    """Pin APP (or some of its clusters) to an older revision until ``--release``.

    A pinned target runs that revision whatever later commits say; rollouts pass it over.
    """
    if release == (to is not None):
        raise click.UsageError("give exactly one of --to REV, --release")
    who = _user(user)
    at = datetime.now(UTC)
    if shared is not None:
        _shared_rollback(shared.connect(), app, to, clusters, who, at)
        return
    with Store.open_existing(state_dir) as store:
        _seen_target(app, clusters, *_targets_seen(store))
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


def _targets_seen(store: Store) -> tuple[set[tuple[str, str]], set[str]]:
    """The (app, cluster) targets the daemon's store knows (status, revisions, rollouts, pins)
    and the apps it knows."""
    pairs = {(r.app, r.cluster) for r in store.list_status()}
    pairs |= {(t.app, t.cluster) for t in store.list_targets()}
    for row in store.latest_rollouts():
        pairs |= {(row.app, c.cluster) for c in state_from_data(row.data).clusters}
    pins = store.list_pins()
    pairs |= {(p.app, p.cluster) for p in pins if p.cluster != ALL_CLUSTERS}
    return pairs, {app for app, _ in pairs} | {p.app for p in pins}


def _seen_target(
    app: str, clusters: tuple[str, ...], pairs: set[tuple[str, str]], apps: set[str]
) -> None:
    """``rollback`` names an app, and clusters of it, the daemon has seen: a typo is an error
    naming what exists, not a pin nothing ever reads."""
    if app not in apps:
        raise unseen(f"app {app}", "app", app, apps)
    of_app = {cluster for a, cluster in pairs if a == app}
    for cluster in clusters:
        if cluster not in of_app:
            raise unseen(f"app {app}: --cluster {cluster}", "cluster", cluster, of_app)


def _on(clusters: tuple[str, ...]) -> str:
    return f" on {', '.join(clusters)}" if clusters else ""


def _shared_rollback(
    shared: SharedObjects,
    app: str,
    to: str | None,
    clusters: tuple[str, ...],
    who: str,
    at: datetime,
) -> None:
    """``rollback`` with several replicas: the pins live in the app's shared rollout. A
    revision is one the replicas published as running or a rollout of the app knows."""
    if to is None:
        released: list[int] = []

        def unpin(current: SharedRollout) -> SharedRollout:
            changed, count = current.unpinned(set(clusters) if clusters else None)
            if count == 0:
                raise ReconcilerError(f"app {app}: nothing pinned{_on(clusters)}")
            released[:] = [count]
            return changed

        update_rollout(shared, app, unpin)
        count = released[0]
        click.echo(f"{app}: released {count} pin{'s' if count > 1 else ''}{_on(clusters)}")
        return
    fleet = read_status(shared)
    rollouts = read_rollouts(shared)
    pairs = {(r.app, r.cluster) for r in fleet.status}
    for rollout in rollouts:
        if rollout.state is not None:
            pairs |= {(rollout.app, c.cluster) for c in rollout.state.clusters}
    _seen_target(app, clusters, pairs, {a for a, _ in pairs} | {r.app for r in rollouts})
    known = {r.revision for r in fleet.status if r.revision}
    for rollout in rollouts:
        if rollout.state is not None:
            known.add(rollout.state.revision)
            known.update(c.base for c in rollout.state.clusters if c.base)
    shas = {sha for sha in known if sha.startswith(to.lower())}
    if not shas:
        raise ReconcilerError(
            f"revision {to!r}: not a revision the replicas run or a rollout knows "
            "(reconciler status lists them)"
        )
    if len(shas) > 1:
        raise ReconcilerError(f"revision {to!r} is ambiguous: {', '.join(sorted(shas))}")
    (sha,) = shas
    update_rollout(shared, app, lambda current: current.pinned(clusters, sha, who, at))
    click.echo(
        f"{app}{_on(clusters)} pinned to {sha[:12]} by {who} at "
        f"{at.strftime('%Y-%m-%dT%H:%M:%SZ')}; release with: reconciler rollback {app} --release"
    )
