"""Load and validate a config repo (DESIGN.md §3) into a frozen ``Repo``.

Validation runs in two passes per document: pydantic checks shape and types (unknown fields are
errors), then semantic checks (names, references, selectors, files, manifests, templates). Every
problem is collected with file:line and field path; ``load_repo`` raises one ``ConfigError``.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from reconciler import API_VERSION
from reconciler.errors import ConfigError, Problem
from reconciler.objects import group_of
from reconciler.selectors import (
    LabelSelector,
    expression_problems,
    label_key_problem,
    label_value_problem,
)
from reconciler.templates import Site, copy_tree, find_sites, freeze, thaw
from reconciler.yamlsrc import Document, YamlError, format_path, load_documents
from reconciler.yamlsrc import Path as NodePath

MANIFEST_SUFFIXES = (".yaml", ".yml")
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
APP_FILES = ("app.yaml", "app.yml")
MAX_FILE_BYTES = 10 * 1024 * 1024  # a YAML file we parse; more is a mistake or an attack
OWN_GROUP = API_VERSION.partition("/")[0]
LEAVES_REPO = "symlink leaves the config repo"
NOT_DEPLOYABLE = "is the reconciler's own config, not a Kubernetes object to deploy"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


# ---- schema: the YAML shape, camelCase keys, Python attributes in snake_case ----------------


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, alias_generator=to_camel, populate_by_name=True
    )


class Metadata(_Model):
    name: str
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class Expression(_Model):
    key: str
    operator: str
    values: list[str] = []


class Selector(_Model):
    """A Kubernetes label selector as written; ``compiled`` is the matcher."""

    match_labels: dict[str, str] = {}
    match_expressions: list[Expression] = []

    @cached_property
    def compiled(self) -> LabelSelector:
        exprs = [(e.key, e.operator, e.values) for e in self.match_expressions]
        return LabelSelector.build(self.match_labels, exprs)

    def matches(self, labels: dict[str, str]) -> bool:
        return self.compiled.matches(labels)


class ClusterTarget(_Model):
    """Which clusters: union of clusters, groups and selector, minus exclude (placement shape)."""

    clusters: list[str] = []
    groups: list[str] = []
    selector: Selector | None = None
    exclude: list[str] = []


class HelmSource(_Model):
    chart: str
    release_name: str | None = None
    values: dict[str, Any] = {}
    values_files: list[str] = []


class KustomizeSource(_Model):
    path: str


class Source(_Model):
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


class ImageOverride(_Model):
    name: str
    new_name: str | None = None
    new_tag: str | None = None
    digest: str | None = None


class ObjectTarget(_Model):
    """Which objects a patch applies to; name and namespace are globs."""

    group: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None


class JsonOp(_Model):
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


class Patch(_Model):
    target: ObjectTarget = ObjectTarget()
    merge: dict[str, Any] | None = None
    json_: list[JsonOp] | None = Field(default=None, alias="json")

    @model_validator(mode="after")
    def _exactly_one(self) -> Patch:
        if (self.merge is None) == (self.json_ is None):
            raise ValueError("set exactly one of merge, json")
        return self


class Override(_Model):
    name: str
    target: ClusterTarget | None = None
    replicas: int | None = Field(default=None, ge=0)
    images: list[ImageOverride] = []
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    values: dict[str, Any] = {}
    patches: list[Patch] = []


class IgnoreRule(_Model):
    group: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    json_pointers: list[str] = []


class SyncPolicy(_Model):
    prune: bool = True
    self_heal: bool = True
    allow_empty: bool = False
    force: bool = False
    ignore_differences: list[IgnoreRule] = []


class _ClusterSpec(_Model):
    context: str | None = None
    vars: dict[str, str] = {}
    paused: bool = False


class _GroupSpec(_Model):
    selector: Selector


class _AppSpec(_Model):
    namespace: str | None = None
    source: Source
    placement: ClusterTarget = ClusterTarget()
    overrides: list[Override] = []
    sync: SyncPolicy = SyncPolicy()


class _Doc(_Model):
    api_version: str
    kind: str
    metadata: Metadata


class _ClusterDoc(_Doc):
    spec: _ClusterSpec = _ClusterSpec()


class _GroupDoc(_Doc):
    spec: _GroupSpec


class _AppDoc(_Doc):
    spec: _AppSpec


# ---- the loaded repo -----------------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    name: str
    labels: dict[str, str]
    context: str
    vars: dict[str, str]
    paused: bool
    file: str
    line: int = 1


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

    def override_where(self, index: int) -> str:
        """``apps/x/app.yaml:31`` of override ``index``."""
        line = self.override_sources[index].line if self.override_sources else self.line
        return f"{self.file}:{line}"


@dataclass(frozen=True)
class Repo:
    root: Path
    clusters: dict[str, Cluster]
    groups: dict[str, ClusterGroup]
    apps: dict[str, App]


# ---- loading -------------------------------------------------------------------------------


def load_repo(root: Path) -> Repo:
    """Load and validate the config repo at ``root``; raise ConfigError with every problem."""
    loader = _Loader(Path(root))
    return loader.load()


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.problems: list[Problem] = []
        self._known: dict[str, frozenset[str]] = {}
        # (kind, name) of documents too broken to load: references to them are not reported.
        self.unloaded: set[tuple[str, str]] = set()

    def problem(self, file: str, line: int | None, path: NodePath | str, message: str) -> None:
        where = path if isinstance(path, str) else format_path(path)
        self.problems.append(Problem(file, line, where, message))

    def load(self) -> Repo:
        if not self.root.is_dir():
            raise ConfigError([Problem(str(self.root), None, "", "config repo is not a directory")])
        clusters = self._load_clusters()
        groups = self._load_groups()
        apps = self._load_apps(clusters, groups)
        if self.problems:
            raise ConfigError(list(dict.fromkeys(self.problems)))
        return Repo(
            root=self.root,
            clusters=dict(sorted(clusters.items())),
            groups=dict(sorted(groups.items())),
            apps=dict(sorted(apps.items())),
        )

    # files and documents

    def known_keys(self, scope: str, clusters: dict[str, Cluster]) -> frozenset[str]:
        """Label or var keys defined by at least one cluster (template typo check)."""
        if scope not in self._known:
            tables = [getattr(c, scope) for c in clusters.values()]
            self._known[scope] = frozenset(k for t in tables for k in t)
        return self._known[scope]

    def rel(self, path: Path | str) -> str:
        """``path`` relative to the repo root (as named, or as resolved), for messages."""
        for base in (self.root, Path(self.real_root)):
            try:
                return Path(path).relative_to(base).as_posix()
            except ValueError:
                continue
        return str(path)

    def inside(self, real: str) -> bool:
        """Whether a resolved path is in the repo."""
        return real == self.real_root or real.startswith(self.real_root.rstrip(os.sep) + os.sep)

    def contained(self, path: Path) -> bool:
        """Whether ``path`` resolves inside the repo; reports it (as a symlink) when not."""
        try:
            real = os.path.realpath(path)
        except (OSError, ValueError) as err:
            self.problem(self.rel(path), None, "", f"cannot read: {_os_error(err)}")
            return False
        if not self.inside(real):
            self.problem(self.rel(path), None, "", LEAVES_REPO)
            return False
        return True

    def read(self, path: Path) -> str | None:
        """The UTF-8 text of a repo file, or None after reporting why it can not be used."""
        rel = self.rel(path)
        if not self.contained(path):
            return None
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                self.problem(rel, None, "", f"file is larger than {_size(MAX_FILE_BYTES)}")
                return None
            return path.read_text(encoding="utf-8")
        except (OSError, ValueError) as err:  # UnicodeDecodeError is a ValueError
            self.problem(rel, None, "", f"cannot read: {_os_error(err)}")
            return None

    def documents(self, path: Path, kind: str | None = None) -> list[Document]:
        """The YAML documents of ``path`` (problems reported); ``kind``: one is required."""
        before = len(self.problems)
        rel = self.rel(path)
        text = self.read(path)
        if text is None:
            return []
        try:
            docs = load_documents(text)
        except YamlError as err:
            for issue in err.issues:
                self.problem(rel, issue.line, "", issue.message)
            docs = err.documents
        if kind is not None and not docs and len(self.problems) == before:
            # An emptied file must not quietly remove what it defined (and prune it).
            self.problem(rel, None, "", f"no {kind} document")
        return docs

    def tree(self, top: Path, *, hidden: bool = True) -> list[tuple[str, Path]]:
        """Every file under directory ``top``: (path below ``top``, path), sorted, each once.

        Symlinks are followed while they stay in the repo; one that leaves it is reported and
        skipped. A file or directory reached twice is taken once, preferably by its own name
        rather than through a symlink. ``hidden=False`` skips dot files and directories.
        """
        found: list[tuple[bool, str, Path, str]] = []  # (via a symlink, below top, path, real)
        walked: set[str] = set()
        direct = [(top, os.path.realpath(top), "")]
        linked: list[tuple[Path, str, str]] = []
        while direct or linked:
            via_link = not direct
            folder, real_folder, below = direct.pop() if direct else linked.pop(0)
            if real_folder in walked:
                continue
            walked.add(real_folder)
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as err:
                self.problem(self.rel(folder), None, "", f"cannot read: {_os_error(err)}")
                continue
            for entry in entries:
                if not hidden and entry.name.startswith("."):
                    continue
                path = folder / entry.name
                sub = f"{below}/{entry.name}" if below else entry.name
                try:
                    link = entry.is_symlink()
                    real = os.path.realpath(path) if link else os.path.join(real_folder, entry.name)
                    if link and not self.inside(real):
                        self.problem(self.rel(path), None, "", LEAVES_REPO)
                    elif entry.is_dir():
                        (linked if link or via_link else direct).append((path, real, sub))
                    elif entry.is_file():
                        found.append((link or via_link, sub, path, real))
                except (OSError, ValueError) as err:
                    self.problem(self.rel(path), None, "", f"cannot read: {_os_error(err)}")
        seen: set[str] = set()
        out: list[tuple[str, Path]] = []
        for _, sub, path, real in sorted(found, key=lambda f: (f[0], f[1])):
            if real not in seen:
                seen.add(real)
                out.append((sub, path))
        return sorted(out, key=lambda f: f[0])

    def _kind_files(self, subdir: str) -> list[Path]:
        base = self.root / subdir
        if not base.is_dir() or not self.contained(base):
            return []
        try:
            names = sorted(p for p in base.iterdir() if p.suffix in MANIFEST_SUFFIXES)
        except OSError as err:
            self.problem(subdir, None, "", f"cannot read: {_os_error(err)}")
            return []
        return [p for p in names if self.contained(p) and p.is_file()]

    def _validate(self, model: type[_M], doc: Document, file: str, kind: str) -> _M | None:
        """Schema-check ``doc``; report every error, and return a model of what is left.

        Offending fields are dropped and the rest re-validated, so semantic checks still run
        on a partly broken document and one run reports as much as possible. (Any problem
        fails the load, so a repaired model never reaches a caller.)
        """
        value = doc.value
        if not isinstance(value, dict):
            self.problem(file, doc.line, "", f"expected a {kind} mapping, got {_type_name(value)}")
            return None
        if value.get("apiVersion") != API_VERSION:
            self.problem(file, doc.line_of(("apiVersion",)), "apiVersion", f"must be {API_VERSION}")
        if value.get("kind") != kind:
            got = value.get("kind")
            self.problem(file, doc.line_of(("kind",)), "kind", f"must be {kind} here, got {got!r}")
        data: Any = value
        for attempt in range(5):
            try:
                return model.model_validate(data)
            except ValidationError as err:
                errors = err.errors()
            for e in errors:
                # After the first pass, "missing" means we dropped a bad required field.
                if attempt == 0 or e["type"] != "missing":
                    loc = tuple(e["loc"])
                    line = doc.line_of(loc) if e["type"] != "missing" else doc.line_of(loc[:-1])
                    self.problem(file, line, loc, _message(model, e))
            data = _without(data, [tuple(e["loc"]) for e in errors])
            if data is None:
                break
        meta = value.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if isinstance(name, str):
            self.unloaded.add((kind, name))
        return None

    def _name_problem(self, file: str, doc: Document, name: str, pattern: re.Pattern[str]) -> bool:
        if not pattern.match(name) or len(name) > 63:
            self.problem(
                file,
                doc.line_of(("metadata", "name")),
                "metadata.name",
                f"invalid name {name!r}: use lowercase letters, digits and '-' (at most 63)",
            )
            return True
        return False

    def _duplicate(self, kind: str, name: str, seen: dict[str, Any], file: str, line: int) -> bool:
        if name in seen:
            first = seen[name]
            self.problem(
                file, line, "metadata.name", f"duplicate {kind} {name!r} (first in {first.file})"
            )
            return True
        return False

    # clusters and groups

    def _load_clusters(self) -> dict[str, Cluster]:
        clusters: dict[str, Cluster] = {}
        for path in self._kind_files("clusters"):
            file = self.rel(path)
            for doc in self.documents(path, "Cluster"):
                parsed = self._validate(_ClusterDoc, doc, file, "Cluster")
                if parsed is None:
                    continue
                name = parsed.metadata.name
                line = doc.line_of(("metadata", "name"))
                self._labels_problems(file, doc, ("metadata", "labels"), parsed.metadata.labels)
                self._name_problem(file, doc, name, _CLUSTER_NAME)
                if self._duplicate("cluster", name, clusters, file, line):
                    continue
                spec = parsed.spec
                clusters[name] = Cluster(
                    name=name,
                    labels=dict(parsed.metadata.labels),
                    context=spec.context or name,
                    vars=dict(spec.vars),
                    paused=spec.paused,
                    file=file,
                    line=line,
                )
        return clusters

    def _load_groups(self) -> dict[str, ClusterGroup]:
        groups: dict[str, ClusterGroup] = {}
        for path in self._kind_files("groups"):
            file = self.rel(path)
            for doc in self.documents(path, "ClusterGroup"):
                parsed = self._validate(_GroupDoc, doc, file, "ClusterGroup")
                if parsed is None:
                    continue
                name = parsed.metadata.name
                line = doc.line_of(("metadata", "name"))
                self._selector_problems(file, doc, ("spec", "selector"), parsed.spec.selector)
                self._name_problem(file, doc, name, _DNS_LABEL)
                if self._duplicate("group", name, groups, file, line):
                    continue
                groups[name] = ClusterGroup(name, parsed.spec.selector, file, line)
        return groups

    def _labels_problems(
        self, file: str, doc: Document, at: NodePath, labels: dict[str, str]
    ) -> bool:
        bad = False
        for key, value in labels.items():
            for why in (label_key_problem(key), label_value_problem(value)):
                if why is not None:
                    self.problem(file, doc.line_of((*at, key)), (*at, key), why)
                    bad = True
        return bad

    def _selector_problems(self, file: str, doc: Document, at: NodePath, sel: Selector) -> bool:
        bad = self._labels_problems(file, doc, (*at, "matchLabels"), sel.match_labels)
        for i, expr in enumerate(sel.match_expressions):
            base = (*at, "matchExpressions", i)
            for rel, why in expression_problems(expr.key, expr.operator, expr.values):
                sub = tuple(int(p) if p.isdigit() else p for p in re.split(r"[\[\]]+", rel) if p)
                self.problem(file, doc.line_of((*base, *sub)), (*base, *sub), why)
                bad = True
        return bad

    # apps

    def _load_apps(
        self, clusters: dict[str, Cluster], groups: dict[str, ClusterGroup]
    ) -> dict[str, App]:
        apps: dict[str, App] = {}
        base = self.root / "apps"
        if not base.is_dir() or not self.contained(base):
            return apps
        for app_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            if not self.contained(app_dir):
                continue
            path = next((app_dir / n for n in APP_FILES if (app_dir / n).is_file()), None)
            if path is None:
                self.problem(self.rel(app_dir), None, "", "app directory has no app.yaml")
                continue
            docs = self.documents(path, "App")
            file = self.rel(path)
            if len(docs) > 1:
                self.problem(file, docs[1].line, "", "app.yaml must hold exactly one App")
            if not docs:
                continue
            app = _AppLoader(self, file, docs[0], app_dir, clusters, groups).load()
            if app is None:
                continue
            if self._duplicate("app", app.name, apps, file, app.line):
                continue
            apps[app.name] = app
        return apps


_M = typing.TypeVar("_M", bound=_Model)


class _AppLoader:
    """Semantic checks and source loading for one app.yaml."""

    def __init__(
        self,
        loader: _Loader,
        file: str,
        doc: Document,
        app_dir: Path,
        clusters: dict[str, Cluster],
        groups: dict[str, ClusterGroup],
    ) -> None:
        self.loader = loader
        self.file = file
        self.doc = doc
        self.dir = app_dir
        self.clusters = clusters
        self.groups = groups

    def problem(self, path: NodePath, message: str, file: str | None = None, line: int = 0) -> None:
        at_line = line or self.doc.line_of(path)
        self.loader.problem(file or self.file, at_line, path, message)

    def load(self) -> App | None:
        parsed = self.loader._validate(_AppDoc, self.doc, self.file, "App")
        if parsed is None:
            return None
        spec = parsed.spec
        name = parsed.metadata.name
        self.loader._name_problem(self.file, self.doc, name, _DNS_LABEL)
        if spec.namespace is not None and not _DNS_LABEL.match(spec.namespace):
            self.problem(("spec", "namespace"), f"invalid namespace {spec.namespace!r}")
        self._target(("spec", "placement"), spec.placement)
        self._overrides(spec.overrides)
        self._ignore_rules(spec.sync.ignore_differences)
        manifests = self._manifests(spec.source.manifests or [])
        helm_values = self._helm(spec.source.helm)
        if spec.source.kustomize is not None:
            self._kustomize(spec.source.kustomize)
        override_sources = self._override_sources(spec.overrides)
        return App(
            name=name,
            file=self.file,
            dir=self.dir,
            namespace=spec.namespace,
            source=spec.source,
            placement=spec.placement,
            overrides=list(spec.overrides),
            sync=spec.sync,
            line=self.doc.line_of(("metadata", "name")),
            manifests=tuple(manifests),
            helm_values=tuple(helm_values),
            override_sources=tuple(override_sources),
        )

    # references and selectors

    def _target(self, at: NodePath, target: ClusterTarget) -> None:
        for field_name in ("clusters", "exclude"):
            for i, name in enumerate(getattr(target, field_name)):
                if name not in self.clusters and ("Cluster", name) not in self.loader.unloaded:
                    self.problem((*at, field_name, i), _unknown("cluster", name, self.clusters))
        for i, name in enumerate(target.groups):
            if name not in self.groups and ("ClusterGroup", name) not in self.loader.unloaded:
                self.problem((*at, "groups", i), _unknown("group", name, self.groups))
        if target.selector is not None:
            self.loader._selector_problems(self.file, self.doc, (*at, "selector"), target.selector)

    def _overrides(self, overrides: list[Override]) -> None:
        seen: set[str] = set()
        for i, ov in enumerate(overrides):
            at: NodePath = ("spec", "overrides", i)
            if not ov.name:
                self.problem((*at, "name"), "override name must not be empty")
            elif ov.name in seen:
                self.problem((*at, "name"), f"duplicate override name {ov.name!r}")
            seen.add(ov.name)
            if ov.target is not None:
                self._target((*at, "target"), ov.target)
            for j, image in enumerate(ov.images):
                if image.new_name is None and image.new_tag is None and image.digest is None:
                    self.problem((*at, "images", j), "set at least one of newName, newTag, digest")
                if image.new_tag is not None and image.digest is not None:
                    self.problem((*at, "images", j), "set newTag or digest, not both")
            self.loader._labels_problems(self.file, self.doc, (*at, "labels"), ov.labels)
            for j, patch in enumerate(ov.patches):
                for k, op in enumerate(patch.json_ or []):
                    self._json_op((*at, "patches", j, "json", k), op)

    def _json_op(self, at: NodePath, op: JsonOp) -> None:
        if not _is_pointer(op.path):
            self.problem((*at, "path"), f"not a JSON pointer: {op.path!r} (must start with /)")
        if op.op in ("add", "replace", "test") and "value" not in op.model_fields_set:
            self.problem(at, f"op {op.op} needs a value")
        if op.op in ("move", "copy") and (op.from_ is None or not _is_pointer(op.from_)):
            self.problem(at, f"op {op.op} needs 'from' (a JSON pointer)")

    def _ignore_rules(self, rules: list[IgnoreRule]) -> None:
        for i, rule in enumerate(rules):
            for j, pointer in enumerate(rule.json_pointers):
                if not _is_pointer(pointer):
                    at = ("spec", "sync", "ignoreDifferences", i, "jsonPointers", j)
                    self.problem(at, f"not a JSON pointer: {pointer!r} (must start with /)")

    # sources

    def _path(self, at: NodePath, rel: str, want: Literal["file", "dir", "any"]) -> Path | None:
        if Path(rel).is_absolute():
            self.problem(at, f"path {rel!r} must be relative to the app directory")
            return None
        try:
            path = Path(os.path.realpath(self.dir / rel))
            if not self.loader.inside(str(path)):
                self.problem(at, f"path {rel!r} leaves the config repo")
                return None
            ok = path.exists() and (
                want == "any" or (path.is_dir() if want == "dir" else path.is_file())
            )
        except (OSError, ValueError) as err:
            self.problem(at, f"unusable path {rel!r}: {_os_error(err)}")
            return None
        if not ok:
            what = {"file": "file", "dir": "directory", "any": "file or directory"}[want]
            self.problem(at, f"{what} not found: {self.loader.rel(self.dir)}/{rel}")
            return None
        return path

    def _manifest_files(self, entries: list[str]) -> list[Path]:
        files: list[Path] = []
        own = os.path.realpath(self.loader.root / self.file)
        for i, rel in enumerate(entries):
            path = self._path(("spec", "source", "manifests", i), rel, "any")
            if path is None:
                continue
            if path.is_file():
                files.append(path)
                continue
            # A directory holding app.yaml itself (`manifests: ./`) does not deploy the App.
            files.extend(
                p
                for _, p in self.loader.tree(path, hidden=False)
                if p.suffix in MANIFEST_SUFFIXES and os.path.realpath(p) != own
            )
        return files

    def _manifests(self, entries: list[str]) -> list[SourceDocument]:
        out: list[SourceDocument] = []
        for path in self._manifest_files(entries):
            file = self.loader.rel(path)
            # After a YAML error, the documents before it are still checked.
            for doc in self.loader.documents(path):
                if self._manifest_ok(file, doc):
                    out.append(SourceDocument(file, doc.line, doc.value, self._sites(file, doc)))
        return out

    def _manifest_ok(self, file: str, doc: Document) -> bool:
        value = doc.value
        if not isinstance(value, dict):
            self.problem(
                (), f"expected a Kubernetes object, got {_type_name(value)}", file, doc.line
            )
            return False
        ok = True
        for key in ("apiVersion", "kind"):
            if not isinstance(value.get(key), str) or not value[key]:
                self.problem((), f"{key} is required (a string)", file, doc.line)
                ok = False
        if ok and group_of(value["apiVersion"]) == OWN_GROUP:
            line = doc.line_of(("apiVersion",))
            self.problem(("apiVersion",), f"{value['apiVersion']} {NOT_DEPLOYABLE}", file, line)
            ok = False
        meta = value.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
            self.problem(
                (), "metadata.name is required (a string)", file, doc.line_of(("metadata",))
            )
            ok = False
        elif not isinstance(meta.get("namespace", ""), str):
            line = doc.line_of(("metadata", "namespace"))
            self.problem((), "metadata.namespace must be a string", file, line)
            ok = False
        return ok

    def _helm(self, helm: HelmSource | None) -> list[SourceDocument]:
        if helm is None:
            return []
        at: NodePath = ("spec", "source", "helm")
        chart = self._path((*at, "chart"), helm.chart, "dir")
        if chart is not None:
            if not (chart / "Chart.yaml").is_file():
                self.problem((*at, "chart"), f"no Chart.yaml in {helm.chart}")
            self.loader.tree(chart)  # helm reads (and follows symlinks in) all of it
        layers: list[SourceDocument] = []
        for i, rel in enumerate(helm.values_files):
            path = self._path((*at, "valuesFiles", i), rel, "file")
            if path is None:
                continue
            file = self.loader.rel(path)
            before = len(self.loader.problems)
            docs = self.loader.documents(path)
            if len(self.loader.problems) != before:
                continue
            value = docs[0].value if docs else {}
            if len(docs) > 1 or not isinstance(value, dict):
                self.problem((), "a values file must be one YAML mapping", file, 1)
                continue
            sites = self._sites(file, docs[0]) if docs else ()
            layers.append(SourceDocument(file, 1, value, sites))
        values_at = (*at, "values")
        sites = self._sites(self.file, self.doc, values_at) if helm.values else ()
        layers.append(SourceDocument(self.file, self.doc.line_of(values_at), helm.values, sites))
        return layers

    def _kustomize(self, kustomize: KustomizeSource) -> None:
        at: NodePath = ("spec", "source", "kustomize", "path")
        path = self._path(at, kustomize.path, "dir")
        if path is None:
            return
        if not any((path / n).is_file() for n in KUSTOMIZATION_FILES):
            self.problem(at, f"no kustomization.yaml in {kustomize.path}")
            return
        _KustomizeScan(self.loader).scan(path)

    # templates

    def _override_sources(self, overrides: list[Override]) -> list[OverrideSource]:
        raw_list = self.doc.value["spec"].get("overrides") or []
        out = []
        for i, _ in enumerate(overrides):
            at = ("spec", "overrides", i)
            sites = self._sites(self.file, self.doc, at)
            out.append(OverrideSource(raw_list[i], self.doc.line_of(at), sites))
        return out

    def _sites(self, file: str, doc: Document, base: NodePath = ()) -> tuple[Site, ...]:
        sites, problems = find_sites(doc, base)
        for p in problems:
            self.problem(p.path, p.message, file, p.line)
        for site in sites:
            for ref in site.template.refs:
                if ref.scope == "name":
                    continue
                known = self.loader.known_keys(ref.scope, self.clusters)
                if ref.key not in known:
                    what = "label" if ref.scope == "labels" else "var"
                    hint = _did_you_mean(ref.key, known)
                    msg = f"unknown variable {ref}: no cluster defines {what} {ref.key!r}{hint}"
                    self.problem((*base, *site.path), msg, file, site.line)
        return tuple(sites)


class _KustomizeScan:
    """Check every kustomization an app's build reaches, before kustomize ever runs.

    kustomize fetches remote bases (git, HTTP) and follows local paths wherever they point.
    Rendering must stay offline and inside the repo, so every path-valued field of every
    kustomization reached through resources/bases/components must be local, and every local
    path, and every file under a reached directory, must resolve inside the repo.
    """

    # Entries that may name another kustomization directory (followed) or a file.
    DIRS = ("resources", "bases", "components", "generators", "transformers", "validators")
    # Entries that name files (or hold inline YAML, which is skipped).
    FILES = ("crds", "configurations", "patchesStrategicMerge")
    # Lists of mappings whose ``path`` names a file.
    PATHS = ("patches", "patchesJson6902", "replacements")
    GENERATORS = ("configMapGenerator", "secretGenerator")

    def __init__(self, loader: _Loader) -> None:
        self.loader = loader
        self.scanned: set[str] = set()

    def scan(self, top: Path) -> None:
        pending = [top]
        while pending:
            folder = pending.pop()
            real = os.path.realpath(folder)
            if real in self.scanned:
                continue
            self.scanned.add(real)
            self.loader.tree(folder)
            for name in KUSTOMIZATION_FILES:
                if (folder / name).is_file():
                    pending.extend(self._file(folder, folder / name))

    def _file(self, folder: Path, path: Path) -> list[Path]:
        file = self.loader.rel(path)
        docs = self.loader.documents(path)
        value = docs[0].value if docs else None
        if not isinstance(value, dict):
            return []  # kustomize says what is wrong with it
        doc = docs[0]
        follow: list[Path] = []
        refs: list[tuple[NodePath, Any, bool]] = []
        for key in self.DIRS + self.FILES:
            for i, entry in enumerate(_as_list(value.get(key))):
                refs.append(((key, i), entry, key in self.DIRS))
        for key in self.PATHS:
            for i, item in enumerate(_as_list(value.get(key))):
                if isinstance(item, dict):
                    refs.append(((key, i, "path"), item.get("path"), False))
        for key in self.GENERATORS:
            for i, gen in enumerate(_as_list(value.get(key))):
                if not isinstance(gen, dict):
                    continue
                for j, entry in enumerate(_as_list(gen.get("files"))):
                    if isinstance(entry, str):  # "path" or "key=path"
                        entry = entry.partition("=")[2] or entry
                    refs.append(((key, i, "files", j), entry, False))
                for j, entry in enumerate(_as_list(gen.get("envs"))):
                    refs.append(((key, i, "envs", j), entry, False))
                refs.append(((key, i, "env"), gen.get("env"), False))
        openapi = value.get("openapi")
        if isinstance(openapi, dict):
            refs.append((("openapi", "path"), openapi.get("path"), False))
        for at, entry, may_be_dir in refs:
            if not isinstance(entry, str) or not entry or "\n" in entry:
                continue  # absent, or inline YAML
            target = self._local(file, doc, at, folder, entry)
            if target is not None and may_be_dir and target.is_dir():
                follow.append(target)
        return follow

    def _local(
        self, file: str, doc: Document, at: NodePath, folder: Path, entry: str
    ) -> Path | None:
        where = format_path(at)
        line = doc.line_of(at)
        if _REMOTE.match(entry):
            self.loader.problem(file, line, where, f"remote {entry!r} is not allowed: {OFFLINE}")
            return None
        try:
            real = os.path.realpath(folder / entry)
            exists = os.path.exists(real)
        except (OSError, ValueError) as err:
            self.loader.problem(file, line, where, f"unusable path {entry!r}: {_os_error(err)}")
            return None
        if not self.loader.inside(real):
            self.loader.problem(file, line, where, f"path {entry!r} leaves the config repo")
            return None
        if not exists and _HOSTED.match(entry):
            self.loader.problem(file, line, where, f"remote {entry!r} is not allowed: {OFFLINE}")
            return None
        return Path(real) if exists else None  # a missing local path: kustomize reports it


OFFLINE = "rendering never uses the network; vendor it into the repo"
# URLs (https://, ssh://, git::...), scp-like git addresses (git@host:org/repo).
_REMOTE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*::|[a-zA-Z][a-zA-Z0-9+.-]*://|[\w.-]+@[\w.-]+:)")
# What kustomize takes for a git host when no such local path exists (github.com/org/repo).
_HOSTED = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+(:[0-9]+)?/|.*(\?|&)(ref|version|timeout)=|.*//")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# ---- messages ------------------------------------------------------------------------------


def _os_error(err: Exception) -> str:
    """An OSError without the full path it repeats (the message names the file already)."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err)


