"""What every command-line module shares: exit codes, durations and times, common options."""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from reconciler.charts.credentials import ChartCredentials
    from reconciler.charts.model import ChartLock
    from reconciler.charts.resolver import ChartResolver
    from reconciler.config.model import Repo
    from reconciler.errors import ReconcilerError
    from reconciler.kube.credentials import Credentials
    from reconciler.kube.management import SharedObjects
    from reconciler.review.plan import LiveOptions

EXIT_OK = 0
EXIT_CHANGES = 1  # diff, plan, drift: something to look at
EXIT_ERROR = 2

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def env_option(*decls: str, envvar: str, **attrs: Any) -> Decorator:
    """An option also read from the environment variable ``envvar``, which ``--help`` names
    (every option read from the environment says so)."""
    return click.option(*decls, envvar=envvar, show_envvar=True, **attrs)


repo_argument = click.argument(
    "repo", type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="REPO"
)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str) -> float:
    """``30s``, ``1m``, ``1h30m``, ``500ms``, ``2d``, or plain seconds -> seconds."""
    value = text.strip().lower()
    try:
        return float(value)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION.finditer(value):
        if match.start() != pos:
            break
        total += float(match[1]) * _UNITS[match[2]]
        pos = match.end()
    if not value or pos != len(value):
        raise ValueError(f"{text!r} is not a duration (e.g. 30s, 5m, 1h30m)")
    return total


def format_duration(seconds: float) -> str:
    """``5m``, ``1m30s``, ``45s``, ``1.5s``: the way durations are written on the command line."""
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 or seconds == int(seconds) else f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{rest}s" if rest else "")


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


class _Duration(click.ParamType[float, Any]):
    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float | int):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


DURATION = _Duration()


def duration_option(flag: str, default: str, help_text: str) -> Decorator:
    """An option taking a duration (``30s``, ``5m``, ``1h30m``), its default shown in --help."""
    return click.option(flag, type=DURATION, default=default, help=help_text)


def count_option(flag: str, default: int, help_text: str, *, minimum: int) -> Decorator:
    """An option taking a whole number of at least ``minimum``, its default shown in --help."""
    return click.option(flag, type=click.IntRange(min=minimum), default=default, help=help_text)


REQUEST_TIMEOUT = "60s"  # kube.client.DEFAULT_TIMEOUT: fits a ~1 MB CRD on a busy server
request_timeout_option = duration_option(
    "--request-timeout",
    REQUEST_TIMEOUT,
    "Timeout of one request to a cluster (a big CRD on a busy server takes seconds).",
)

kubeconfig_option = env_option(
    "--kubeconfig",
    envvar="KUBECONFIG",
    help="kubeconfig with one context per cluster.",
)


context_option = click.option(
    "--context",
    metavar="CONTEXT",
    help="Only the cluster whose kubeconfig context is CONTEXT (as kubectl --context; the "
    "repo's cluster file names its context). With --cluster, they must agree.",
)


def cluster_of_context(
    repo: Repo, context: str, cluster: str | None, credentials: Credentials | None = None
) -> str:
    """The one cluster of ``repo`` whose kubeconfig context is ``context`` (``--context``).

    An error lists what exists: the kubeconfig's contexts when it has no such context, the
    repo's clusters and their contexts when none of them uses it.
    """
    from reconciler.errors import ReconcilerError

    if credentials is not None and context not in credentials.contexts:
        known = ", ".join(credentials.contexts) or "none"
        raise ReconcilerError(
            f"--context {context}: {credentials.origin} has no such context (contexts: {known})"
        )
    if cluster is not None and cluster in repo.clusters:
        used = repo.clusters[cluster].context
        if used != context:
            raise ReconcilerError(
                f"--context {context}: cluster {cluster} uses context {used}; give one of them"
            )
        return cluster
    names = sorted(c.name for c in repo.clusters.values() if c.context == context)
    if not names:
        known = ", ".join(f"{c.context} ({c.name})" for c in repo.clusters.values()) or "none"
        raise ReconcilerError(
            f"--context {context}: no cluster of the repo uses it (contexts: {known})"
        )
    if len(names) > 1:
        raise ReconcilerError(
            f"--context {context}: clusters {', '.join(names)} all use it; name one with --cluster"
        )
    return names[0]


