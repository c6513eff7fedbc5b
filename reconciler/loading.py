"""Load and render a config tree: how the CLI commands and ``plan`` get from a directory of
files to every target's desired objects (the daemon loads unit by unit with
``config.load.load_partial``, so one broken app holds only itself, then renders the same way)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from reconciler.charts.model import ChartLock
from reconciler.config.load import load_repo
from reconciler.config.model import Repo
from reconciler.render import Capabilities, RenderCache, TargetResult, render_all
from reconciler.toolchain import Toolchain


class Rendered(NamedTuple):
    repo: Repo
    targets: list[TargetResult]
    charts: ChartLock  # the remote charts the render used (empty without ``lock``)


def load_and_render(
    root: Path,
    *,
    apps: Iterable[str] | None = None,
    clusters: Iterable[str] | None = None,
    tools: Toolchain | None = None,
    cache: RenderCache | None = None,
    lock: Callable[[Repo], ChartLock] | None = None,
    capabilities: Callable[[Repo], Mapping[str, Capabilities]] | None = None,
) -> Rendered:
    """The repo at ``root`` and its rendered targets (only ``apps`` x ``clusters`` if given);
    ``lock`` resolves the repo's remote charts first; ``capabilities`` says per cluster what
    Helm is told the cluster is (default: what offline renders assume).

    Raises ``ConfigError`` (every located problem) when the repo does not load; a target that
    does not render is a result with its ``RenderError``, never an exception.
    """
    repo = load_repo(root)
    charts = lock(repo) if lock is not None else ChartLock()
    targets = render_all(
        repo,
        apps=apps,
        clusters=clusters,
        tools=tools,
        cache=cache,
        charts=charts,
        capabilities=capabilities(repo) if capabilities is not None else None,
    )
    return Rendered(repo, targets, charts)
