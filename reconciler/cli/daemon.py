"""CLI commands of the daemon: ``run`` (the loop), ``status`` and ``drift`` (read its state).

State lives in ``--state-dir``: ``$RECONCILER_STATE_DIR``, else ``$XDG_STATE_HOME/reconciler``,
else ``~/.local/state/reconciler`` — the same default for every command, from any directory.

Exit codes: ``run`` 0 (stopped cleanly; with ``--once``: everything synced or only drifted),
2 errors. ``drift`` 1 when open drift is listed, 0 when none. ``status`` 0. Errors: 2.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import click
import structlog

from reconciler.charts.cache import ChartCache
from reconciler.charts.credentials import ChartCredentials
from reconciler.charts.resolver import ChartResolver
from reconciler.cli.common import (
    DURATION,
    EXIT_CHANGES,
    EXIT_OK,
    REQUEST_TIMEOUT,
    instance_option,
    kubeconfig_option,
    management_options,
    parse_duration,
    request_timeout_option,
    state_dir_option,
)
from reconciler.cli.shared import connect, read_rollouts, read_status
from reconciler.daemon.desired import Desired
from reconciler.daemon.guard import DEFAULT_LIMITS, PruneLimits
from reconciler.daemon.loop import Daemon
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.schedule import Backoff, Settings
from reconciler.errors import ReconcilerError
from reconciler.gitcredentials import GitCredentials
from reconciler.health.model import Health
from reconciler.kube.management import SharedObjects
from reconciler.kube.pool import Clients
from reconciler.objects import ObjectRef
from reconciler.presentation import format_time
from reconciler.private import private_dir, private_file
from reconciler.report import (
    drift_json,
    drift_markdown,
    drift_table,
    health_changes_json,
    health_changes_markdown,
    health_changes_table,
    source_line,
    status_json,
    status_table,
)
from reconciler.rollout.codec import state_from_data, state_to_data
from reconciler.rollout.report import status_section
from reconciler.source import GitSource
from reconciler.store.db import DB_NAME, Store
from reconciler.store.rows import DriftRow, RevisionRow, RolloutRow, State, StatusRow
from reconciler.web.app import create_app
from reconciler.web.model import ClusterInfo, Fleet
from reconciler.web.server import DEFAULT_LISTEN, HttpServer, parse_listen
from reconciler.web.snapshot import SnapshotCache


def register_daemon_commands(cli_group: click.Group) -> None:
    """Add ``run``, ``status``, ``drift`` and ``release`` to ``cli_group``."""
    cli_group.add_command(run_command)
    cli_group.add_command(release_command)
    cli_group.add_command(status_command)
    cli_group.add_command(drift_command)


# ---- parsing ----------------------------------------------------------------------------------


def parse_since(text: str, now: datetime) -> datetime:
    """A duration ago (``1h``, ``30m``) or an ISO time; a time without zone is UTC. A bare
    number is refused: seconds, minutes or hours ago would be a guess."""
    if re.fullmatch(r"\s*\d+(\.\d+)?\s*", text):
        raise ValueError(
            f"{text!r} has no unit: write a duration (90s, 30m, 1h) or an ISO time "
            "(2026-11-22T12:00:00Z)"
        )
    with contextlib.suppress(ValueError):
        return now - timedelta(seconds=parse_duration(text))
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (1h, 30m) nor an ISO time (2026-11-22T12:00:00Z)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def format_duration(seconds: float) -> str:
    """``5m``, ``1m30s``, ``45s``, ``1.5s``: the way durations are written on the command line."""
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 or seconds == int(seconds) else f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{rest}s" if rest else "")


# ---- logging ----------------------------------------------------------------------------------


def configure_logging(stream: TextIO | None = None, level: str = "info") -> None:
    """structlog to ``stream`` (stderr): console lines on a terminal, JSON lines otherwise."""
    out = stream if stream is not None else sys.stderr
    tty = out.isatty()
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if tty:
        # Never show locals in tracebacks: frames hold Secret values and credentials.
        formatter = structlog.dev.RichTracebackFormatter(show_locals=False)
        processors.append(structlog.dev.ConsoleRenderer(colors=True, exception_formatter=formatter))
    else:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


# ---- run ----------------------------------------------------------------------------------------


def daemon_running(state_dir: Path) -> bool:
    """Whether a daemon holds the state dir's lock (the lock dies with its process)."""
    try:
        with (state_dir / "daemon.lock").open("r") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