def _valid_instance(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from reconciler.engine import check_instance
    from reconciler.errors import ReconcilerError

    try:
        check_instance(value)
    except ReconcilerError as err:
        raise click.BadParameter(str(err)) from None
    return value


instance_option = env_option(
    "--instance",
    callback=_valid_instance,
    envvar="RECONCILER_INSTANCE",
    default="default",
    help="Name of this reconciler's inventories; instances sharing a cluster never prune "
    "each other's apps.",
)


def unseen(label: str, kind: str, given: str, seen: Iterable[str]) -> ReconcilerError:
    """The error for a name (``kind``: app, cluster) the daemon has never seen: what exists,
    and the closest name when one is close. ``label`` is how the user gave it (``--app web``)."""
    from reconciler.config.messages import did_you_mean
    from reconciler.errors import ReconcilerError

    names = sorted(set(seen))
    known = ", ".join(names) or "none yet"
    return ReconcilerError(
        f"{label}: the daemon has seen no such {kind} ({kind}s: {known})"
        f"{did_you_mean(given, names)}"
    )


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/reconciler`` or ``~/.local/state/reconciler``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "reconciler"


state_dir_option = env_option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="RECONCILER_STATE_DIR",
    default=default_state_dir,
    show_default="$XDG_STATE_HOME/reconciler or ~/.local/state/reconciler",
    help="Where the daemon keeps its state (SQLite) and its copy of the repo.",
)


def path_option(flag: str, envvar: str, help_text: str, **path: bool) -> Decorator:
    """An option naming a file or directory (``path``: click.Path's checks), also read from
    ``envvar``; None when not given."""
    return env_option(
        flag,
        envvar=envvar,
        type=click.Path(path_type=Path, **path),
        help=help_text,
    )


def _gathered(
    command: Callable[..., Any], name: str, options: Iterable[str], make: Callable[..., Any]
) -> Callable[..., Any]:
    """``command`` taking the values of ``options`` as one argument, ``name``: what ``make``
    makes of them (in that order)."""
    options = tuple(options)

    @functools.wraps(command)
    def with_gathered(*args: Any, **kwargs: Any) -> Any:
        values = [kwargs.pop(option) for option in options]
        return command(*args, **{name: make(*values)}, **kwargs)

    return with_gathered


@dataclass(frozen=True)
class ChartSources:
    """``--chart-cache`` and ``--chart-credentials``: where remote charts are kept and how
    their sources are reached (never from the config repo)."""

    cache: Path | None
    credentials: ChartCredentials

    def resolver(self) -> ChartResolver:
        """A resolver over the chart cache."""
        from reconciler.charts.cache import ChartCache
        from reconciler.charts.resolver import ChartResolver
        from reconciler.toolchain import cache_root

        return ChartResolver(ChartCache(self.cache or cache_root() / "charts"), self.credentials)


def _chart_sources(cache: Path | None, credentials: Path | None) -> ChartSources:
    """The chart options, the credentials file read at once: a file that cannot be read or
    parsed is one error naming it, whether or not the repo has remote charts (as ``run``)."""
    from reconciler.charts.credentials import ChartCredentials

    return ChartSources(
        cache, ChartCredentials.load(credentials) if credentials else ChartCredentials()
    )


