"""``reconciler run``: the daemon's options, the settings they make, and its wiring (state dir
lock, store, source, clients, chart cache, the fleet page, signals).

Exit codes: 0 (stopped cleanly; with ``--once``: everything synced or only drifted), 2 errors.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import click
import structlog

from reconciler.charts.cache import ChartCache
from reconciler.charts.credentials import ChartCredentials
from reconciler.charts.resolver import ChartResolver
from reconciler.cli.common import (
    count_option,
    duration_option,
    env_option,
    instance_option,
    kubeconfig_option,
    management_context_option,
    path_option,
    request_timeout_option,
    shard_namespace_option,
    state_dir_option,
)
from reconciler.cli.daemonlock import exclusive
from reconciler.cli.logsetup import configure_logging
from reconciler.cli.page import serve
from reconciler.daemon.guard import DEFAULT_LIMITS, PruneLimits
from reconciler.daemon.loop import Daemon
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.openfiles import raise_soft_limit
from reconciler.daemon.replicas import (
    ReplicaLeases,
    ShardSettings,
    default_replica_id,
    pass_outlives_lease,
)
from reconciler.daemon.schedule import Backoff, Settings
from reconciler.gitcredentials import GitCredentials
from reconciler.kube.leases import LeaseApi
from reconciler.kube.management import SharedObjects
from reconciler.kube.members import IN_CLUSTER
from reconciler.kube.pool import Clients
from reconciler.source import GitSource
from reconciler.store.db import Store
from reconciler.web.server import DEFAULT_LISTEN, parse_listen
from reconciler.workers import DEFAULT_SIZE
from reconciler.workers import configure as configure_workers


@dataclass(frozen=True)
class Sharing:
    """With several replicas: this replica's Leases and the objects replicas share."""

    leases: ReplicaLeases
    shared: SharedObjects


def share(
    clients: Clients,
    namespace: str,
    context: str | None,
    settings: ShardSettings,
    metrics: Metrics,
) -> Sharing:
    """Reach the management cluster (``context``, or in a pod its own cluster)."""
    credentials = clients.parse()
    if context is None:
        if IN_CLUSTER not in credentials.contexts:
            raise click.UsageError(
                "--shard-lease-namespace needs the management cluster: give --management-context "
                "CTX (a kubeconfig context), or run in a pod"
            )
        context = IN_CLUSTER
    timeout = min(clients.timeout, settings.renew)
    api = LeaseApi(credentials, context, namespace, timeout=timeout)
    shared = SharedObjects(
        clients.get("management", context, keep=True), namespace, settings.instance
    )
    # The session starts at the loop's first claim, once a revision is loaded: a replica that
    # cannot load any takes no share of the fleet.
    leases = ReplicaLeases(api, settings, metrics=metrics, start_on_claim=True)
    return Sharing(leases, shared)


def register_run_command(cli_group: click.Group) -> None:
    cli_group.add_command(run_command)


def _on_signals(daemon: Daemon) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        if daemon.stopping:  # asked twice: the user wants out now
            os._exit(128 + signum)
        daemon.stop()  # only sets a flag and writes one byte: safe in a signal handler

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


