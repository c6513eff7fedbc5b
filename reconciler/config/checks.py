"""Checks every config document gets: its schema (pydantic errors made located problems), its name,
duplicates, label keys and values, label selectors."""

from __future__ import annotations

import re
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from reconciler import API_VERSION
from reconciler.config.files import RepoFiles
from reconciler.config.messages import schema_message, type_name
from reconciler.config.schema import Selector
from reconciler.selectors import expression_problems, label_key_problem, label_value_problem
from reconciler.templates import copy_tree
from reconciler.yamlsrc import Document
from reconciler.yamlsrc import Path as NodePath

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

_M = typing.TypeVar("_M", bound=BaseModel)


def validate(files: RepoFiles, model: type[_M], doc: Document, file: str, kind: str) -> _M | None:
    """Schema-check ``doc``; report every error, and return a model of what is left.

    Offending fields are dropped and the rest re-validated, so semantic checks still run
    on a partly broken document and one run reports as much as possible. (Any problem
    fails the load, so a repaired model never reaches a caller.)
    """
    value = doc.value
    if not isinstance(value, dict):
        files.problem(file, doc.line, "", f"expected a {kind} mapping, got {type_name(value)}")
        return None
    if value.get("apiVersion") != API_VERSION:
        files.problem(file, doc.line_of(("apiVersion",)), "apiVersion", f"must be {API_VERSION}")
    if value.get("kind") != kind:
        got = value.get("kind")
        files.problem(file, doc.line_of(("kind",)), "kind", f"must be {kind} here, got {got!r}")
    data: Any = value
    dropped: list[tuple[Any, ...]] = []
    for _ in range(5):
        try:
            return model.model_validate(data)
        except ValidationError as err:
            errors = err.errors()
        for e in errors:
            loc = tuple(e["loc"])
            # A field we dropped, or a check of a mapping above one (a model validator's
            # "set exactly one of ..."), fails only because of the drop: already reported.
            if any(loc == d[: len(loc)] for d in dropped):
                continue
            line = doc.line_of(loc) if e["type"] != "missing" else doc.line_of(loc[:-1])
            files.problem(file, line, loc, schema_message(model, e))
        locs = [tuple(e["loc"]) for e in errors]
        dropped += locs
        data = without(data, locs)
        if data is None:
            break
    meta = value.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if isinstance(name, str):
        files.unloaded.add((kind, name))
    return None


def name_problem(
    files: RepoFiles, file: str, doc: Document, name: str, pattern: re.Pattern[str]
) -> bool:
    if not pattern.match(name) or len(name) > 63:
        files.problem(
            file,
            doc.line_of(("metadata", "name")),
            "metadata.name",
            f"invalid name {name!r}: use lowercase letters, digits and '-' (at most 63)",
        )
        return True
    return False


def duplicate(
    files: RepoFiles, kind: str, name: str, seen: dict[str, Any], file: str, line: int
) -> bool:
    if name in seen:
        first = seen[name]
        files.problem(
            file, line, "metadata.name", f"duplicate {kind} {name!r} (first in {first.file})"
        )
        return True
    return False


# clusters and groups


def labels_problems(
    files: RepoFiles, file: str, doc: Document, at: NodePath, labels: dict[str, str]
) -> bool:
    bad = False
    for key, value in labels.items():
        for why in (label_key_problem(key), label_value_problem(value)):
            if why is not None:
                files.problem(file, doc.line_of((*at, key)), (*at, key), why)
                bad = True
    return bad


def selector_problems(
    files: RepoFiles, file: str, doc: Document, at: NodePath, sel: Selector
) -> bool:
    bad = labels_problems(files, file, doc, (*at, "matchLabels"), sel.match_labels)
    for i, expr in enumerate(sel.match_expressions):
        base = (*at, "matchExpressions", i)
        for rel, why in expression_problems(expr.key, expr.operator, expr.values):
            sub = tuple(int(p) if p.isdigit() else p for p in re.split(r"[\[\]]+", rel) if p)
            files.problem(file, doc.line_of((*base, *sub)), (*base, *sub), why)
            bad = True
    return bad


_DROP = object()


def without(value: Any, locs: list[tuple[Any, ...]]) -> Any:
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