@contextlib.contextmanager
def _exclusive(state_dir: Path) -> Iterator[None]:
    """One daemon per state dir: a second one would fight over the store and the mirror."""
    path = state_dir / "daemon.lock"
    try:
        private_dir(state_dir)
        lock_file = private_file(path).open("a+")
    except OSError as err:
        raise ReconcilerError(f"{state_dir}: cannot use as state dir: {err.strerror}") from err
    with lock_file as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise ReconcilerError(
                f"{state_dir}: another daemon (pid {holder}) runs on this state dir"
            ) from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)


def _on_signals(daemon: Daemon) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        if daemon.stopping:  # asked twice: the user wants out now
            os._exit(128 + signum)
        daemon.stop()  # only sets a flag and writes one byte: safe in a signal handler

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


@click.command("run")
@click.option(
    "--repo",
    required=True,
    envvar="RECONCILER_REPO",
    metavar="URL|PATH",
    help="Config repo: a Git URL or path ($RECONCILER_REPO).",
)
@click.option(
    "--branch", envvar="RECONCILER_BRANCH", help="Branch to follow (default: the repo's HEAD)."
)
@click.option(
    "--interval", type=DURATION, default="30s", show_default=True, help="Poll the repo this often."
)
@click.option(
    "--drift-interval",
    type=DURATION,
    default="60s",
    show_default=True,
    help="Check every cluster for drift this often, even without new commits.",
)
@click.option(
    "--health-interval",
    type=DURATION,
    default="5s",
    show_default=True,
    help="Re-read targets whose health is not final yet (Progressing, ...) this often.",
)
@state_dir_option
@kubeconfig_option
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    help="Address of the fleet page (/), its JSON API (/api/), /healthz, /readyz and /metrics; "
    "loopback by default (port 0: any free port). Put it behind authentication when exposed.",
)
@click.option("--once", is_flag=True, help="One pass over every cluster, then exit: 0 ok, 2 error.")
@click.option(
    "--request-timeout",
    type=DURATION,
    default=REQUEST_TIMEOUT,
    show_default=True,
    help="Timeout of one request to a cluster.",
)
@click.option(
    "--cluster-timeout",
    type=DURATION,
    default="5m",
    show_default=True,
    help="A cluster's pass running longer is reported Failed and backed off.",
)
@click.option("--no-watch", is_flag=True, help="Poll a local repo instead of watching its refs.")
@click.option(
    "--fetch-timeout",
    type=DURATION,
    default="10m",
    show_default=True,
    help="Give up one git fetch after this long (a large repo's first clone takes a while).",
)
@click.option(
    "--git-ssh-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="RECONCILER_GIT_SSH_KEY_FILE",
    help="Private key for an ssh:// repo (needs --git-known-hosts-file).",
)
@click.option(
    "--git-known-hosts-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="RECONCILER_GIT_KNOWN_HOSTS_FILE",
    help="The ssh server's pinned host keys; nothing else is trusted.",
)
@click.option(
    "--git-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="RECONCILER_GIT_TOKEN_FILE",
    help="Token for an https:// repo, read at each fetch (rotation needs no restart).",
)
@click.option(
    "--git-username",
    default="git",
    show_default=True,
    envvar="RECONCILER_GIT_USERNAME",
    help="User name sent with --git-token-file (GitLab: oauth2, Bitbucket: x-token-auth).",
)
@instance_option
@click.option(
    "--max-prune-objects",
    type=click.IntRange(min=0),
    default=DEFAULT_LIMITS.max_objects,
    show_default=True,
    help="Hold a revision pruning more objects than this and ...",
)
@click.option(
    "--max-prune-percent",
    type=click.FloatRange(min=0, max=100),
    default=DEFAULT_LIMITS.max_percent,
    show_default=True,
    help="... more than this % of the objects managed, until released (reconciler.yaml wins).",
)
@click.option(
    "--chart-credentials",
    envvar="RECONCILER_CHART_CREDENTIALS",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML file: chart source URL prefix -> username/password files, token file, CA file "
    "(default: $RECONCILER_CHART_CREDENTIALS). Charts are cached in the state dir.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def run_command(
    repo: str,
    branch: str | None,
    interval: float,
    drift_interval: float,
    health_interval: float,
    state_dir: Path,
    kubeconfig: str | None,
    listen: str,
    once: bool,
    request_timeout: float,
    cluster_timeout: float,
    no_watch: bool,
    fetch_timeout: float,
    git_ssh_key_file: Path | None,
    git_known_hosts_file: Path | None,
    git_token_file: Path | None,
    git_username: str,
    instance: str,
    max_prune_objects: int,
    max_prune_percent: float,
    chart_credentials: Path | None,
    log_level: str,
) -> None:
    """Follow REPO and keep every cluster reconciled to it (the daemon)."""
    try:
        parse_listen(listen)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--listen") from None
    configure_logging(level=log_level)
    log = structlog.get_logger("reconciler.daemon")
    settings = Settings(
        interval=interval,
        drift_interval=drift_interval,
        backoff=Backoff(initial=min(2.0, drift_interval), maximum=max(10.0, 5 * drift_interval)),
        cluster_timeout=cluster_timeout,
        watch=not no_watch,
        instance=instance,
        prune_limits=PruneLimits(max_prune_objects, max_prune_percent),
        health_interval=health_interval,
    )
    with _exclusive(state_dir), Store.open(state_dir) as store, contextlib.ExitStack() as web:
        git_credentials = GitCredentials(
            ssh_key_file=git_ssh_key_file,
            known_hosts_file=git_known_hosts_file,
            token_file=git_token_file,
            username=git_username,
        )
        source = GitSource(
            repo,
            branch,
            state_dir / "source",
            fetch_timeout=fetch_timeout,
            credentials=git_credentials,
        )
        clients = Clients(kubeconfig, timeout=request_timeout)
        metrics = Metrics()
        credentials = (
            ChartCredentials.load(chart_credentials) if chart_credentials else ChartCredentials()
        )
        chart_cache = ChartCache(state_dir / "charts")
        daemon = Daemon(
            source,
            store,
            clients,
            settings=settings,
            metrics=metrics,
            charts=lambda: ChartResolver(chart_cache, credentials),
        )
        endpoint = None
        if not once:
            page_store = web.enter_context(Store.open_readonly(state_dir))
            endpoint = _serve(listen, daemon, metrics, page_store)
            log.info("listening", url=f"http://{endpoint.host}:{endpoint.port}", port=endpoint.port)
        log.info("state", state_dir=str(state_dir), repo=source.display, branch=branch)
        _on_signals(daemon)
        try:
            code = daemon.run(once=once)
        finally:
            if endpoint is not None:
                endpoint.stop()
            daemon.close()
    if daemon.busy:
        # A pass is stuck on a slow cluster. The store is closed and nothing is half written;
        # skip the interpreter's join of the client's worker threads, which would wait for it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    clients.close()
    sys.exit(code)