@click.command("run")
@env_option(
    "--repo",
    required=True,
    envvar="RECONCILER_REPO",
    metavar="URL|PATH",
    help="Config repo: a Git URL or path.",
)
@env_option(
    "--branch",
    envvar="RECONCILER_BRANCH",
    help="Branch to follow (default: the repo's HEAD).",
)
@duration_option("--interval", "30s", "Poll the repo this often.")
@duration_option(
    "--drift-interval",
    "60s",
    "Check every cluster for drift this often, even without new commits.",
)
@duration_option(
    "--health-interval",
    "5s",
    "Re-read targets whose health is not final yet (Progressing, ...) this often.",
)
@state_dir_option
@kubeconfig_option
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    help="Address of the fleet page (/), its JSON API (/api/), /healthz, /readyz and /metrics; "
    "loopback by default (port 0: any free port). Put it behind authentication when exposed.",
)
@click.option("--once", is_flag=True, help="One pass over every cluster, then exit: 0 ok, 2 error.")
@request_timeout_option
@duration_option(
    "--cluster-timeout",
    "5m",
    "A cluster's pass running longer is reported Failed and backed off.",
)
@click.option("--no-watch", is_flag=True, help="Poll a local repo instead of watching its refs.")
@duration_option(
    "--fetch-timeout",
    "10m",
    "Give up one git fetch after this long (a large repo's first clone takes a while).",
)
@path_option(
    "--git-ssh-key-file",
    "RECONCILER_GIT_SSH_KEY_FILE",
    "Private key for an ssh:// repo (needs --git-known-hosts-file).",
    dir_okay=False,
)
@path_option(
    "--git-known-hosts-file",
    "RECONCILER_GIT_KNOWN_HOSTS_FILE",
    "The ssh server's pinned host keys; nothing else is trusted.",
    dir_okay=False,
)
@path_option(
    "--git-token-file",
    "RECONCILER_GIT_TOKEN_FILE",
    "Token for an https:// repo, read at each fetch (rotation needs no restart).",
    dir_okay=False,
)
@env_option(
    "--git-username",
    default="git",
    envvar="RECONCILER_GIT_USERNAME",
    help="User name sent with --git-token-file (GitLab: oauth2, Bitbucket: x-token-auth).",
)
@instance_option
@count_option(
    "--max-prune-objects",
    DEFAULT_LIMITS.max_objects,
    "Hold a revision pruning more objects than this and ...",
    minimum=0,
)
@click.option(
    "--max-prune-percent",
    type=click.FloatRange(min=0, max=100),
    default=DEFAULT_LIMITS.max_percent,
    help="... more than this % of the objects managed, until released (reconciler.yaml wins).",
)
@path_option(
    "--chart-credentials",
    "RECONCILER_CHART_CREDENTIALS",
    "YAML file: chart source URL prefix -> username/password files, token file, CA file. "
    "Charts are cached in the state dir.",
    exists=True,
    dir_okay=False,
)
@count_option(
    "--workers",
    DEFAULT_SIZE,
    "Threads for cluster work, whatever the number of clusters: at most this many passes "
    "(and health checks) run at once; requests within a pass share the same threads.",
    minimum=1,
)
@shard_namespace_option(
    "Share the fleet with other replicas through Leases in this namespace of the "
    "management cluster: each replica reconciles only the clusters it owns."
)
@management_context_option
@env_option(
    "--replica-id",
    envvar="RECONCILER_REPLICA_ID",
    help="This replica's name in the Leases (default: $POD_NAME, in a pod the hostname, "
    "else hostname-pid). Unique per running replica.",
)
@duration_option(
    "--shard-lease-duration",
    "15s",
    "A replica whose Lease is not renewed for this long is gone: its clusters move.",
)
@duration_option(
    "--shard-renew-period",
    "5s",
    "Renew this replica's Lease (and look at the others') this often.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
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
    shard_namespace: str | None,
    management_context: str | None,
    replica_id: str | None,
    shard_lease_duration: float,
    shard_renew_period: float,
    workers: int,
    log_level: str,
) -> None:
    """Follow REPO and keep every cluster reconciled to it (the daemon)."""
    try:
        parse_listen(listen)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--listen") from None
    if shard_namespace is not None:
        if once:
            raise click.UsageError("--once cannot share the fleet (--shard-lease-namespace)")
        if shard_lease_duration < 1:
            raise click.BadParameter(
                f"{shard_lease_duration:g}s: must be at least 1s (a Lease's duration is in "
                "whole seconds)",
                param_hint="--shard-lease-duration",
            )
        whole = math.floor(shard_lease_duration)
        if not 0 < shard_renew_period <= whole / 2:
            raise click.BadParameter(
                f"{shard_renew_period:g}s: must be at most half of --shard-lease-duration "
                f"({whole}s in whole seconds), so one late renewal does not lose the Lease",
                param_hint="--shard-renew-period",
            )
    configure_logging(level=log_level)
    log = structlog.get_logger("reconciler.daemon")
    configure_workers(workers)
    limit = raise_soft_limit()
    if limit.raised:
        log.info("open-file limit raised", soft=limit.soft, hard=limit.hard, was=limit.before)
    settings = Settings(
        interval=interval,
        drift_interval=drift_interval,
        backoff=Backoff(initial=min(2.0, drift_interval), maximum=max(10.0, 5 * drift_interval)),
        cluster_timeout=cluster_timeout,
        watch=not no_watch,
        instance=instance,
        prune_limits=PruneLimits(max_prune_objects, max_prune_percent),
        health_interval=health_interval,
        max_parallel=workers,
        open_files=limit.soft,
    )
    with exclusive(state_dir), Store.open(state_dir) as store, contextlib.ExitStack() as web:
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
        # --once: a single pass each, nothing to keep current.
        clients = Clients(kubeconfig, timeout=request_timeout, watch=not once)
        metrics = Metrics()
        credentials = (
            ChartCredentials.load(chart_credentials) if chart_credentials else ChartCredentials()
        )
        chart_cache = ChartCache(state_dir / "charts")
        sharing = (
            share(
                clients,
                shard_namespace,
                management_context,
                ShardSettings(
                    namespace=shard_namespace,
                    replica=replica_id or default_replica_id(),
                    instance=instance,
                    duration=shard_lease_duration,
                    renew=shard_renew_period,
                ),
                metrics,
            )
            if shard_namespace is not None
            else None
        )
        daemon = Daemon(
            source,
            store,
            clients,
            settings=settings,
            metrics=metrics,
            charts=lambda: ChartResolver(chart_cache, credentials),
            gate=sharing.leases if sharing else None,
            shared=sharing.shared if sharing else None,
            replica=sharing.leases.me if sharing else None,
            live=sharing.leases.live if sharing else None,
        )
        endpoint = None
        if not once:
            page_store = web.enter_context(Store.open_readonly(state_dir))
            endpoint = serve(listen, daemon, metrics, page_store)
            log.info("listening", url=f"http://{endpoint.host}:{endpoint.port}", port=endpoint.port)
        log.info("state", state_dir=str(state_dir), repo=source.display, branch=branch)
        _on_signals(daemon)
        if sharing is not None:
            sharing.leases.on_change = daemon.waker.wake
            log.info(
                "sharing the fleet once a revision is loaded",
                replica=sharing.leases.me,
                namespace=shard_namespace,
                lease_duration=sharing.leases.settings.seconds,
                renew_period=shard_renew_period,
            )
            problem = pass_outlives_lease(cluster_timeout, sharing.leases.settings)
            if problem is not None:
                log.warning("passes may outlive the lease", problem=problem)
        try:
            code = daemon.run(once=once)
        finally:
            if sharing is not None:
                # Passes still in flight keep their clusters' Leases until the process ends.
                sharing.leases.stop(release=True, keep=daemon.busy)
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