def chart_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The chart options (see ChartSources); the command takes them as one argument,
    ``chart_sources``."""
    options = ("chart_cache", "chart_credentials")
    command = _gathered(command, "chart_sources", options, _chart_sources)
    command = path_option(
        "--chart-credentials",
        "RECONCILER_CHART_CREDENTIALS",
        "YAML file: chart source URL prefix -> username/password files, token file, CA file.",
        dir_okay=False,
    )(command)
    return path_option(
        "--chart-cache",
        "RECONCILER_CHART_CACHE",
        "Cache of charts from Helm repositories and OCI registries "
        "(default: ~/.cache/reconciler/charts).",
        file_okay=False,
    )(command)


def _live_options(kubeconfig: str | None, instance: str, timeout: float) -> LiveOptions:
    from reconciler.review.plan import LiveOptions

    return LiveOptions(kubeconfig, instance, timeout)


def live_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--kubeconfig``, ``--instance``, ``--request-timeout`` and the chart options: what a
    command that talks to the clusters (``diff``, ``apply``) needs. The command takes them as
    two arguments, ``live`` (a LiveOptions) and ``chart_sources``."""
    options = ("kubeconfig", "instance", "request_timeout")
    return _cluster_options(chart_options(_gathered(command, "live", options, _live_options)))


def _cluster_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--kubeconfig``, ``--instance`` and ``--request-timeout``, in that order in the help."""
    for option in (request_timeout_option, instance_option, kubeconfig_option):
        command = option(command)
    return command


def lock_charts(
    repo: Repo, resolver: ChartResolver, apps: Iterable[str] | None = None
) -> ChartLock:
    """Resolve the repo's remote charts; a chart served from the cache is noted on stderr."""
    from reconciler.charts.lock import lock_charts as lock

    charts = lock(repo, resolver, apps=apps)
    for app, chart in sorted(charts.charts.items()):
        if chart.note:
            click.echo(
                f"note: app {app}: chart {chart.source} {chart.version}: {chart.note}", err=True
            )
    return charts


management_context_option = env_option(
    "--management-context",
    envvar="RECONCILER_MANAGEMENT_CONTEXT",
    metavar="CTX",
    help="kubeconfig context of the management cluster (default in a pod: its own cluster).",
)


def shard_namespace_option(help_text: str) -> Decorator:
    """``--shard-lease-namespace``: where replicas share the fleet (``run`` and the commands
    that read it say what it means to them in ``help_text``)."""
    return env_option(
        "--shard-lease-namespace",
        "shard_namespace",
        envvar="RECONCILER_SHARD_LEASE_NAMESPACE",
        metavar="NS",
        help=help_text,
    )


def management_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--shard-lease-namespace`` and ``--management-context``: with several replicas, where
    they share the fleet (the same flags as ``run``); commands then read and write there."""
    command = management_context_option(command)
    return shard_namespace_option(
        "Namespace of the replicas' Leases and shared state on the management cluster: "
        "read (and write commands) there instead of a local state dir."
    )(command)


@dataclass(frozen=True)
class ManagementCluster:
    """Where several replicas share the fleet: ``--shard-lease-namespace`` on the cluster of
    ``--management-context``, reached like the member clusters."""

    namespace: str
    context: str | None
    kubeconfig: str | None
    instance: str
    timeout: float

    def connect(self) -> SharedObjects:
        """The management cluster's shared objects of ``instance`` in ``namespace``."""
        from reconciler.kube.management import SharedObjects
        from reconciler.kube.pool import Clients

        clients = Clients(self.kubeconfig, timeout=self.timeout)
        chosen = self.context or _default_management_context(clients)
        return SharedObjects(clients.get("management", chosen), self.namespace, self.instance)


def _management_cluster(namespace: str | None, *access: Any) -> ManagementCluster | None:
    return None if namespace is None else ManagementCluster(namespace, *access)


def shared_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--shard-lease-namespace``, ``--management-context``, ``--kubeconfig``, ``--instance``
    and ``--request-timeout``: where several replicas share the fleet, for the commands that
    read (and write) it there instead of in a local state dir. The command takes them as one
    argument, ``shared``: a ManagementCluster, or None without ``--shard-lease-namespace``."""
    command = _gathered(
        command,
        "shared",
        ("shard_namespace", "management_context", "kubeconfig", "instance", "request_timeout"),
        _management_cluster,
    )
    return management_options(_cluster_options(command))


def _default_management_context(clients: Any) -> str:
    from reconciler.errors import ReconcilerError
    from reconciler.kube.members import IN_CLUSTER

    if IN_CLUSTER in clients.parse().contexts:
        return IN_CLUSTER
    raise ReconcilerError("no management cluster: give --management-context CTX")
