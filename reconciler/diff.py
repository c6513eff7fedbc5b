"""Pure diffing: normalize, compare field by field, attribute, ignore differences.

The diff that matters is *live* vs *server-side-apply dry-run result*: both come from the server,
so defaults, assigned fields and webhook mutations appear on both sides and never show as change.
Field paths read like ``spec.template.spec.containers[name=web].image``.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from reconciler.config.schema import IgnoreRule
from reconciler.fields import FieldChange, parse_time
from reconciler.objects import Manifest, ObjectRef

_VOLATILE_METADATA = (
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
)
_LIST_KEYS = ("name", "containerPort", "port", "mountPath", "devicePath", "ip", "type", "key")


def normalize(obj: Mapping[str, Any]) -> Manifest:
    """A copy without server bookkeeping: managedFields, resourceVersion, uid, status, ..."""
    out = copy.deepcopy(dict(obj))
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for key in _VOLATILE_METADATA:
            meta.pop(key, None)
    return out


def _key(name: str) -> str:
    return f"[{name}]" if any(c in name for c in "./[]") else f".{name}"


def _join(prefix: str, name: str) -> str:
    piece = _key(name)
    return (piece[1:] if piece.startswith(".") else piece) if not prefix else prefix + piece


def _list_key(before: list[Any], after: list[Any]) -> str | None:
    """The field identifying entries in both lists of objects (``name`` for containers...)."""
    items = before + after
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in _LIST_KEYS:
        if all(key in i for i in items) and all(
            len({str(i[key]) for i in side}) == len(side) for side in (before, after)
        ):
            return key
    return None


def differences(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Every leaf that differs between ``a`` and ``b`` as (path, value in a, value in b), in a
    stable order; lists of objects are matched by their identifying field (``name``...)."""
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[tuple[str, Any, Any]] = []
        for name in sorted(set(a) | set(b), key=str):
            out += differences(a.get(name), b.get(name), _join(prefix, str(name)))
        return out
    if isinstance(a, list) and isinstance(b, list):
        key = _list_key(a, b)
        if key is not None:
            old = {str(i[key]): i for i in a}
            new = {str(i[key]): i for i in b}
            out = []
            for ident in sorted(set(old) | set(new)):
                out += differences(old.get(ident), new.get(ident), f"{prefix}[{key}={ident}]")
            return out
        if len(a) == len(b):
            out = []
            for index, (x, y) in enumerate(zip(a, b, strict=True)):
                out += differences(x, y, f"{prefix}[{index}]")
            return out
    return [(prefix or ".", a, b)]


def field_changes(git: Any, live: Any, prefix: str = "") -> list[FieldChange]:
    """Every field where ``git`` (the desired object) and ``live`` differ."""
    return [FieldChange(path, g, v) for path, g, v in differences(git, live, prefix)]


# ---- managedFields: who owns which field ---------------------------------------------------


@dataclass(frozen=True)
class Ownership:
    manager: str
    operation: str
    time: str | None
    status_only: bool = False  # an entry for the status subresource (controllers, not people)
    whole: bool = False  # a leaf of managedFields: the field and all it holds (atomic)


def _fields_paths(fields: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, bool]]:
    """(path, whole) of every field a managedFields entry owns: a leaf (``{}``, owned whole) or
    a node marked ``.`` (a list entry or map itself). A node that only holds owned fields
    (``f:spec``, ``f:metadata``) is not owned: every manager of any field in it lists it."""
    for raw, sub in fields.items():
        if raw == ".":
            continue
        kind, _, name = raw.partition(":")
        if kind == "f":
            path = _join(prefix, name)
        elif kind == "k":
            try:
                ident = json.loads(name)
            except ValueError:
                ident = {}
            pairs = ",".join(f"{k}={v}" for k, v in sorted(ident.items()))
            path = f"{prefix}[{pairs}]"
        elif kind == "v":
            path = f"{prefix}[={name}]"
        elif kind == "i":
            path = f"{prefix}[{name}]"
        else:
            continue
        inner = sub if isinstance(sub, Mapping) else {}
        if not inner:
            yield path, True
        elif "." in inner:
            yield path, False
        if inner:
            yield from _fields_paths(inner, path)


