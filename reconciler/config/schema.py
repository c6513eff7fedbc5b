"""The YAML shape of the config repo's documents (pydantic): camelCase keys, snake_case attributes.

Unknown fields are errors (``extra="forbid"``) and nothing is coerced (``strict``): a string where
a number belongs is reported, not guessed at.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from reconciler.selectors import LabelSelector


class SchemaModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, alias_generator=to_camel, populate_by_name=True
    )


class Metadata(SchemaModel):
    name: str
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class Expression(SchemaModel):
    key: str
    operator: str
    values: list[str] = []


class Selector(SchemaModel):
    """A Kubernetes label selector as written; ``compiled`` is the matcher."""

    match_labels: dict[str, str] = {}
    match_expressions: list[Expression] = []

    @cached_property
    def compiled(self) -> LabelSelector:
        exprs = [(e.key, e.operator, e.values) for e in self.match_expressions]
        return LabelSelector.build(self.match_labels, exprs)

    def matches(self, labels: dict[str, str]) -> bool:
        return self.compiled.matches(labels)


class ClusterTarget(SchemaModel):
    """Which clusters: union of clusters, groups and selector, minus exclude (placement shape)."""

    clusters: list[str] = []
    groups: list[str] = []
    selector: Selector | None = None
    exclude: list[str] = []


# Helm's own rule for a release name (``helm template`` rejects anything else).
_RELEASE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class HelmSource(SchemaModel):
    """A chart in the config repo (``chart: path``), in a Helm repository (``repo`` + ``chart``
    name + ``version``) or in an OCI registry (``chart: oci://host/path/name`` + ``version``)."""

    chart: str
    repo: str | None = None
    version: str | None = None
    release_name: str | None = None
    values: dict[str, Any] = {}
    values_files: list[str] = []

    @field_validator("release_name")
    @classmethod
    def _release_name(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 53 or not _RELEASE_NAME.fullmatch(value)):
            raise ValueError(
                f"{value!r} is not a Helm release name (lowercase letters, digits, '-' and "
                "'.', starting and ending with a letter or digit; at most 53 characters)"
            )
        return value

    @property
    def remote(self) -> bool:
        """Fetched from a Helm repository or OCI registry, not read from the config repo."""
        return self.repo is not None or self.chart.startswith("oci://")


class KustomizeSource(SchemaModel):
    path: str


class Source(SchemaModel):
    """Exactly one of: manifests (a dir or file list), helm, kustomize."""

    manifests: list[str] | None = None
    helm: HelmSource | None = None
    kustomize: KustomizeSource | None = None

    @field_validator("manifests", mode="before")
    @classmethod
    def _one_path_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        given = [n for n in ("manifests", "helm", "kustomize") if getattr(self, n) is not None]
        if len(given) != 1:
            got = ", ".join(given) or "none"
            raise ValueError(f"set exactly one of manifests, helm, kustomize (got {got})")
        return self


class ImageOverride(SchemaModel):
    name: str
    new_name: str | None = None
    new_tag: str | None = None
    digest: str | None = None


class ObjectTarget(SchemaModel):
    """Which objects a patch applies to; name and namespace are globs."""

    group: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None


class JsonOp(SchemaModel):
    op: Literal["add", "remove", "replace", "move", "copy", "test"]
    path: str
    value: Any = None
    from_: str | None = Field(default=None, alias="from")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "path": self.path}
        if "value" in self.model_fields_set:
            out["value"] = self.value
        if self.from_ is not None:
            out["from"] = self.from_
        return out


class Patch(SchemaModel):
    target: ObjectTarget = ObjectTarget()
    merge: dict[str, Any] | None = None
    json_: list[JsonOp] | None = Field(default=None, alias="json")

    @model_validator(mode="after")
    def _exactly_one(self) -> Patch:
        if (self.merge is None) == (self.json_ is None):
            raise ValueError("set exactly one of merge, json")
        return self


class Override(SchemaModel):
    name: str
    target: ClusterTarget | None = None
    replicas: int | None = Field(default=None, ge=0, le=2**31 - 1)  # int32, as the API
    images: list[ImageOverride] = []
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    values: dict[str, Any] = {}
    patches: list[Patch] = []


class IgnoreRule(SchemaModel):
    group: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    json_pointers: list[str] = []


class SyncPolicy(SchemaModel):
    prune: bool = True
    self_heal: bool = True
    allow_empty: bool = False
    force: bool = False
    ignore_differences: list[IgnoreRule] = []


class HealthCheck(SchemaModel):
    """A health rule for one kind: CEL expressions over the live object (``object``)."""

    kind: str = Field(min_length=1)
    group: str | None = None
    healthy: str | None = None
    degraded: str | None = None
    suspended: str | None = None
    message: str | None = None

    @model_validator(mode="after")
    def _decides(self) -> HealthCheck:
        if self.healthy is None and self.degraded is None and self.suspended is None:
            raise ValueError("set at least one of healthy, degraded, suspended")
        return self

    @property
    def expressions(self) -> dict[str, str]:
        """The CEL expressions given, by field name."""
        fields = ("healthy", "degraded", "suspended", "message")
        return {f: getattr(self, f) for f in fields if getattr(self, f) is not None}