def _fleet(daemon: Daemon) -> Callable[[], Fleet | None]:
    """The clusters of the revision the daemon runs (for the page's labels and grouping) and
    the objects it renders per target; built once per generation."""
    built: dict[int, Fleet] = {}

    def fleet() -> Fleet | None:
        desired = daemon.desired
        if desired is None:
            return None
        if desired.generation not in built:
            built.clear()
            built[desired.generation] = Fleet(
                tuple(
                    ClusterInfo(c.name, dict(c.labels), c.paused)
                    for c in desired.repo.clusters.values()
                ),
                version=str(desired.generation),
                objects=partial(_rendered_objects, desired),
            )
        return built[desired.generation]

    return fleet


def _rendered_objects(desired: Desired, app: str, cluster: str) -> tuple[str, ...] | None:
    for target in desired.targets.get(cluster, ()):
        if target.app == app and target.rendered is not None:
            return tuple(str(ObjectRef.of(m)) for m in target.rendered.objects)
    return None


def _serve(listen: str, daemon: Daemon, metrics: Metrics, store: Store) -> HttpServer:
    """Probes, metrics, the page and its API on ``listen``; the page reads the state through
    ``store``, a read-only connection of its own, so it never waits on the daemon's writes."""
    stopping = threading.Event()
    cache = SnapshotCache(store, _fleet(daemon))
    app = create_app(
        cache,
        metrics.registry,
        ready=lambda: daemon.ready,
        healthy=lambda: daemon.healthy,
        stopping=stopping,
    )
    return HttpServer(listen, app, stopping=stopping).start()


