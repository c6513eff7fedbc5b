"""Render one app for one cluster: source, templates, namespace, overrides, ownership label.

Sources are plain manifests (parsed once at load), ``helm template`` or ``kustomize build``
(the real binaries). Helm renders are shared between targets whose chart, release, namespace
and final values are identical; a kustomize build has no per-cluster input, so it runs once.

Rendering never uses the network: the tools run with every proxy variable pointing at a dead
loopback port and git limited to local repositories (remote bases and paths leaving the repo are
already rejected when the repo is loaded; a chart's dependencies must be vendored in charts/).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler import APP_LABEL
from reconciler.charts.model import ChartLock
from reconciler.config.files import KUSTOMIZATION_FILES
from reconciler.config.model import NOT_DEPLOYABLE, OWN_GROUP, App, Cluster, Repo, SourceDocument
from reconciler.config.schema import Override
from reconciler.errors import RenderError
from reconciler.manifestcheck import object_problem
from reconciler.objects import Manifest, ObjectRef, group_of, is_cluster_scoped, sorted_for_apply
from reconciler.overrides import (
    OverrideEffect,
    OverrideError,
    PatchOpError,
    apply,
    deep_merge,
    describe_target,
    matching,
    merge_values,
    resolve,
)
from reconciler.placement import targets
from reconciler.templates import Context, SiteError, find_sites, freeze, substitute, thaw
from reconciler.toolchain import KUBERNETES_VERSION, Toolchain
from reconciler.yamlsrc import YamlError, load_documents, load_fast


@dataclass(frozen=True)
class Capabilities:
    """What a cluster tells Helm it is: ``--kube-version`` and ``--api-versions`` (``apps/v1``,
    ``apps/v1/Deployment``). An input of the render, so rendering stays pure: live commands and
    the daemon take it from the cluster's discovery; offline renders from ``spec.kubeVersion``
    or the pinned Kubernetes version."""

    kube_version: str
    api_versions: tuple[str, ...] = ()


def offline_capabilities(cluster: Cluster) -> Capabilities:
    """What an offline render assumes of a cluster: its ``spec.kubeVersion``, else the pinned
    Kubernetes version (and only Helm's built-in API versions)."""
    return Capabilities(cluster.kube_version or KUBERNETES_VERSION)


@dataclass
class RenderedTarget:
    """The desired objects of one app on one cluster, in apply order, and what overrides did."""

    app: str
    cluster: str
    objects: list[Manifest]
    overrides_applied: list[OverrideEffect]
    warnings: list[str] = field(default_factory=list)  # located: a patch that matched nothing


@dataclass
class TargetResult:
    app: str
    cluster: str
    rendered: RenderedTarget | None = None
    error: RenderError | None = None


@dataclass
class RenderCache:
    """Tool output shared between targets within one revision; ``runs`` counts tool calls."""

    helm: dict[tuple[str, ...], bytes] = field(default_factory=dict)  # frozen manifests
    kustomize: dict[str, list[SourceDocument]] = field(default_factory=dict)
    chart_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: int = 0


class _Failure(Exception):
    """A render step failed; the message is located (file:line, override, object)."""


_DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, connections fail fast
OFFLINE_ENV = {
    **{
        name: _DEAD_PROXY
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")
    },
    "all_proxy": _DEAD_PROXY,
    "NO_PROXY": "",
    "no_proxy": "",
    "GIT_ALLOW_PROTOCOL": "file",  # kustomize fetches remote bases with git
    "GIT_TERMINAL_PROMPT": "0",
}


def render_all(
    repo: Repo,
    apps: Iterable[str] | None = None,
    clusters: Iterable[str] | None = None,
    tools: Toolchain | None = None,
    cache: RenderCache | None = None,
    charts: ChartLock | None = None,
    capabilities: Mapping[str, Capabilities] | None = None,
) -> list[TargetResult]:
    """Render every (app, target cluster); one failing target never stops the others.

    ``charts`` holds the local (cached) chart of every app whose chart comes from a Helm
    repository or OCI registry (``reconciler.charts.lock``); rendering itself never fetches.
    ``capabilities`` per cluster name (what Helm is told the cluster is); a cluster missing
    there gets ``offline_capabilities``.
    """
    app_names = set(apps) if apps is not None else None
    cluster_names = set(clusters) if clusters is not None else None
    cache = cache if cache is not None else RenderCache()
    lock = charts or ChartLock()
    results: list[TargetResult] = []
    with _cyclic_gc_paused():
        for app in repo.apps.values():
            if app_names is not None and app.name not in app_names:
                continue
            for cluster in targets(repo, app):
                if cluster_names is not None and cluster.name not in cluster_names:
                    continue
                caps = (capabilities or {}).get(cluster.name) or offline_capabilities(cluster)
                try:
                    rendered = _render(repo, app, cluster, tools, cache, lock, caps)
                    results.append(TargetResult(app.name, cluster.name, rendered=rendered))
                except RenderError as err:
                    results.append(TargetResult(app.name, cluster.name, error=err))
    return results


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while rendering many targets.

    A big render allocates millions of small, acyclic dicts and lists that all survive; the
    generational GC would rescan them over and over (measured: ~45% of render time at 1,000
    clusters x 50 apps). Reference counting still frees everything; nothing here makes cycles.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def render_target(
    repo: Repo,
    app: App,
    cluster: Cluster,
    tools: Toolchain | None = None,
    charts: ChartLock | None = None,
) -> RenderedTarget:
    """Desired objects of ``app`` on ``cluster`` as an offline render sees the cluster
    (``offline_capabilities``); raises RenderError naming what failed where."""
    caps = offline_capabilities(cluster)
    return _render(repo, app, cluster, tools, RenderCache(), charts or ChartLock(), caps)


@contextmanager
def _located(app: App, cluster: Cluster) -> Iterator[None]:
    """A failed render step as the RenderError of ``app`` on ``cluster``."""
    try:
        yield
    except _Failure as err:
        raise RenderError(str(err), app=app.name, cluster=cluster.name) from err


def _render(
    repo: Repo,
    app: App,
    cluster: Cluster,
    tools: Toolchain | None,
    cache: RenderCache,
    charts: ChartLock,
    caps: Capabilities,
) -> RenderedTarget:
    """``app`` on ``cluster``; a failed step raises the RenderError naming it."""
    with _located(app, cluster):
        ctx = Context(cluster.name, cluster.labels, cluster.vars)
        overrides: list[tuple[Override, OverrideEffect]] = []
        indexes = matching(repo, app, cluster)
        for i in indexes:
            try:
                override = resolve(app, i, ctx)
            except OverrideError as err:
                raise _Failure(str(err)) from err
            overrides.append((override, OverrideEffect(override.name, app.override_where(i))))

        source = app.source
        origins: list[str] = []  # file:line of each object, when the source has them
        origin = ""  # where the objects came from when no file:line says it
        if source.helm is not None:
            chart_at = _chart(app, charts)
            origin = f"helm template {chart_at[1] or _rel(repo, chart_at[0])}"
            objects = _helm(repo, app, ctx, overrides, tools, cache, chart_at, caps)
        else:
            docs = _kustomize(repo, app, tools, cache) if source.kustomize else app.manifests
            objects = [_substitute(doc, ctx) for doc in docs]
            origins = [f"{doc.file}:{doc.line}" for doc in docs]
        for override, effect in overrides:
            if override.values and source.helm is None:
                effect.notes.append("values ignored: the app has no Helm source")

        _default_namespace(app, objects)
        for i, (override, effect) in zip(indexes, overrides, strict=True):
            try:
                apply(override, objects, effect)
            except PatchOpError as err:
                raise _Failure(f"{app.op_where(i, err.patch, err.op)}: {err}") from err
            except OverrideError as err:
                raise _Failure(f"{effect.where}: {err}") from err
        for obj in objects:
            _label(obj, app.name)
        _check_objects(objects, origins, origin)
        warnings = []
        for i, (override, effect) in zip(indexes, overrides, strict=True):
            head = f"app {app.name}: override {override.name}"
            for k in effect.unmatched_patches:
                warnings.append(
                    f"{app.patch_where(i, k)}: {head}: patches[{k}] "
                    f"({describe_target(override.patches[k].target)}) matches no "
                    f"object on cluster {cluster.name}"
                )
            for k in effect.unmatched_images:
                warnings.append(
                    f"{app.override_where(i)}: {head}: images[{k}] "
                    f"({override.images[k].name}) matches no container on cluster {cluster.name}"
                )
            if override.values and source.helm is None:
                warnings.append(
                    f"{app.override_where(i)}: {head}: values ignored, the app has no Helm "
                    f"source (use patches) on cluster {cluster.name}"
                )
        return RenderedTarget(
            app.name,
            cluster.name,
            _in_apply_order(objects, origins),
            [e for _, e in overrides],
            warnings,
        )


def _substitute(doc: SourceDocument, ctx: Context) -> Manifest:
    try:
        value: Manifest = substitute(doc.fresh(), doc.sites, ctx, copy=False)
    except SiteError as err:
        raise _Failure(f"{doc.file}:{err.site.line}: {err}") from err
    return value


def _default_namespace(app: App, objects: list[Manifest]) -> None:
    if app.namespace is None:
        return
    crd_scopes: dict[tuple[str, str], bool] = {}
    for obj in objects:
        spec = obj.get("spec")
        if obj.get("kind") == "CustomResourceDefinition" and isinstance(spec, dict):
            names = spec.get("names")
            kind = names.get("kind", "") if isinstance(names, dict) else ""
            crd_scopes[(str(spec.get("group", "")), str(kind))] = spec.get("scope") == "Cluster"
    for obj in objects:
        meta = obj.setdefault("metadata", {})
        if meta.get("namespace"):
            continue
        group = group_of(str(obj.get("apiVersion", "")))
        if not is_cluster_scoped(group, str(obj.get("kind", "")), crd_scopes):
            # Right after the name, where people look for it in rendered output.
            obj["metadata"] = {"name": meta.get("name"), "namespace": app.namespace, **meta}


def _label(obj: Manifest, app: str) -> None:
    meta = obj.setdefault("metadata", {})
    labels = meta.get("labels")
    if not isinstance(labels, dict):
        labels = meta["labels"] = {}
    labels[APP_LABEL] = app


def _check_objects(objects: list[Manifest], origins: list[str], origin: str) -> None:
    """What the API server would reject (``manifestcheck``), said where the object came from:
    its file:line (``origins``, aligned with ``objects`` when the source has them), else the
    tool that made it."""
    for index, obj in enumerate(objects):
        problem = object_problem(obj)
        if problem is not None:
            where = origins[index] if index < len(origins) else origin
            prefix = f"{where}: " if where else ""
            raise _Failure(f"{prefix}{ObjectRef.of(obj)}: {problem}")


def _in_apply_order(objects: list[Manifest], origins: list[str]) -> list[Manifest]:
    """``sorted_for_apply`` order; also rejects two objects with one identity, naming the
    file:line of both when ``origins`` (aligned with ``objects``) has them."""
    seen: dict[ObjectRef, int] = {}
    for index, obj in enumerate(objects):
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or not all(
            isinstance(v, str) and v
            for v in (obj.get("apiVersion"), obj.get("kind"), meta.get("name"))
        ):
            raise _Failure(f"not a valid object after rendering: {str(obj)[:80]}")
        ref = ObjectRef.of(obj)
        if ref.group == OWN_GROUP:
            raise _Failure(f"{ref}: {obj['apiVersion']} {NOT_DEPLOYABLE}")
        if ref in seen:
            if len(origins) == len(objects):
                where = f"{origins[seen[ref]]} and {origins[index]}"
                raise _Failure(f"duplicate object {ref}: defined in {where}")
            raise _Failure(f"duplicate object {ref} in the render")
        seen[ref] = index
    return sorted_for_apply(objects)


# ---- tools ---------------------------------------------------------------------------------


def _helm(
    repo: Repo,
    app: App,
    ctx: Context,
    overrides: list[tuple[Override, OverrideEffect]],
    tools: Toolchain | None,
    cache: RenderCache,
    chart_at: tuple[Path, str],
    caps: Capabilities,
) -> list[Manifest]:
    helm = app.source.helm
    assert helm is not None
    values: dict[str, Any] = {}
    for layer in app.helm_values:
        values = deep_merge(values, _substitute(layer, ctx))
    chart, where = chart_at
    where = where or _rel(repo, chart)
    for override, effect in overrides:
        if override.values:
            defaults = _chart_defaults(chart, cache)
            values = merge_values(values, override.values, effect, defaults)
    release = helm.release_name or app.name
    values_json = json.dumps(values, sort_keys=True, default=str)
    api_versions = ",".join(caps.api_versions)
    key = (str(chart), release, app.namespace or "", values_json, caps.kube_version, api_versions)
    if key not in cache.helm:
        tools = tools or Toolchain.default()
        cmd = [tools.helm, "template", release, str(chart), "--include-crds", "--skip-tests"]
        cmd += ["--kube-version", caps.kube_version]
        if api_versions:
            cmd += ["--api-versions", api_versions]
        if app.namespace:
            cmd += ["--namespace", app.namespace]
        with tempfile.TemporaryDirectory(prefix="reconciler-helm-") as tmp:
            values_file = Path(tmp) / "values.json"  # JSON is YAML, and exact
            values_file.write_text(values_json)
            env = {
                f"HELM_{d}_HOME": str(Path(tmp) / d.lower()) for d in ("CACHE", "CONFIG", "DATA")
            }
            out = _run([*cmd, "--values", str(values_file)], tools, f"helm template {where}", env)
        cache.runs += 1
        try:
            docs = load_fast(out)
        except YamlError as err:
            raise _Failure(f"helm template {where}: output is not valid YAML: {err}") from err
        for doc in docs:
            if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
                raise _Failure(f"helm template {where}: output holds a non-object: {doc!r:.60}")
        cache.helm[key] = freeze(docs)
    objects: list[Manifest] = thaw(cache.helm[key])
    return objects


def _chart(app: App, charts: ChartLock) -> tuple[Path, str]:
    """The chart directory to render and how messages name it."""
    helm = app.source.helm
    assert helm is not None
    if not helm.remote:
        return (app.dir / helm.chart).resolve(), ""
    resolved = charts.charts.get(app.name)
    if resolved is None:
        error = charts.errors.get(app.name)
        raise _Failure(error or f"chart {helm.chart} {helm.version} was not resolved")
    return resolved.path, f"{resolved.source} {resolved.version}"


def _chart_defaults(chart: Path, cache: RenderCache) -> dict[str, Any]:
    key = str(chart)
    if key not in cache.chart_defaults:
        try:
            docs = load_fast((chart / "values.yaml").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, YamlError):
            docs = []  # helm itself reports a broken values.yaml
        cache.chart_defaults[key] = docs[0] if docs and isinstance(docs[0], dict) else {}
    return cache.chart_defaults[key]


def _kustomize(
    repo: Repo, app: App, tools: Toolchain | None, cache: RenderCache
) -> list[SourceDocument]:
    kustomize = app.source.kustomize
    assert kustomize is not None
    path = (app.dir / kustomize.path).resolve()
    key = str(path)
    if key not in cache.kustomize:
        tools = tools or Toolchain.default()
        where = _rel(repo, path)
        named = next((path / n for n in KUSTOMIZATION_FILES if (path / n).is_file()), path)
        what = f"kustomize build {_rel(repo, named)}"
        out = _run([tools.kustomize, "build", str(path)], tools, what, {}, repo.root)
        cache.runs += 1
        file = f"{where} (kustomize build output)"
        try:
            parsed = load_documents(out)
        except YamlError as err:
            raise _Failure(f"{file}: not valid YAML: {err}") from err
        docs = []
        for doc in parsed:
            if not isinstance(doc.value, dict) or not isinstance(doc.value.get("metadata"), dict):
                raise _Failure(f"{file}:{doc.line}: not a Kubernetes object")
            sites, problems = find_sites(doc)
            if problems:
                raise _Failure(f"{file}:{problems[0].line}: {problems[0].message}")
            docs.append(SourceDocument(file, doc.line, doc.value, tuple(sites)))
        cache.kustomize[key] = docs
    return cache.kustomize[key]


# Helm's advice after a template error, about a flag reconciler does not have.
_HELM_DEBUG_ADVICE = "Use --debug flag to render out invalid YAML"


def _run(
    cmd: list[str], tools: Toolchain, what: str, env: dict[str, str], root: Path | None = None
) -> str:
    """Run a render tool; a failure is one line, with paths shown relative to the repo (not
    the state dir's export of it)."""
    tool = what.split()[0]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=tools.timeout,
            env={**os.environ, **OFFLINE_ENV, **env},
            check=False,
        )
    except FileNotFoundError as err:
        raise _Failure(
            f"{what}: {cmd[0]} not found (run `reconciler dev provision` to build the pinned "
            f"{tool}, or set RECONCILER_{tool.upper()} to one)"
        ) from err
    except subprocess.TimeoutExpired as err:
        raise _Failure(f"{what}: timed out after {tools.timeout:g}s") from err
    if proc.returncode != 0:
        detail = "; ".join(
            line.strip()
            for line in proc.stderr.splitlines()
            if line.strip() and line.strip() != _HELM_DEBUG_ADVICE
        )
        if root is not None:
            for prefix in {str(root.resolve()), str(root)}:
                detail = detail.replace(prefix + "/", "").replace(prefix, ".")
        raise _Failure(f"{what} failed: {detail or f'exit {proc.returncode}'}")
    return proc.stdout


def _rel(repo: Repo, path: Path) -> str:
    try:
        return path.relative_to(repo.root.resolve()).as_posix()
    except ValueError:
        return str(path)