def field_owners(live: Mapping[str, Any]) -> dict[str, list[Ownership]]:
    """Field path -> the managers that own it, from the live object's managedFields."""
    owners: dict[str, list[Ownership]] = {}
    meta = live.get("metadata") or {}
    for entry in meta.get("managedFields") or []:
        owner = Ownership(
            manager=str(entry.get("manager", "?")),
            operation=str(entry.get("operation", "")),
            time=entry.get("time"),
            status_only=entry.get("subresource") == "status",
        )
        kinds = {False: owner, True: replace(owner, whole=True)}  # one of each per entry
        for path, whole in _fields_paths(entry.get("fieldsV1") or {}):
            owners.setdefault(path, []).append(kinds[whole])
    return owners


def attribute(
    changes: list[FieldChange], live: Mapping[str, Any], ours: str, *, unowned: bool = True
) -> list[FieldChange]:
    """Name the manager (and time) that last set each changed field, other than ``ours``.

    A field's owners are those of its own managedFields entry, else those of the nearest field
    holding it that a manager owns whole (an atomic map or list); a map that merely holds owned
    fields (``spec``, ``metadata.annotations``) names nobody. A field we set that someone else
    removed is owned by nobody any more: with ``unowned`` it is attributed to the most recent
    Update on the object, the best evidence the server keeps. Without ``unowned`` (Git changed
    since the last apply) it stays unattributed, and so does a field we still own: it holds
    what we applied (another manager's write takes it from us), so its change is Git's.
    """
    owners = field_owners(live)
    updates = sorted(
        (
            o
            for entries in owners.values()
            for o in entries
            if o.operation == "Update" and o.manager != ours and not o.status_only
        ),
        key=lambda o: o.time or "",
    )
    latest_update = updates[-1] if updates and unowned else None
    out = []
    for change in changes:
        found = _owner_of(change.path, owners, ours, git_changed=not unowned)
        found = found or latest_update
        out.append(
            FieldChange(
                change.path,
                change.git,
                change.live,
                found.manager if found else None,
                parse_time(found.time) if found else None,
            )
        )
    return out


_KEYED = re.compile(r"\[([^\]=]+=[^\]]*)\]")


def _key_pairs(path: str) -> tuple[str, list[set[str]]]:
    """``a[name=x].b`` -> (``a[].b``, [{name=x}]): list keys compared as sets of pairs."""
    pairs = [set(m.group(1).split(",")) for m in _KEYED.finditer(path)]
    return _KEYED.sub("[]", path), pairs


def _lookup(owners: Mapping[str, list[Ownership]], path: str) -> list[Ownership]:
    """Owners of ``path``; ``[port=80]`` matches ``[port=80,protocol=TCP]`` of managedFields."""
    exact = owners.get(path)
    if exact is not None or "[" not in path:
        return exact or []
    shape, wanted = _key_pairs(path)
    found: list[Ownership] = []
    for candidate, entries in owners.items():
        cand_shape, have = _key_pairs(candidate)
        if (
            cand_shape == shape
            and len(have) == len(wanted)
            and all(w <= h for w, h in zip(wanted, have, strict=True))
        ):
            found += entries
    return found


def _owner_of(
    path: str, owners: Mapping[str, list[Ownership]], ours: str, *, git_changed: bool
) -> Ownership | None:
    """The latest other manager owning ``path``: by its own entry (``spec.replicas``), else by
    the nearest enclosing field owned whole (``spec.selector`` for ``spec.selector.matchLabels``
    ...). None when only we own it and Git changed (Git's change), or when nobody does."""
    candidate, exact = path, True
    while candidate:
        held = [o for o in _lookup(owners, candidate) if exact or o.whole]
        others = [o for o in held if o.manager != ours]
        if others and not (git_changed and len(others) < len(held)):
            return max(others, key=lambda o: o.time or "")
        if held and git_changed:
            return None  # we own it: it holds what we applied
        exact = False
        cut = max(candidate.rfind("."), candidate.rfind("["))
        candidate = candidate[:cut] if cut > 0 else ""
    return None


