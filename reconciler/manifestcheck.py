"""Cheap static checks of what the API server would reject (pure): object names, label and
annotation values, Secret data, object sizes, image references of overrides.

Run on every rendered object (``render``) so ``validate`` reports them, not the first apply.
Each check returns the first problem as one line, or None; callers add where the object is.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.selectors import label_key_problem, label_value_problem

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")

# Kinds whose names only need to be a path segment (the API server's ValidatePathSegmentName).
_PATH_SEGMENT_NAMED = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
# Kinds whose names must be a DNS label (they become DNS names or hostnames).
_DNS_LABEL_NAMED = frozenset({"Namespace", "Service"})

MAX_OBJECT_BYTES = 1_572_864  # etcd's request limit (1.5 MiB), as the API server enforces
MAX_CONFIG_DATA_BYTES = 1_048_576  # ConfigMap and Secret data (1 MiB)
MAX_ANNOTATIONS_BYTES = 262_144  # all annotations of one object (256 KiB)

# An image digest (OCI: algorithm ":" encoded); sha256 is 64 lowercase hex.
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_SHA256 = re.compile(r"^sha256:[a-f0-9]{64}$")


def object_problem(obj: Mapping[str, Any]) -> str | None:
    """Why the API server would reject ``obj`` (first reason), or None."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return None  # the render reports a missing metadata itself
    kind = str(obj.get("kind", ""))
    for check in (
        _name_problem(kind, meta.get("name")),
        _namespace_problem(meta.get("namespace")),
        _labels_problem(meta.get("labels")),
        _annotations_problem(meta.get("annotations")),
        _secret_problem(obj) if kind == "Secret" and obj.get("apiVersion") == "v1" else None,
        _size_problem(kind, obj),
    ):
        if check is not None:
            return check
    return None


def _name_problem(kind: str, name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return None  # the render reports a missing name itself
    if kind in _PATH_SEGMENT_NAMED:
        if name in (".", "..") or "/" in name or "%" in name:
            return f"metadata.name: invalid name {name!r}: must not be '.', '..' or hold '/' or '%'"
        return None
    if kind in _DNS_LABEL_NAMED:
        if len(name) > 63 or not _DNS_LABEL.match(name):
            return (
                f"metadata.name: invalid {kind} name {name!r}: must be a DNS label (at most 63 "
                "lowercase letters, digits and '-', starting and ending with a letter or digit)"
            )
        return None
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        return (
            f"metadata.name: invalid name {name!r}: must be a DNS subdomain (at most 253 "
            "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
        )
    return None


def _namespace_problem(namespace: Any) -> str | None:
    if namespace is None or namespace == "":
        return None
    if not isinstance(namespace, str) or len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        return f"metadata.namespace: invalid namespace {namespace!r}: must be a DNS label"
    return None


def _labels_problem(labels: Any) -> str | None:
    return _string_map_problem("labels", labels, _label_problem)


def _annotations_problem(annotations: Any) -> str | None:
    why = _string_map_problem("annotations", annotations, _annotation_problem)
    if why is not None or not isinstance(annotations, Mapping):
        return why
    total = sum(
        len(str(key).encode()) + len(value.encode())
        for key, value in annotations.items()
        if isinstance(value, str)
    )
    if total > MAX_ANNOTATIONS_BYTES:
        return f"metadata.annotations: {total} bytes, over the API's {MAX_ANNOTATIONS_BYTES}"
    return None


def _string_map_problem(
    field: str, entries: Any, entry_problem: Callable[[str, str], str | None]
) -> str | None:
    """``metadata.<field>``: a mapping of strings, each entry passing ``entry_problem``."""
    if entries is None:
        return None
    if not isinstance(entries, Mapping):
        return f"metadata.{field}: must be a mapping, got {type(entries).__name__}"
    for key, value in entries.items():
        if value is None:
            continue  # JSON null: the API reads an empty value
        why = entry_problem(str(key), value) if isinstance(value, str) else _not_a_string(value)
        if why is not None:
            return f"metadata.{field}.{key}: {why}"
    return None


def _label_problem(key: str, value: str) -> str | None:
    return label_key_problem(key) or label_value_problem(value)


def _annotation_problem(key: str, value: str) -> str | None:
    why = label_key_problem(key)
    return None if why is None else why.replace("label key", "annotation key")


def _secret_problem(obj: Mapping[str, Any]) -> str | None:
    data, string_data = obj.get("data"), obj.get("stringData")
    for field, values in (("data", data), ("stringData", string_data)):
        if values is not None and not isinstance(values, Mapping):
            return f"{field}: must be a mapping, got {type(values).__name__}"
    for key, value in (data or {}).items():
        if value is None:
            continue
        if not isinstance(value, str):
            return f"data.{key}: {_not_a_string(value)} (base64 of the bytes)"
        value = value.replace("\r", "").replace("\n", "")  # the API skips line breaks
        if len(value) % 4 or not _BASE64.match(value):
            return f"data.{key}: not base64 (put plain text under stringData)"
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error:
            return f"data.{key}: not base64 (put plain text under stringData)"
    for key, value in (string_data or {}).items():
        if value is not None and not isinstance(value, str):
            return f"stringData.{key}: {_not_a_string(value)}"
    return None


def _size_problem(kind: str, obj: Mapping[str, Any]) -> str | None:
    size = len(json.dumps(obj, separators=(",", ":"), default=str).encode())
    if size > MAX_OBJECT_BYTES:
        return f"object is {_mib(size)}, over the API server's limit of {_mib(MAX_OBJECT_BYTES)}"
    if kind in ("ConfigMap", "Secret"):
        data = 0
        for field in ("data", "binaryData", "stringData"):
            values = obj.get(field)
            if isinstance(values, Mapping):
                data += sum(len(str(k).encode()) + len(str(v).encode()) for k, v in values.items())
        if data > MAX_CONFIG_DATA_BYTES:
            return f"{kind} data is {_mib(data)}, over the limit of {_mib(MAX_CONFIG_DATA_BYTES)}"
    return None


def _mib(size: int) -> str:
    return f"{size / 1_048_576:.2f} MiB"


def _not_a_string(value: Any) -> str:
    shown = json.dumps(value, default=str)
    hint = (
        " (quote it: YAML reads yes/no/on/off/true/false as booleans)"
        if isinstance(value, bool)
        else " (quote it)"
    )
    return f"must be a string, got {type(value).__name__} {shown}{hint}"


def image_override_problems(new_name: str | None, digest: str | None) -> list[tuple[str, str]]:
    """(field, why) for an image override's ``newName`` holding a tag or digest, or a
    ``digest`` that is not ``algorithm:hex``; values with ``${...}`` are checked per cluster."""
    out: list[tuple[str, str]] = []
    if new_name is not None and "${" not in new_name:
        last = new_name.rsplit("/", 1)[-1]
        if "@" in new_name or ":" in last or not new_name:
            out.append(
                (
                    "newName",
                    f"invalid image name {new_name!r}: no tag or digest here (use newTag "
                    "or digest)",
                )
            )
    if digest is not None and "${" not in digest:
        ok = _SHA256.match(digest) if digest.startswith("sha256:") else _DIGEST.match(digest)
        if not ok:
            out.append(
                (
                    "digest",
                    f"invalid digest {digest!r}: must be algorithm:hex (sha256:<64 hex>)",
                )
            )
    return out
