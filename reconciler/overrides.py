"""Per-cluster overrides: replicas, images, labels/annotations, Helm values, merge/JSON patches.

Every override whose target selects the cluster applies, in file order; later wins. Each apply
returns what it changed (``OverrideEffect``) so ``explain`` can show it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import jsonpatch
import jsonpointer
from pydantic import ValidationError

from reconciler.config.model import App, Cluster, Repo
from reconciler.config.schema import ImageOverride, ObjectTarget, Override, Patch
from reconciler.objects import Manifest, ObjectRef, group_of
from reconciler.placement import select
from reconciler.presentation import format_compact
from reconciler.templates import Context, SiteError, copy_tree, substitute
from reconciler.yamlsrc import Path, format_path

REPLICA_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"})
# Where pod specs live; CRDs with a Deployment-like template (e.g. Rollouts) are covered too.
_POD_SPECS: tuple[Path, ...] = (
    ("spec", "template", "spec"),
    ("spec", "jobTemplate", "spec", "template", "spec"),
)
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
HELM_VALUES = "helm values"


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class OverrideChange:
    """One field an override changed on one object (or in the Helm values): ``before`` the
    override, ``after`` it (a different fact from a Git-vs-live ``FieldChange``)."""

    object: str
    path: str
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{self.object} {self.path}: {_show(self.before)} -> {_show(self.after)}"


@dataclass
class OverrideEffect:
    """What one override did for one target, in application order."""

    override: str
    where: str
    changes: list[OverrideChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unmatched_patches: list[int] = field(default_factory=list)  # patches that matched nothing
    unmatched_images: list[int] = field(default_factory=list)  # images no container runs


class OverrideError(Exception):
    """An override could not be resolved or applied; the message names override and object."""


class PatchOpError(OverrideError):
    """JSON-patch op ``op`` of patch ``patch`` could not be applied (located at the op)."""

    def __init__(self, message: str, *, patch: int, op: int) -> None:
        super().__init__(message)
        self.patch = patch
        self.op = op


def _show(value: Any) -> str:
    return "<absent>" if value is ABSENT else format_compact(value)


# ---- which overrides, resolved for a cluster -----------------------------------------------


def matching(repo: Repo, app: App, cluster: Cluster) -> list[int]:
    """Indexes of the app's overrides whose target selects ``cluster``, in file order."""
    return [
        i for i, ov in enumerate(app.overrides) if select(repo, ov.target, cluster, "target")[0]
    ]


def resolve(app: App, index: int, ctx: Context) -> Override:
    """Override ``index`` with its templates rendered for ``ctx``."""
    override = app.overrides[index]
    source = app.override_sources[index] if app.override_sources else None
    if source is None or not source.sites:
        return override
    try:
        raw = substitute(source.raw, source.sites, ctx)
    except SiteError as err:
        raise OverrideError(f"{app.file}:{err.site.line}: {err}") from err
    try:
        return Override.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = format_path(tuple(first["loc"]))
        raise OverrideError(
            f"{app.override_where(index)}: override {override.name}: after templating, "
            f"{where}: {first['msg']}"
        ) from err


# ---- Helm values ---------------------------------------------------------------------------


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base``: mappings merge, anything else replaces; inputs untouched.

    ``null`` is kept (not deleted) so Helm itself can drop a chart default, as ``--set`` does.
    """
    out = dict(base)
    for key, value in overlay.items():
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            out[key] = deep_merge(old, value)
        else:
            out[key] = copy_tree(value)
    return out


def merge_values(
    values: dict[str, Any],
    overlay: dict[str, Any],
    effect: OverrideEffect,
    chart_defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Deep-merge an override's Helm ``values``, recording each leaf it changed.

    ``chart_defaults`` (the chart's values.yaml) only makes "before" in the record truthful.
    """
    merged = deep_merge(values, overlay)
    for path, _ in _leaves(overlay, ()):
        before, after = _get(values, path), _get(merged, path)
        if before is ABSENT and chart_defaults:
            before = _get(chart_defaults, path)
        if before != after:
            effect.changes.append(OverrideChange(HELM_VALUES, format_path(path), before, after))
    return merged