def _size(limit: int) -> str:
    mib = 1024 * 1024
    return f"{limit // mib} MiB" if limit % mib == 0 else f"{limit} bytes"


_DROP = object()


def _without(value: Any, locs: list[tuple[Any, ...]]) -> Any:
    """A copy of ``value`` without the fields at ``locs``; None if the root itself is bad."""
    if any(not loc for loc in locs):
        return None
    data = copy_tree(value)
    for loc in locs:
        parent = data
        for part in loc[:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        last = loc[-1]
        if isinstance(parent, dict) and last in parent:
            del parent[last]
        elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
            parent[last] = _DROP
    return _drop_marked(data)


def _drop_marked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_marked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_drop_marked(v) for v in value if v is not _DROP]
    return value


def _is_pointer(text: str) -> bool:
    return text == "" or text.startswith("/")


def _type_name(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    names.update({int: "an integer", float: "a number", type(None): "null"})
    return names.get(type(value), type(value).__name__)


def _did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(kind: str, name: str, known: dict[str, Any]) -> str:
    return f"unknown {kind} {name!r}{_did_you_mean(name, known)}"


_EXPECTED = {
    "string_type": "a string (quote it in YAML)",
    "int_type": "an integer",
    "bool_type": "a boolean",
    "dict_type": "a mapping",
    "list_type": "a list",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _message(model: type[BaseModel], error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        return f"unknown field {key!r}{_did_you_mean(key, _fields_at(model, error['loc'][:-1]))}"
    if kind == "missing":
        return "required field is missing"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_type_name(error['input'])}"
    if kind == "greater_than_equal":
        return f"must be >= {error['ctx']['ge']}"
    if kind == "literal_error":
        return f"must be one of {error['ctx']['expected']}, got {error['input']!r}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    return str(error["msg"])


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The YAML field names allowed at ``loc`` (for did-you-mean); best effort."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            current = _item_type(current)
            continue
        info = next(
            (f for n, f in current.model_fields.items() if (f.alias or n) == part),
            None,
        )
        if info is None:
            return []
        current = info.annotation
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _item_type(tp: Any) -> Any:
    args = typing.get_args(_unwrap(tp))
    return args[-1] if args else tp
