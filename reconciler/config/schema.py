"""The YAML shape of the config repo's documents (pydantic): camelCase keys, snake_case attributes.

Unknown fields are errors (``extra="forbid"``) and nothing is coerced (``strict``): a string where
a number belongs is reported, not guessed at.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
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


class HelmSource(SchemaModel):
    chart: str
    release_name: str | None = None
    values: dict[str, Any] = {}
    values_files: list[str] = []


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
    replicas: int | None = Field(default=None, ge=0)
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


class ClusterSpec(SchemaModel):
    context: str | None = None
    vars: dict[str, str] = {}
    paused: bool = False


class GroupSpec(SchemaModel):
    selector: Selector


class AppSpec(SchemaModel):
    namespace: str | None = None
    source: Source
    placement: ClusterTarget = ClusterTarget()
    overrides: list[Override] = []
    sync: SyncPolicy = SyncPolicy()


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