def _leaves(value: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    else:
        yield path, value


def _get(value: Any, path: Path) -> Any:
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return ABSENT
        value = value[part]
    return value


# ---- applying to objects -------------------------------------------------------------------


def apply(override: Override, objects: list[Manifest], effect: OverrideEffect) -> None:
    """Apply ``override`` to ``objects`` in place, recording into ``effect``.

    Helm values are not applied here (see ``merge_values``). Raises OverrideError.
    """
    if override.replicas is not None:
        _replicas(override.replicas, objects, effect)
    for k, image in enumerate(override.images):
        if not _image(image, objects, effect):
            effect.notes.append(f"images[{k}] ({image.name}) matched no container")
            effect.unmatched_images.append(k)
    for section, entries in (("labels", override.labels), ("annotations", override.annotations)):
        if entries:
            _metadata(section, entries, objects, effect)
    for i, patch in enumerate(override.patches):
        hits = [obj for obj in objects if target_matches(patch.target, obj)]
        if not hits:
            effect.notes.append(f"patches[{i}] matched no object")
            effect.unmatched_patches.append(i)
        for obj in hits:
            _patch(override, i, patch, obj, effect)


def _replicas(replicas: int, objects: list[Manifest], effect: OverrideEffect) -> None:
    for obj in objects:
        if obj.get("kind") not in REPLICA_KINDS:
            continue
        spec = _mapping(obj, ("spec",), effect)
        before = spec.get("replicas", ABSENT)
        if before != replicas:
            spec["replicas"] = replicas
            effect.changes.append(OverrideChange(_name(obj), "spec.replicas", before, replicas))


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``reg:5000/a/b:1.2@sha256:..`` -> (``reg:5000/a/b``, ``1.2``, ``sha256:..``)."""
    name, _, digest = image.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest or None


def rewrite_image(image: str, override: ImageOverride) -> str | None:
    """The new image reference, or None when ``image`` is not ``override.name``."""
    name, tag, digest = split_image(image)
    if name != override.name:
        return None
    name = override.new_name or name
    if override.digest is not None:
        return f"{name}@{override.digest}"
    if override.new_tag is not None:
        return f"{name}:{override.new_tag}"
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def pod_specs(obj: Manifest) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(path, pod spec) of every pod template in a workload (CronJob's nested one included)."""
    paths = (("spec",),) if obj.get("kind") == "Pod" else _POD_SPECS
    for path in paths:
        node: Any = obj
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            yield path, node


def _image(image: ImageOverride, objects: list[Manifest], effect: OverrideEffect) -> bool:
    """Rewrite the containers running ``image.name``; whether any does."""
    found = False
    for obj in objects:
        for path, spec in pod_specs(obj):
            for list_name in _CONTAINER_LISTS:
                containers = spec.get(list_name)
                if not isinstance(containers, list):
                    continue
                for i, container in enumerate(containers):
                    old = container.get("image") if isinstance(container, dict) else None
                    new = rewrite_image(old, image) if isinstance(old, str) else None
                    found = found or new is not None
                    if new is not None and new != old:
                        container["image"] = new
                        where = format_path((*path, list_name, i, "image"))
                        effect.changes.append(OverrideChange(_name(obj), where, old, new))
    return found


def _metadata(
    section: str, entries: dict[str, str], objects: list[Manifest], effect: OverrideEffect
) -> None:
    for obj in objects:
        paths: list[Path] = [("metadata",)]
        if obj.get("kind") == "CronJob":
            paths.append(("spec", "jobTemplate", "metadata"))
        paths += [
            (*spec_path[:-1], "metadata")
            for spec_path, _ in pod_specs(obj)
            if spec_path != ("spec",)
        ]
        name = _name(obj)
        for path in paths:
            _set_entries(obj, name, path, section, entries, effect)


def _set_entries(
    obj: Manifest,
    name: str,
    path: Path,
    section: str,
    entries: dict[str, str],
    effect: OverrideEffect,
) -> None:
    table = _mapping(obj, (*path, section), effect)
    for key, value in entries.items():
        before = table.get(key, ABSENT)
        if before != value:
            table[key] = value
            where = f"{format_path((*path, section))}[{key}]"
            effect.changes.append(OverrideChange(name, where, before, value))


def _mapping(obj: Manifest, path: Path, effect: OverrideEffect) -> dict[str, Any]:
    """The mapping at ``path``, created where absent or null; an error where it is not one."""
    node: dict[str, Any] = obj
    for i, part in enumerate(path):
        child = node.get(str(part))
        if child is None:
            child = node[str(part)] = {}
        if not isinstance(child, dict):
            where = format_path(path[: i + 1])
            name = _name(obj)
            raise OverrideError(
                f"override {effect.override}: cannot apply to {name}: {where} is not a mapping"
            )
        node = child
    return node


def target_matches(target: ObjectTarget, obj: Manifest) -> bool:
    """Whether a patch target (group, kind, name glob, namespace glob) selects ``obj``."""
    # Same identity as ObjectRef.of, checked field by field: this runs per object per patch.
    if target.kind is not None and obj.get("kind") != target.kind:
        return False
    meta = obj.get("metadata") or {}
    if target.name is not None and not fnmatchcase(str(meta.get("name", "")), target.name):
        return False
    namespace = str(meta.get("namespace") or "")
    if target.namespace is not None and not fnmatchcase(namespace, target.namespace):
        return False
    return target.group is None or group_of(str(obj.get("apiVersion", ""))) == target.group


def _patch_failure(err: Exception) -> str:
    """Why a JSON patch op failed, without the library's text: it quotes the whole object,
    Secret values included."""
    if isinstance(err, jsonpatch.JsonPatchTestFailed):
        return "its test failed (the value there differs)"
    if isinstance(err, jsonpatch.JsonPatchConflict | jsonpointer.JsonPointerException | KeyError):
        return "the path (or its parent) does not exist in the object"
    if isinstance(err, IndexError):
        return "the list index is out of range"
    return f"invalid operation ({type(err).__name__})"


def _patch(
    override: Override, index: int, patch: Patch, obj: Manifest, effect: OverrideEffect
) -> None:
    name = _name(obj)
    if patch.merge is not None:
        merge_patch(obj, patch.merge, (), name, effect.changes)
        return
    for k, op in enumerate(patch.json_ or []):
        raw = op.as_dict()
        if "value" in raw:
            raw["value"] = copy_tree(raw["value"])  # never alias the override across targets
        before = _pointer_get(obj, op.path)
        try:
            jsonpatch.JsonPatch([raw]).apply(obj, in_place=True)
        except (
            jsonpatch.JsonPatchException,
            jsonpointer.JsonPointerException,
            TypeError,
            KeyError,
            IndexError,
        ) as err:
            raise PatchOpError(
                f"override {override.name}: patches[{index}].json[{k}] "
                f"({op.op} {op.path}) cannot apply to {name}: {_patch_failure(err)}",
                patch=index,
                op=k,
            ) from err
        if op.op == "test":
            continue
        if op.op == "move" and op.from_ is not None:
            moved = OverrideChange(
                name, pointer_path(op.from_), _pointer_get(obj, op.from_), ABSENT
            )
            effect.changes.append(moved)
        after = _pointer_get(obj, op.path)
        if before != after:
            effect.changes.append(OverrideChange(name, pointer_path(op.path), before, after))


def pointer_path(pointer: str) -> str:
    """``/spec/containers/0/image`` -> ``spec.containers[0].image`` (how other changes read)."""
    parts: list[str | int] = []
    for token in jsonpointer.JsonPointer(pointer).parts:
        parts.append(int(token) if token.isdigit() else token)
    return format_path(tuple(parts))


def _pointer_get(obj: Manifest, pointer: str) -> Any:
    try:
        return copy_tree(jsonpointer.resolve_pointer(obj, pointer, ABSENT))
    except jsonpointer.JsonPointerException:
        return ABSENT


def merge_patch(
    target: dict[str, Any],
    patch: dict[str, Any],
    path: Path,
    name: str,
    changes: list[OverrideChange],
) -> None:
    """RFC 7386 JSON merge patch of ``target`` in place: null deletes, mappings merge."""
    for key, value in patch.items():
        here = (*path, key)
        old = target.get(key, ABSENT)
        if value is None:
            if key in target:
                del target[key]
                changes.append(OverrideChange(name, format_path(here), old, ABSENT))
        elif isinstance(value, dict):
            if not isinstance(old, dict):
                fresh: dict[str, Any] = {}
                merge_patch(fresh, value, here, name, [])
                target[key] = fresh
                changes.append(OverrideChange(name, format_path(here), old, copy_tree(fresh)))
            else:
                merge_patch(old, value, here, name, changes)
        elif old != value:
            target[key] = copy_tree(value)
            changes.append(OverrideChange(name, format_path(here), old, value))


def _name(obj: Manifest) -> str:
    return str(ObjectRef.of(obj))


def describe_target(target: ObjectTarget) -> str:
    """``kind=Service name=web`` (what a patch looks for)."""
    parts = [
        f"{name}={value}"
        for name, value in (
            ("group", target.group),
            ("kind", target.kind),
            ("name", target.name),
            ("namespace", target.namespace),
        )
        if value is not None
    ]
    return " ".join(parts) or "any object"


def unplaced_overrides(repo: Repo, app: App, placed: list[Cluster]) -> list[str]:
    """Located warnings for overrides whose target selects none of the app's clusters."""
    warnings = []
    for i, override in enumerate(app.overrides):
        if not any(select(repo, override.target, c, "target")[0] for c in placed):
            warnings.append(
                f"{app.override_where(i)}: app {app.name}: override {override.name} selects "
                "none of the clusters the app is placed on"
            )
    return warnings