def managers_other_than(live: Mapping[str, Any], ours: str) -> list[str]:
    meta = live.get("metadata") or {}
    return sorted({e.get("manager", "?") for e in meta.get("managedFields") or []} - {ours})


# ---- ignoreDifferences -------------------------------------------------------------------


def _rule_matches(rule: IgnoreRule, ref: ObjectRef) -> bool:
    return (
        (rule.group is None or rule.group == ref.group)
        and (rule.kind is None or rule.kind == ref.kind)
        and (rule.name is None or fnmatch.fnmatchcase(ref.name, rule.name))
        and (rule.namespace is None or fnmatch.fnmatchcase(ref.namespace, rule.namespace))
    )


def ignored_pointers(ref: ObjectRef, rules: Iterable[IgnoreRule]) -> list[str]:
    return [p for rule in rules if _rule_matches(rule, ref) for p in rule.json_pointers]


def _pointer_parts(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]


def _resolve(obj: Any, parts: list[str]) -> tuple[bool, Any]:
    node = obj
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def strip_pointers(obj: Mapping[str, Any], pointers: Iterable[str]) -> Manifest:
    """A copy without the fields at the given RFC 6901 pointers (absent ones are fine)."""
    out = copy.deepcopy(dict(obj))
    for pointer in pointers:
        parts = _pointer_parts(pointer)
        found, parent = _resolve(out, parts[:-1])
        if not found:
            continue
        if isinstance(parent, dict):
            parent.pop(parts[-1], None)
        elif isinstance(parent, list) and parts[-1].isdigit() and int(parts[-1]) < len(parent):
            parent.pop(int(parts[-1]))
    return out


def take_from_live(
    desired: Mapping[str, Any], live: Mapping[str, Any], pointers: Iterable[str]
) -> Manifest:
    """A copy of ``desired`` whose fields at ``pointers`` hold the live values instead.

    Fields absent live are left out. Sending the live value (rather than omitting the field)
    matters: a field we solely own and stop sending is removed, and the server's default
    (``replicas: 1``) comes back. Maps Git does not declare on the way are made (an annotation
    under no ``annotations``); a list or list entry Git does not declare never is (an injected
    init container's image): the field is not sent, and the server keeps its live value.
    """
    out = copy.deepcopy(dict(desired))
    for pointer in pointers:
        parts = _pointer_parts(pointer)
        found, value = _resolve(live, parts)
        if not found:
            out = strip_pointers(out, [pointer])
            continue
        node = _holder(out, live, parts)
        if isinstance(node, dict):
            node[parts[-1]] = copy.deepcopy(value)
        elif isinstance(node, list) and parts[-1].isdigit() and int(parts[-1]) < len(node):
            node[int(parts[-1])] = copy.deepcopy(value)
    return out


def _holder(out: Any, live: Any, parts: list[str]) -> Any:
    """The map or list in ``out`` that is to hold the field at ``parts`` (present live), with
    the maps Git does not declare on the way made; None when the way runs through a list or a
    list entry Git does not declare: made up, it would be malformed (``{"0": ...}`` for a list)
    or, copied from live, would make us an owner of entries another manager keeps."""
    node, seen = out, live
    for depth, part in enumerate(parts[:-1]):
        seen = seen[int(part)] if isinstance(seen, list) else seen[part]
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, dict) and _maps_all_the_way(seen, parts[depth + 1 : -1]):
            for name in parts[depth:-1]:
                node = node.setdefault(name, {})
            return node
        else:
            return None
    return node


def _maps_all_the_way(node: Any, parts: list[str]) -> bool:
    """Whether ``node`` and each node below it along ``parts`` is a map."""
    for part in parts:
        if not isinstance(node, dict):
            return False
        node = node[part]
    return isinstance(node, dict)


def content_hash(obj: Mapping[str, Any]) -> str:
    """Stable hash of a desired manifest (what we asked for, not what the server holds)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