# ---- status and drift ---------------------------------------------------------------------------


def _revision_header(revision: RevisionRow | None) -> str:
    if revision is None:
        return ""
    seen = format_time(revision.seen_at)
    if revision.held:
        return f"Revision {revision.sha[:12]} (seen {seen}): HELD, not applied\n  {revision.held}\n"
    if revision.valid and revision.error:
        lines = [f"Revision {revision.sha[:12]} (seen {seen}): applied except where it is broken"]
        lines += [f"  {line}" for line in revision.error.splitlines()]
        return "\n".join(lines) + "\n"
    if revision.valid:
        return f"Revision {revision.sha[:12]} (seen {seen}): valid\n"
    lines = [f"Revision {revision.sha[:12]} (seen {seen}): INVALID, not applied"]
    lines += [f"  {line}" for line in (revision.error or "").splitlines()]
    return "\n".join(lines) + "\n"


@click.command("release")
@click.argument("revision")
@state_dir_option
def release_command(revision: str, state_dir: Path) -> None:
    """Let a revision the prune guard holds apply (recorded with your user name and the time).

    REVISION is its sha or a unique prefix, as `reconciler status` shows it.
    """
    if not (state_dir / DB_NAME).is_file():
        raise ReconcilerError(f"no state in {state_dir}: is the daemon running with --state-dir?")
    with Store.open(state_dir) as store:
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


_FAILING = (State.FAILED, State.UNREACHABLE, State.INVALID_CONFIG, State.HELD)
_UNHEALTHY = (Health.DEGRADED, Health.MISSING)


def _echo_data(text_json: str) -> None:
    """A JSON document printed as YAML (``-o yaml``), keys in the same snake_case."""
    import json

    import yaml

    click.echo(yaml.safe_dump(json.loads(text_json), sort_keys=False), nl=False)


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
@management_options
@kubeconfig_option
@instance_option
@request_timeout_option
def status_command(
    state_dir: Path,
    output: str,
    exit_code: bool,
    shard_namespace: str | None,
    management_context: str | None,
    kubeconfig: str | None,
    instance: str,
    request_timeout: float,
) -> None:
    """How fetching the repo goes, the newest revision, and the state of every app on every
    cluster, as the daemon last saw them.

    With --shard-lease-namespace: as every replica published them on the management cluster.
    """
    if shard_namespace is not None:
        _shared_status(
            output,
            exit_code,
            connect(kubeconfig, management_context, shard_namespace, instance, request_timeout),
        )
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
    if output in ("json", "yaml"):
        document = status_json(rows, source, revision, running, health, rollout_rows, pin_rows)
        click.echo(document, nl=False) if output == "json" else _echo_data(document)
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