# ---- progressive rollouts ------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_QUANTITY = re.compile(r"^\d+%$")


def _duration(value: Any) -> Any:
    """``20s``, ``10m``, ``1h30m``, ``250ms`` (or a number of seconds) -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (e.g. 30s, 5m, 1h30m)")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value} is negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        parts = _DURATION_PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"{value!r} is not a duration (e.g. 30s, 5m, 1h30m)")
        return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    return value


def _quantity(value: Any) -> Any:
    """A count (``2``) or a percentage (``"25%"``, at most 100%), kept as written."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a count or a percentage (e.g. 2 or 25%)")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is negative")
        return value
    if isinstance(value, str):
        if not _QUANTITY.match(value.strip()):
            raise ValueError(f"{value!r} is not a count or a percentage (e.g. 2 or 25%)")
        if int(value.strip()[:-1]) > 100:
            raise ValueError(f"{value!r} is more than 100%")
        return value.strip()
    return value


Duration = Annotated[float, BeforeValidator(_duration)]
Quantity = Annotated[int | str, BeforeValidator(_quantity)]


class RolloutGates(SchemaModel):
    """The pace and gates of a stage; on a strategy, the defaults of its stages."""

    max_concurrent: Quantity | None = None
    min_healthy_time: Duration | None = None
    interval: Duration | None = None
    progress_deadline: Duration | None = None
    max_failures: Quantity | None = None
    on_failure: Literal["halt", "rollback", "continue"] | None = None

    @field_validator("max_concurrent")
    @classmethod
    def _some_at_a_time(cls, value: int | str | None) -> int | str | None:
        if value in (0, "0%"):
            raise ValueError(f"{value!r} would update no cluster: give at least 1 (or 1%)")
        return value


CANARY = "canary"  # the name of the stage ``spec.rollout.canary`` makes


class RolloutCanary(RolloutGates):
    """The first stage, ``canary``: the named clusters, or the first ``count`` by name."""

    count: int | None = Field(default=None, ge=1)
    clusters: list[str] = []
    approval: Literal["manual"] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> RolloutCanary:
        if (self.count is None) == (not self.clusters):
            raise ValueError("set exactly one of count, clusters")
        return self


class RolloutStage(RolloutGates):
    name: str
    target: ClusterTarget
    approval: Literal["manual"] | None = None


class RolloutSpec(RolloutGates):
    """``spec.rollout``: ordered stages; clusters no stage matches go last."""

    canary: RolloutCanary | None = None
    stages: list[RolloutStage] = []


_KUBE_VERSION = re.compile(r"v?\d+\.\d+(\.\d+)?([-+][0-9A-Za-z.+-]*)?")


class ClusterSpec(SchemaModel):
    context: str | None = None
    vars: dict[str, str] = {}
    paused: bool = False
    # What offline renders (render, validate, plan) tell Helm the cluster runs; live
    # commands and the daemon ask the cluster itself.
    kube_version: str | None = None

    @field_validator("kube_version")
    @classmethod
    def _kube_version(cls, value: str | None) -> str | None:
        if value is not None and not _KUBE_VERSION.fullmatch(value):
            raise ValueError(f"{value!r} is not a Kubernetes version (e.g. v1.30.2)")
        return value


class GroupSpec(SchemaModel):
    selector: Selector


class AppSpec(SchemaModel):
    namespace: str | None = None
    source: Source
    placement: ClusterTarget = ClusterTarget()
    overrides: list[Override] = []
    sync: SyncPolicy = SyncPolicy()
    health: list[HealthCheck] = []

    rollout: RolloutSpec | None = None


class Doc(SchemaModel):
    api_version: str
    kind: str
    metadata: Metadata


class ClusterDoc(Doc):
    spec: ClusterSpec = ClusterSpec()


class GroupDoc(Doc):
    spec: GroupSpec


class AppDoc(Doc):
    spec: AppSpec


class PruneGuardSpec(SchemaModel):
    """A revision that would prune more than ``maxObjects`` objects and more than ``maxPercent``
    % of those the instance manages is held until released."""

    max_objects: int | None = Field(default=None, ge=0)
    max_percent: float | None = Field(default=None, ge=0, le=100)


class SettingsSpec(SchemaModel):
    allow_empty: bool = False  # a repo without clusters or without apps is meant
    prune_guard: PruneGuardSpec = PruneGuardSpec()
    rollout: RolloutSpec | None = None  # the strategy of every app without its own


class SettingsDoc(SchemaModel):
    """``reconciler.yaml`` at the top of the repo (optional; metadata too)."""

    api_version: str
    kind: str
    metadata: Metadata | None = None
    spec: SettingsSpec = SettingsSpec()
