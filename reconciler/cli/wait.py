"""``reconciler wait``: block until an app's targets are synced (or healthy), reading the daemon's
state, like ``argocd app wait`` or ``kubectl rollout status``.

Exit codes: 0 reached, 1 timed out, 2 an error or a target that will not get there by itself
(Failed, InvalidConfig, or Degraded when waiting for health); the reason names the target.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from reconciler.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    duration_option,
    format_duration,
    state_dir_option,
)
from reconciler.cli.daemonlock import daemon_running
from reconciler.cli.output import DATA, TABLE, emit, output_option
from reconciler.cli.terminal import color
from reconciler.config.load import load_repo
from reconciler.errors import ReconcilerError, without_target
from reconciler.health import Health
from reconciler.placement import targets
from reconciler.presentation import CLUSTERS, once_per_message
from reconciler.report import HEALTH_STYLE, STATE_STYLE
from reconciler.store.db import Store
from reconciler.waiting import Goal, Outcome, TargetProgress, Verdict, judge

EXIT_TIMEOUT = EXIT_CHANGES  # 1: not there in time
POLL = 1.0


def register_wait_command(cli_group: click.Group) -> None:
    cli_group.add_command(wait_command)


def _expected_clusters(repo_root: Path | None, app: str, only: tuple[str, ...]) -> list[str] | None:
    """The clusters to wait for: ``--cluster``, else the app's placement in REPO, else (None)
    whatever the daemon recorded for the app."""
    placed: list[str] | None = None
    if repo_root is not None:
        repo = load_repo(repo_root)
        if app not in repo.apps:
            raise ReconcilerError(
                f"{repo_root}: no app {app!r} (apps: {', '.join(sorted(repo.apps))})"
            )
        placed = [c.name for c in targets(repo, repo.apps[app])]
        unknown = [c for c in only if c not in placed]
        if unknown:
            raise ReconcilerError(f"app {app} does not target cluster {', '.join(unknown)}")
    if only:
        return sorted(only)
    return placed


def _read(
    state_dir: Path, app: str, clusters: list[str] | None, goal: Goal, revision: str | None
) -> Verdict:
    with Store.open_readonly(state_dir) as store:
        status = store.list_status(app=app)
        health = store.list_health(app=app)
        # Where a target turned Degraded: on another revision than the one it runs now?
        began = {
            row.cluster: changes[0].revision
            for row in health
            if row.health.health is Health.DEGRADED
            and (changes := store.health_history(app, row.cluster, limit=1))
        }
    return judge(status, health, goal, clusters=clusters, revision=revision, degraded_on=began)


def _table(app: str, goal: Goal, verdict: Verdict, left: float) -> Table:
    table = Table(
        title=f"waiting for {app} to be {goal.value} ({format_duration(max(0.0, left))} left)",
        title_justify="left",
        box=None,
        header_style="bold",
    )
    for header in ("CLUSTER", "SYNC", "HEALTH", "READY", "REVISION", ""):
        table.add_column(header)
    for t in verdict.targets:
        state = t.state.value if t.state is not None else "-"
        health = t.health.value if t.health is not None else "-"
        table.add_row(
            t.cluster,
            f"[{STATE_STYLE.get(t.state, '') if t.state else 'dim'}]{state}[/]",
            f"[{HEALTH_STYLE.get(t.health, '') if t.health else 'dim'}]{health}[/]",
            t.ready,
            (t.revision or "-")[:12],
            "✓" if t.outcome is Outcome.REACHED else t.reason,
        )
    return table


def _summary(app: str, goal: Goal, verdict: Verdict, revision: str | None) -> str:
    names = ", ".join(t.cluster for t in verdict.targets)
    at = f" at {revision}" if revision else ""
    return f"{app} is {goal.value}{at} on {len(verdict.targets)} cluster(s): {names}"


def _problems(app: str, shown: Iterable[TargetProgress]) -> list[str]:
    """``web on clusters a, b: <reason>``: the same reason once for all its clusters."""
    lines = []
    for t in shown:
        reason = without_target(t.reason, app, t.cluster)
        lines.append((f"{app} on {CLUSTERS}: {reason}", t.cluster))
    return once_per_message(lines)


@click.command("wait")
@click.argument(
    "repo", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option("--app", required=True, help="The app to wait for.")
@click.option("--cluster", "clusters", multiple=True, help="Only this cluster (repeatable).")
@click.option(
    "--for",
    "goal",
    type=click.Choice([g.value for g in Goal]),
    default=Goal.HEALTHY.value,
    help="synced: live matches Git; healthy: and its workloads work.",
)
@click.option("--revision", help="A commit (full or abbreviated) every target must have applied.")
@duration_option("--timeout", "5m", "Give up after this long (exit 1) short of the goal.")
@state_dir_option
@output_option(
    wide="the same as table (a live table on a terminal, a line per change otherwise); json "
    "and yaml print only the final state of every target"
)
def wait_command(
    repo: Path | None,
    app: str,
    clusters: tuple[str, ...],
    goal: str,
    revision: str | None,
    timeout: float,
    state_dir: Path,
    output: str,
) -> None:
    """Wait until every target of --app is synced or healthy, reading the daemon's state.

    The clusters are --cluster, else the app's placement in REPO (if given), else every cluster
    the daemon recorded for the app. Exit 0 when reached, 1 on timeout, 2 on an error or when a
    target turns Failed, InvalidConfig or (waiting for health) Degraded.
    """
    wanted = Goal(goal)
    expected = _expected_clusters(repo, app, clusters)
    sys.exit(_wait(state_dir, app, expected, wanted, revision, timeout, color(), output=output))


def _wait(
    state_dir: Path,
    app: str,
    clusters: list[str] | None,
    goal: Goal,
    revision: str | None,
    timeout: float,
    tty: bool,
    *,
    output: str = TABLE,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """``tty``: a live table (a terminal that takes colours); otherwise a line per change."""
    deadline = monotonic() + timeout
    shown: dict[str, str] = {}
    live: Live | None = None
    data = output in DATA
    verdict: Verdict | None = None
    ended = "timed_out"
    if tty and not data:
        live = Live(console=Console(), auto_refresh=False, transient=False)
        live.start()
    try:
        while True:
            verdict = _read(state_dir, app, clusters, goal, revision)
            left = deadline - monotonic()
            if live is not None:
                live.update(_table(app, goal, verdict, left), refresh=True)
            elif not data:
                for t in verdict.targets:
                    line = t.line()
                    if shown.get(t.cluster) != line:
                        shown[t.cluster] = line
                        click.echo(f"{app}  {line}")
            if verdict.outcome is Outcome.REACHED:
                ended = str(Outcome.REACHED)
                if not data:
                    click.echo(_summary(app, goal, verdict, revision))
                return EXIT_OK
            if verdict.outcome is Outcome.FAILED:
                ended = str(Outcome.FAILED)
                for problem in _problems(app, verdict.failures()):
                    click.echo(f"error: {problem}", err=True)
                return EXIT_ERROR
            if not daemon_running(state_dir):
                ended = "no_daemon"
                click.echo(
                    f"error: no daemon runs on {state_dir}: {app} will not become {goal.value}",
                    err=True,
                )
                return EXIT_ERROR
            if left <= 0:
                waiting = verdict.waiting() or list(verdict.targets)
                what = (
                    f"{len(waiting)} of {len(verdict.targets)} cluster(s)"
                    if verdict.targets
                    else "any cluster (none recorded)"
                )
                click.echo(
                    f"timed out after {format_duration(timeout)}: {app} is not {goal.value} on "
                    f"{what}",
                    err=True,
                )
                for problem in _problems(app, waiting):
                    click.echo(f"  {problem}", err=True)
                return EXIT_TIMEOUT
            sleep(min(POLL, max(0.0, left)))
    finally:
        if live is not None:
            live.stop()
        if data and verdict is not None:
            document = _document(app, goal, revision, ended, verdict)
            emit(output, lambda: document, str)


def _document(
    app: str, goal: Goal, revision: str | None, outcome: str, verdict: Verdict
) -> dict[str, Any]:
    """``wait -o json|yaml``: how waiting ended and every target's last state."""
    return {
        "app": app,
        "goal": str(goal),
        "revision": revision,
        "outcome": outcome,
        "targets": [
            {
                "cluster": t.cluster,
                "state": str(t.state) if t.state is not None else None,
                "health": str(t.health) if t.health is not None else None,
                "ready": t.ready,
                "revision": t.revision,
                "outcome": str(t.outcome),
                "reason": t.reason,
            }
            for t in verdict.targets
        ],
    }
