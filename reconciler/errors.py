"""The project's own exceptions.

Every error a user can cause is a ``ReconcilerError`` whose ``str()`` is one line naming what is
wrong and where (file:line, app, cluster, object). Anything else escaping is a bug and may show a
traceback. Errors from libraries are wrapped with ``raise ... from cause`` so the cause is kept.
"""

from __future__ import annotations

from dataclasses import dataclass


class ReconcilerError(Exception):
    """Base of all user-facing errors; ``str(err)`` is a complete one-line message."""


@dataclass(frozen=True, order=True)
class Problem:
    """One located problem in a config repo: ``file:line: field.path: message``."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class ConfigError(ReconcilerError):
    """A config repo failed validation; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def app_prefix(app: str, where: str) -> str:
    """How a message about an app somewhere starts (``where``: ``cluster c``, ``clusters a,
    b``, as ``presentation.clusters_phrase`` says them)."""
    return f"app {app}, {where}: "


def target_prefix(app: str, cluster: str) -> str:
    """How a message about one app on one cluster starts."""
    return app_prefix(app, f"cluster {cluster}")


def without_target(message: str, app: str, cluster: str) -> str:
    """``message`` without the ``target_prefix`` that its heading or line already says."""
    return message.removeprefix(target_prefix(app, cluster))


class RenderError(ReconcilerError):
    """Rendering one app for one cluster failed (template, helm, kustomize, override, patch)."""

    def __init__(self, message: str, *, app: str, cluster: str) -> None:
        self.app = app
        self.cluster = cluster
        self.message = message
        super().__init__(target_prefix(app, cluster) + message)


class SourceError(ReconcilerError):
    """The config repo could not be fetched or read at a revision."""


class KubeError(ReconcilerError):
    """A request to a cluster failed; ``status`` is the HTTP status when the server answered."""

    def __init__(
        self, message: str, *, cluster: str, obj: str | None = None, status: int | None = None
    ) -> None:
        self.cluster = cluster
        self.obj = obj
        self.message = message
        self.status = status
        where = f"cluster {cluster}" + (f", {obj}" if obj else "")
        super().__init__(f"{where}: {message}")


class ClusterUnreachable(KubeError):
    """The cluster's API server could not be reached (connection refused, timeout, TLS)."""


class RequestTimeout(KubeError):
    """A request got no answer within the request timeout (the server may be slow, not down)."""


class ConflictError(KubeError):
    """Server-side apply conflict: another field manager owns fields we want to set."""

    def __init__(self, message: str, *, cluster: str, obj: str | None, managers: list[str]) -> None:
        self.managers = managers
        super().__init__(message, cluster=cluster, obj=obj, status=409)


class ChartError(ReconcilerError):
    """A chart from a Helm repository or OCI registry could not be resolved, fetched or verified."""


class ChartSourceUnavailable(ChartError):
    """The chart's source could not be asked (down, refusing, broken answers) and no cached
    version fits: asking again later may resolve it."""
