"""Load and render a config tree: the one way from a directory of files to every target's
desired objects, for the CLI commands, ``plan`` and the daemon.

Strict (the CLI and ``plan``): any problem is a ``ConfigError`` naming every located problem.
Partial (the daemon): a broken app, cluster or group is left out and listed, so it holds only
itself; only problems no unit owns (the repo itself, ``reconciler.yaml``) make the whole tree
invalid, and then nothing is rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from reconciler.charts.model import ChartLock
from reconciler.config.load import load_partial
from reconciler.config.model import PartialRepo, Repo
from reconciler.errors import ConfigError
from reconciler.render import Capabilities, RenderCache, TargetResult, render_all
from reconciler.toolchain import Toolchain

Render = Callable[[Repo, ChartLock], list[TargetResult]]


class Rendered(NamedTuple):
    repo: Repo  # what loaded
    targets: list[TargetResult]
    charts: ChartLock  # the remote charts the render used (empty without ``lock``)
    partial: PartialRepo  # the whole load: what did not load, and why

    @property
    def invalid(self) -> ConfigError | None:
        """Problems no unit owns (partial loads only): nothing was locked or rendered."""
        return ConfigError(self.partial.problems) if self.partial.repo_problems else None


def load_and_render(
    root: Path,
    *,
    partial: bool = False,
    apps: Iterable[str] | None = None,
    clusters: Iterable[str] | None = None,
    tools: Toolchain | None = None,
    cache: RenderCache | None = None,
    lock: Callable[[Repo], ChartLock] | None = None,
    capabilities: Callable[[Repo], Mapping[str, Capabilities]] | None = None,
    load: Callable[[Path], PartialRepo] = load_partial,
    render: Render | None = None,
) -> Rendered:
    """The repo at ``root`` and its rendered targets (only ``apps`` x ``clusters`` if given);
    ``lock`` resolves the repo's remote charts first; ``capabilities`` says per cluster what
    Helm is told the cluster is (default: what offline renders assume); ``render`` replaces
    the whole render step (the daemon's: capabilities asked of the clusters, a cache per
    revision).

    Strict (default): raises ``ConfigError`` (every located problem) when anything does not
    load. ``partial``: broken units are left out (``Rendered.partial`` lists them), and
    problems no unit owns are ``Rendered.invalid`` with nothing rendered. A target that does
    not render is a result with its ``RenderError``, never an exception.
    """
    loaded = load(root)
    if loaded.repo_problems or (loaded.broken and not partial):
        if not partial:
            raise ConfigError(loaded.problems)
        return Rendered(loaded.repo, [], ChartLock(), loaded)
    repo = loaded.repo
    charts = lock(repo) if lock is not None else ChartLock()
    if render is not None:
        return Rendered(repo, render(repo, charts), charts, loaded)
    targets = render_all(
        repo,
        apps=apps,
        clusters=clusters,
        tools=tools,
        cache=cache,
        charts=charts,
        capabilities=capabilities(repo) if capabilities is not None else None,
    )
    return Rendered(repo, targets, charts, loaded)
