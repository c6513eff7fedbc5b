"""Load one app.yaml: semantic checks (references, overrides, JSON pointers) and its sources
(manifests, Helm values, the kustomize scan), template sites found once."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from reconciler.config.checks import (
    DNS_LABEL,
    labels_problems,
    name_problem,
    selector_problems,
    validate,
)
from reconciler.config.files import KUSTOMIZATION_FILES, OBJECT_SUFFIXES, RepoFiles
from reconciler.config.kustomize import KustomizeScan
from reconciler.config.messages import did_you_mean, os_error, type_name, unknown
from reconciler.config.model import (
    NOT_DEPLOYABLE,
    OWN_GROUP,
    App,
    Cluster,
    ClusterGroup,
    OverrideSource,
    SourceDocument,
)
from reconciler.config.schema import (
    CANARY,
    AppDoc,
    ClusterTarget,
    HealthCheck,
    HelmSource,
    IgnoreRule,
    JsonOp,
    KustomizeSource,
    Override,
    RolloutSpec,
)
from reconciler.health import HealthRule, RuleError, compile_rule
from reconciler.health.rules import compile_expression
from reconciler.manifestcheck import image_override_problems
from reconciler.objects import group_of
from reconciler.templates import Site, find_sites
from reconciler.yamlsrc import Document
from reconciler.yamlsrc import Path as NodePath

_OCI_CHART = re.compile(r"^oci://[A-Za-z0-9.-]+(:\d+)?/[a-z0-9._-]+(/[a-z0-9._-]+)*$")
_CHART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


_BAD_ESCAPE = re.compile(r"~(?![01])")


def pointer_problem(text: str) -> str | None:
    """Why ``text`` is not a JSON pointer (RFC 6901), or None."""
    if text != "" and not text.startswith("/"):
        return f"not a JSON pointer: {text!r} (must start with /)"
    if _BAD_ESCAPE.search(text):
        return f"not a JSON pointer: {text!r} (~ must be written ~0, and / inside a key ~1)"
    return None


def is_pointer(text: str) -> bool:
    return pointer_problem(text) is None


@dataclass
class AppLoader:
    """Semantic checks and source loading for one app.yaml."""

    loader: RepoFiles
    file: str
    doc: Document
    dir: Path
    clusters: dict[str, Cluster]
    groups: dict[str, ClusterGroup]
    known: dict[str, frozenset[str]]  # label and var keys some cluster defines (template typos)

    def problem(self, path: NodePath, message: str, file: str | None = None, line: int = 0) -> None:
        at_line = line or self.doc.line_of(path)
        self.loader.problem(file or self.file, at_line, path, message)

    def load(self) -> App | None:
        parsed = validate(self.loader, AppDoc, self.doc, self.file, "App")
        if parsed is None:
            return None
        spec = parsed.spec
        name = parsed.metadata.name
        name_problem(self.loader, self.file, self.doc, name, DNS_LABEL)
        if spec.namespace is not None and not DNS_LABEL.match(spec.namespace):
            self.problem(("spec", "namespace"), f"invalid namespace {spec.namespace!r}")
        self._target(("spec", "placement"), spec.placement)
        self._overrides(spec.overrides)
        self._ignore_rules(spec.sync.ignore_differences)
        if spec.rollout is not None:
            self.check_rollout(spec.rollout)
        manifests = self._manifests(spec.source.manifests or [], spec.sync.allow_empty)
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
            health=self._health_rules(spec.health),
            chart_line=self._chart_line(spec.source.helm),
            rollout=spec.rollout,
        )

    def _health_rules(self, checks: list[HealthCheck]) -> tuple[HealthRule, ...]:
        """Compile each CEL expression of ``spec.health``; one that does not is located."""
        rules = []
        for i, check in enumerate(checks):
            ok = True
            for name, source in check.expressions.items():
                try:
                    compile_expression(source, boolean=name != "message")
                except RuleError as err:
                    self.problem(("spec", "health", i, name), f"CEL: {err}")
                    ok = False
            if ok:
                expressions = check.expressions
                rules.append(compile_rule(check.kind, check.group, **expressions))
        return tuple(rules)

    # references and selectors

    def _target(self, at: NodePath, target: ClusterTarget) -> None:
        for field_name in ("clusters", "exclude"):
            for i, name in enumerate(getattr(target, field_name)):
                if name not in self.clusters and ("Cluster", name) not in self.loader.unloaded:
                    self.problem((*at, field_name, i), unknown("cluster", name, self.clusters))
        for i, name in enumerate(target.groups):
            if name not in self.groups and ("ClusterGroup", name) not in self.loader.unloaded:
                self.problem((*at, "groups", i), unknown("group", name, self.groups))
        if target.selector is not None:
            selector_problems(self.loader, self.file, self.doc, (*at, "selector"), target.selector)

    def check_rollout(self, rollout: RolloutSpec) -> None:
        """Stage names unique DNS labels, targets that name something, known clusters."""
        seen: set[str] = set()
        if rollout.canary is not None:
            seen.add(CANARY)
            for i, name in enumerate(rollout.canary.clusters):
                if name not in self.clusters and ("Cluster", name) not in self.loader.unloaded:
                    at: NodePath = ("spec", "rollout", "canary", "clusters", i)
                    self.problem(at, unknown("cluster", name, self.clusters))
        for i, stage in enumerate(rollout.stages):
            at = ("spec", "rollout", "stages", i)
            if not DNS_LABEL.match(stage.name):
                self.problem((*at, "name"), f"invalid stage name {stage.name!r}: use a DNS label")
            elif stage.name in seen:
                clash = " (the canary's name)" if stage.name == CANARY and rollout.canary else ""
                self.problem((*at, "name"), f"duplicate stage name {stage.name!r}{clash}")
            seen.add(stage.name)
            target = stage.target
            if not (target.clusters or target.groups or target.selector is not None):
                self.problem((*at, "target"), "stage target names no clusters, groups or selector")
            self._target((*at, "target"), target)

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
                for field, problem in image_override_problems(image.new_name, image.digest):
                    self.problem((*at, "images", j, field), problem)
            labels_problems(self.loader, self.file, self.doc, (*at, "labels"), ov.labels)
            for j, patch in enumerate(ov.patches):
                for k, op in enumerate(patch.json_ or []):
                    self._json_op((*at, "patches", j, "json", k), op)

    def _json_op(self, at: NodePath, op: JsonOp) -> None:
        why = pointer_problem(op.path)
        if why is not None:
            self.problem((*at, "path"), why)
        if op.op in ("add", "replace", "test") and "value" not in op.model_fields_set:
            self.problem(at, f"op {op.op} needs a value")
        if op.op in ("move", "copy") and (op.from_ is None or not is_pointer(op.from_)):
            self.problem(at, f"op {op.op} needs 'from' (a JSON pointer)")
        if op.op not in ("add", "replace", "test") and "value" in op.model_fields_set:
            self.problem((*at, "value"), f"op {op.op} takes no value")
        if op.op not in ("move", "copy") and op.from_ is not None:
            self.problem((*at, "from"), f"op {op.op} takes no 'from'")

    def _ignore_rules(self, rules: list[IgnoreRule]) -> None:
        for i, rule in enumerate(rules):
            for j, pointer in enumerate(rule.json_pointers):
                why = pointer_problem(pointer)
                if why is not None:
                    at = ("spec", "sync", "ignoreDifferences", i, "jsonPointers", j)
                    self.problem(at, why)

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
            self.problem(at, f"unusable path {rel!r}: {os_error(err)}")
            return None
        if not ok:
            what = {"file": "file", "dir": "directory", "any": "file or directory"}[want]
            self.problem(at, f"{what} not found: {self.loader.rel(self.dir)}/{rel}")
            return None
        return path

    def _manifest_files(self, entries: list[str], allow_empty: bool) -> list[Path]:
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
            found = [
                p
                for _, p in self.loader.tree(path, hidden=False)
                if p.suffix in OBJECT_SUFFIXES and os.path.realpath(p) != own
            ]
            if not found and not allow_empty:
                # An emptied folder must not quietly remove the objects it held.
                self.problem(
                    ("spec", "source", "manifests", i),
                    f"no manifest files ({', '.join(OBJECT_SUFFIXES)}) in "
                    f"{self.loader.rel(self.dir)}/{rel} (set spec.sync.allowEmpty: true if "
                    "the app is meant to deploy nothing)",
                )
            files.extend(found)
        return files

    def _manifests(self, entries: list[str], allow_empty: bool) -> list[SourceDocument]:
        """The object documents of ``entries``; an emptied file or folder is a problem unless
        the app allows an empty render (it must not quietly remove, and prune, what it held)."""
        out: list[SourceDocument] = []
        required = None if allow_empty else "Kubernetes object"
        for path in self._manifest_files(entries, allow_empty):
            file = self.loader.rel(path)
            # After a YAML error, the documents before it are still checked.
            for doc in self.loader.documents(path, required):
                if self._manifest_ok(file, doc):
                    out.append(SourceDocument(file, doc.line, doc.value, self._sites(file, doc)))
        return out

    def _manifest_ok(self, file: str, doc: Document) -> bool:
        value = doc.value
        if not isinstance(value, dict):
            self.problem(
                (), f"expected a Kubernetes object, got {type_name(value)}", file, doc.line
            )
            return False
        unsupported = _unsupported_manifest(file, value)
        if unsupported is not None:
            self.problem((), unsupported, file, doc.line)
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
        if helm.remote:
            self._remote_chart(at, helm)
        elif helm.version is not None:
            self.problem(
                (*at, "version"),
                "version is for a chart from a Helm repository (repo:) or an oci:// registry; "
                "a chart in the config repo has the version its Chart.yaml says",
            )
        else:
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

    def _remote_chart(self, at: NodePath, helm: HelmSource) -> None:
        """Shape only: the version constraint is read, and the chart found, by reconciler.charts."""
        if helm.chart.startswith("oci://"):
            if helm.repo is not None:
                self.problem((*at, "repo"), "an oci:// chart takes no repo (the URL says it all)")
            if not _OCI_CHART.match(helm.chart) or "//" in helm.chart[len("oci://") :]:
                self.problem((*at, "chart"), f"not an oci://host/path/name reference: {helm.chart}")
        elif helm.repo is not None:
            repo = urlsplit(helm.repo)
            if repo.scheme not in ("https", "http") or not repo.hostname:
                self.problem((*at, "repo"), f"not an https:// or http:// URL: {helm.repo}")
            elif repo.username is not None or repo.password is not None:
                self.problem(
                    (*at, "repo"),
                    "credentials never live in the config repo: give them to the reconciler "
                    "with --chart-credentials",
                )
            elif repo.query or repo.fragment:
                self.problem((*at, "repo"), "a Helm repository URL has no query or fragment")
            if not _CHART_NAME.match(helm.chart):
                self.problem(
                    (*at, "chart"),
                    f"with repo, chart is the chart's name in that repository, not {helm.chart!r}",
                )
        if helm.version is None or not helm.version.strip():
            self.problem(
                at,
                "version is required for a chart from a repository or registry: an exact "
                'version ("1.2.3") or a range ("^1.2", "~1.2.3", ">=1.0 <2.0")',
            )

    def _chart_line(self, helm: HelmSource | None) -> int:
        at: NodePath = ("spec", "source", "helm")
        if helm is None:
            return 0
        return self.doc.line_of((*at, "version") if helm.version is not None else (*at, "chart"))

    def _kustomize(self, kustomize: KustomizeSource) -> None:
        at: NodePath = ("spec", "source", "kustomize", "path")
        path = self._path(at, kustomize.path, "dir")
        if path is None:
            return
        if not any((path / n).is_file() for n in KUSTOMIZATION_FILES):
            self.problem(at, f"no kustomization.yaml in {kustomize.path}")
            return
        KustomizeScan(self.loader).scan(path)

    # templates

    def _override_sources(self, overrides: list[Override]) -> list[OverrideSource]:
        raw_list = self.doc.value["spec"].get("overrides") or []
        out = []
        for i, override in enumerate(overrides):
            at = ("spec", "overrides", i)
            sites = self._sites(self.file, self.doc, at)
            patches = tuple(
                self.doc.line_of((*at, "patches", j)) for j in range(len(override.patches))
            )
            ops = tuple(
                tuple(
                    self.doc.line_of((*at, "patches", j, "json", k))
                    for k in range(len(patch.json_ or []))
                )
                for j, patch in enumerate(override.patches)
            )
            line = self.doc.line_of(at)
            out.append(OverrideSource(raw_list[i], line, sites, patches, op_lines=ops))
        return out

    def _sites(self, file: str, doc: Document, base: NodePath = ()) -> tuple[Site, ...]:
        sites, problems = find_sites(doc, base)
        for p in problems:
            self.problem(p.path, p.message, file, p.line)
        for site in sites:
            for ref in site.template.refs:
                if ref.scope == "name":
                    continue
                known = self.known.get(ref.scope, frozenset())
                if ref.key not in known:
                    what = "label" if ref.scope == "labels" else "var"
                    hint = did_you_mean(ref.key, known)
                    msg = f"unknown variable {ref}: no cluster defines {what} {ref.key!r}{hint}"
                    self.problem((*base, *site.path), msg, file, site.line)
        return tuple(sites)


def _unsupported_manifest(file: str, value: dict[str, Any]) -> str | None:
    """Why a document of a manifest file is not an object to apply, for the kinds of file
    met there by mistake; None for anything else (checked as an object)."""
    kind, api = value.get("kind"), value.get("apiVersion")
    if Path(file).name in KUSTOMIZATION_FILES or (
        kind == "Kustomization" and str(api).startswith("kustomize.config.k8s.io/")
    ):
        return (
            "a kustomization is not supported among manifests (they are applied as written): "
            "point source.kustomize.path at its folder instead"
        )
    if kind == "List" and api == "v1":
        return (
            "kind List is not supported in a manifest file: write its items as separate "
            "documents (separated by ---)"
        )
    return None
