"""Secret masking, in one place: Secret values never reach an output, only that they changed.

Field changes (diff, drift, plan --live), override effects (explain, plan) and whole objects
(plan's YAML diffs) are masked here; ``render`` alone prints Secrets as Git holds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from reconciler.fields import FieldChange
from reconciler.objects import Manifest
from reconciler.overrides import OverrideChange

MASK = "(masked)"
CHANGED_SECRET = "(masked, changed)"  # a masked value that differs from the other side


def is_secret(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Secret" and str(obj.get("apiVersion", "")) == "v1"


def is_secret_name(name: str) -> bool:
    """Whether an object named as ``ObjectRef`` prints it (``Secret/ns/name``) is a Secret."""
    return name.startswith("Secret/")


def mask_changes(obj: Mapping[str, Any], changes: list[FieldChange]) -> list[FieldChange]:
    """Hide Secret values in field changes; keep that they changed."""
    if not is_secret(obj):
        return changes
    masked = []
    for change in changes:
        if change.path.startswith(("data", "stringData")):
            git = None if change.git is None else MASK
            live = None if change.live is None else MASK
            change = replace(change, git=git, live=live)
        masked.append(change)
    return masked


def _is_metadata(path: str) -> bool:
    return path == "metadata" or path.startswith(("metadata.", "metadata["))


def show_override_change(change: OverrideChange) -> str:
    """One line for a field an override changed, with Secret values masked.

    The one way ``explain`` and ``plan`` show override effects. On a Secret only metadata is
    shown as is; any other field (``data``, ``stringData``, or whatever a patch replaced) shows
    only that it changed.
    """
    if is_secret_name(change.object) and not _is_metadata(change.path):
        return f"{change.object} {change.path}: {MASK}"
    return str(change)


def mask_pair(
    old: Manifest | None, new: Manifest | None
) -> tuple[Manifest | None, Manifest | None]:
    """Two versions of an object, Secret values replaced by a marker; a value that changed
    from ``old`` to ``new`` gets a different marker."""
    if not any(o is not None and is_secret(o) for o in (old, new)):
        return old, new
    return _mask_secret(old, None), _mask_secret(new, old)


def _mask_secret(obj: Manifest | None, compared_to: Manifest | None) -> Manifest | None:
    if obj is None:
        return None
    out = dict(obj)
    for key in ("data", "stringData"):
        if key not in out:
            continue
        values = out[key]
        other = (compared_to or {}).get(key)
        if not isinstance(values, dict):
            out[key] = MASK
            continue
        masked = {}
        for name, secret in values.items():
            changed = isinstance(other, dict) and name in other and other[name] != secret
            masked[name] = CHANGED_SECRET if changed else MASK
        out[key] = masked
    return out