def _shared_status(output: str, exit_code: bool, shared: SharedObjects) -> None:
    """``status`` from what the replicas published: the same table and formats, a REPLICA
    column in wide output and a ``replica`` per target in JSON/YAML."""
    fleet = read_status(shared)
    shared_rollouts = read_rollouts(shared)
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
        document = status_json(
            fleet.status,
            None,
            None,
            None,
            fleet.health,
            rollout_rows,
            pin_rows,
            replicas=fleet.replicas,
        )
        click.echo(document, nl=False) if output == "json" else _echo_data(document)
        sys.exit(code)
    pins = [(p.app, p.cluster, p.revision, p.user, p.at.timestamp()) for p in pin_rows]
    table = status_table(
        fleet.status,
        color=sys.stdout.isatty(),
        health=fleet.health,
        replicas=fleet.replicas if output == "wide" else None,
    )
    section = status_section(rollouts, pins, time.time())
    click.echo(table + ("\n" + section if section else ""), nl=False)
    if output == "wide":
        for r in fleet.status:
            if r.message:
                click.echo(f"{r.app}/{r.cluster}: {r.message}")
    sys.exit(code)


def _known(store: Store, app: str | None, cluster: str | None) -> None:
    """``--app`` and ``--cluster`` must name what the daemon has seen: a typo is an error
    listing what exists, not an empty history."""
    _known_in(store.list_status(), store.list_drift(), app, cluster)


def _known_in(
    rows: list[StatusRow], drift: list[DriftRow], app: str | None, cluster: str | None
) -> None:
    for flag, given, seen in (
        ("app", app, {r.app for r in rows} | {d.app for d in drift}),
        ("cluster", cluster, {r.cluster for r in rows} | {d.cluster for d in drift}),
    ):
        if given is not None and given not in seen:
            known = ", ".join(sorted(seen)) or "none yet"
            raise ReconcilerError(
                f"--{flag} {given}: the daemon has seen no such {flag} ({flag}s: {known})"
            )


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
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "wide", "json", "yaml", "markdown"]),
    default="table",
    show_default=True,
    help="wide: the same table as table.",
)
@management_options
@kubeconfig_option
@instance_option
@request_timeout_option
def drift_command(
    state_dir: Path,
    app: str | None,
    cluster: str | None,
    since: str | None,
    only_open: bool,
    health_changes: bool,
    output: str,
    shard_namespace: str | None,
    management_context: str | None,
    kubeconfig: str | None,
    instance: str,
    request_timeout: float,
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
    if shard_namespace is not None:
        if health_changes:
            raise click.UsageError(
                "--health reads a replica's own history: use it with --state-dir, "
                "not --shard-lease-namespace"
            )
        fleet = read_status(
            connect(kubeconfig, management_context, shard_namespace, instance, request_timeout)
        )
        _known_in(fleet.status, fleet.drift, app, cluster)
        rows = [
            r
            for r in fleet.drift
            if (app is None or r.app == app)
            and (cluster is None or r.cluster == cluster)
            and (since_at is None or r.detected_at >= since_at)
        ]
        _print_drift(rows, output)
        return
    with Store.open_readonly(state_dir) as store:
        _known(store, app, cluster)
    if health_changes:
        with Store.open_readonly(state_dir) as store:
            changes = store.health_history(app=app, cluster=cluster, since=since_at)
        if output == "json":
            click.echo(health_changes_json(changes), nl=False)
        elif output == "yaml":
            _echo_data(health_changes_json(changes))
        elif output == "markdown":
            click.echo(health_changes_markdown(changes), nl=False)
        else:
            click.echo(health_changes_table(changes, color=sys.stdout.isatty()), nl=False)
        sys.exit(EXIT_OK)
    with Store.open_readonly(state_dir) as store:
        rows = store.list_drift(app=app, cluster=cluster, since=since_at, open_only=only_open)
    _print_drift(rows, output)


def _print_drift(rows: list[DriftRow], output: str) -> None:
    if output == "json":
        click.echo(drift_json(rows), nl=False)
    elif output == "yaml":
        _echo_data(drift_json(rows))
    elif output == "markdown":
        click.echo(drift_markdown(rows), nl=False)
    else:
        click.echo(drift_table(rows, color=sys.stdout.isatty()), nl=False)
    sys.exit(EXIT_CHANGES if any(r.open for r in rows) else EXIT_OK)
