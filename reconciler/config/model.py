"""The loaded config repo: frozen types every later stage reads (clusters, groups, apps)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from reconciler import API_VERSION
from reconciler.config.schema import (
    ClusterTarget,
    Override,
    RolloutSpec,
    Selector,
    Source,
    SyncPolicy,
)
from reconciler.errors import Problem
from reconciler.health import HealthRule
from reconciler.templates import Site, freeze, thaw

# Objects of our own API group are config, never deployed (a render holding one is an error).
OWN_GROUP = API_VERSION.partition("/")[0]
NOT_DEPLOYABLE = "is the reconciler's own config, not a Kubernetes object to deploy"


@dataclass(frozen=True)
class Cluster:
    name: str
    labels: dict[str, str]
    context: str
    vars: dict[str, str]
    paused: bool
    file: str
    line: int = 1
    kube_version: str | None = None  # spec.kubeVersion: what offline renders assume


@dataclass(frozen=True)
class ClusterGroup:
    name: str
    selector: Selector
    file: str
    line: int = 1


@dataclass(frozen=True)
class SourceDocument:
    """A parsed manifest (or values file) with its template sites, parsed once per repo load."""

    file: str
    line: int
    value: Any
    sites: tuple[Site, ...] = ()

    @cached_property
    def _frozen(self) -> bytes:
        return freeze(self.value)

    def fresh(self) -> Any:
        """An independent copy of ``value``, to render into (fast: called per target)."""
        return thaw(self._frozen)


@dataclass(frozen=True)
class OverrideSource:
    """An override as written (for per-cluster templating) and where it is."""

    raw: dict[str, Any]
    line: int
    sites: tuple[Site, ...] = ()
    patch_lines: tuple[int, ...] = ()  # of each entry of its patches
    op_lines: tuple[tuple[int, ...], ...] = ()  # of each JSON-patch op, per patch


@dataclass(frozen=True)
class App:
    name: str
    file: str
    dir: Path
    namespace: str | None
    source: Source
    placement: ClusterTarget
    overrides: list[Override]
    sync: SyncPolicy
    line: int = 1
    manifests: tuple[SourceDocument, ...] = ()
    # Helm values in merge order: values files, then inline values (overrides come later).
    helm_values: tuple[SourceDocument, ...] = ()
    override_sources: tuple[OverrideSource, ...] = field(default=())
    health: tuple[HealthRule, ...] = ()  # the app's own health rules (spec.health), in order
    chart_line: int = 0  # of spec.source.helm.version (or chart): where a chart error points
    rollout: RolloutSpec | None = None  # spec.rollout: how a change reaches its clusters

    def override_where(self, index: int) -> str:
        """``apps/x/app.yaml:31`` of override ``index``."""
        line = self.override_sources[index].line if self.override_sources else self.line
        return f"{self.file}:{line}"

    def patch_where(self, index: int, patch: int) -> str:
        """``apps/x/app.yaml:36`` of patch ``patch`` of override ``index``."""
        source = self.override_sources[index] if self.override_sources else None
        if source is None or patch >= len(source.patch_lines):
            return self.override_where(index)
        return f"{self.file}:{source.patch_lines[patch]}"

    def op_where(self, index: int, patch: int, op: int) -> str:
        """``apps/x/app.yaml:38`` of JSON-patch op ``op`` of patch ``patch`` of override
        ``index``."""
        source = self.override_sources[index] if self.override_sources else None
        if source is None or patch >= len(source.op_lines) or op >= len(source.op_lines[patch]):
            return self.patch_where(index, patch)
        return f"{self.file}:{source.op_lines[patch][op]}"


@dataclass(frozen=True)
class RepoSettings:
    """``reconciler.yaml`` (kind Settings): repo-wide choices; None means the daemon's default."""

    allow_empty: bool = False
    max_prune_objects: int | None = None
    max_prune_percent: float | None = None
    file: str | None = None
    rollout: RolloutSpec | None = None  # spec.rollout: apps without their own roll out this way


@dataclass(frozen=True)
class Repo:
    root: Path
    clusters: dict[str, Cluster]
    groups: dict[str, ClusterGroup]
    apps: dict[str, App]
    settings: RepoSettings = field(default_factory=RepoSettings)


@dataclass(frozen=True)
class Broken:
    """One unit of the repo that did not load, with its located problems.

    ``kind`` is App, Cluster or ClusterGroup; ``file`` the cluster or group file, or the app's
    folder (``apps/<dir>``); ``names`` what it defines, as far as it could be read (a file that
    does not parse names nothing).
    """

    kind: str
    file: str
    names: tuple[str, ...]
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class PartialRepo:
    """A repo loaded as far as it goes: ``repo`` holds every cluster, group and app that loaded
    without a problem; ``broken`` the units that did not; ``repo_problems`` those no single unit
    owns (the repo itself, ``reconciler.yaml``, a repo with no clusters or apps)."""

    repo: Repo
    broken: tuple[Broken, ...] = ()
    repo_problems: tuple[Problem, ...] = ()
    # apps that loaded but name a broken group (placement or an override target): left out
    # of ``repo`` too, with the group's first problem, since where they go is not known
    dependents: tuple[tuple[str, Problem], ...] = ()

    @property
    def problems(self) -> list[Problem]:
        """Every problem, each once, sorted (what ``validate`` reports)."""
        found = [*self.repo_problems, *(p for b in self.broken for p in b.problems)]
        return sorted(dict.fromkeys(found))


# ---- loading -------------------------------------------------------------------------------
