"""Repair of a list another manager re-keyed (pure): the plan of the requests, no I/O.

A list map (Service ``spec.ports``, keyed by port and protocol) whose key another manager
changed (``kubectl patch`` of a port: ``80`` -> ``8080``) no longer holds our element; our
server-side apply then adds ours back beside theirs, and a field that must be unique across
the list (``name: http``) is there twice: the server answers 422 "Duplicate value" on every
dry-run and apply, forced or not (kubectl fails the same way). Force cannot help: the other
manager's element can only leave through an update that removes it.

The repair, found against real API servers: (1) a JSON patch (as ``reconciler-repair``) that
replaces the list with ours, each entry over the live entry it collided with (so values the
server assigned, like a nodePort, are kept), guarded by the live resourceVersion; (2) the
server-side apply of the object, forced; (3) a JSON patch that drops the ``reconciler-repair``
entry from managedFields, so only our apply owns the list and a later Git change to it is a
plain apply again.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from reconciler.objects import Manifest

REPAIR_MANAGER = "reconciler-repair"
# spec.ports[1].name: Duplicate value: "http"
_DUPLICATE = re.compile(
    r"((?:[A-Za-z0-9_]+(?:\[\d+\])?\.)*[A-Za-z0-9_]+)\[\d+\]\.([A-Za-z0-9_]+): Duplicate value"
)
_STEP = re.compile(r"([A-Za-z0-9_]+)(?:\[(\d+)\])?")


@dataclass(frozen=True)
class ListRepair:
    """Replace the list at ``pointer`` (JSON pointer) with ``entries``, if the object is still
    at ``resource_version``."""

    pointer: str
    path: str  # as field paths read: spec.ports
    field: str  # the field whose value was duplicated
    entries: list[Any]
    resource_version: str

    def operations(self) -> list[dict[str, Any]]:
        return [
            {"op": "test", "path": "/metadata/resourceVersion", "value": self.resource_version},
            {"op": "replace", "path": self.pointer, "value": copy.deepcopy(self.entries)},
        ]


def duplicate_in(message: str) -> tuple[str, str] | None:
    """(list path, duplicated field) of a "Duplicate value" validation error, else None."""
    found = _DUPLICATE.search(message)
    return (found[1], found[2]) if found else None


def plan_repair(message: str, live: Manifest, desired: Manifest) -> ListRepair | None:
    """How to repair the list named in a "Duplicate value" error, or None when it cannot be
    found in both the live and the desired object."""
    found = duplicate_in(message)
    if found is None:
        return None
    path, field = found
    pointer: list[str] = []
    live_node: Any = live
    desired_node: Any = desired
    for step in path.split("."):
        match = _STEP.fullmatch(step)
        if match is None:
            return None
        name, index = match[1], match[2]
        if not isinstance(live_node, dict) or not isinstance(desired_node, dict):
            return None
        live_node, desired_node = live_node.get(name), desired_node.get(name)
        pointer.append(name)
        if index is not None:  # an enclosing list: the live element, and its desired twin
            if not isinstance(live_node, list) or int(index) >= len(live_node):
                return None
            element = live_node[int(index)]
            desired_node = _twin(element, desired_node)
            live_node = element
            pointer.append(index)
    if not isinstance(live_node, list) or not isinstance(desired_node, list):
        return None
    entries = repaired(live_node, desired_node, field)
    version = str((live.get("metadata") or {}).get("resourceVersion", ""))
    return ListRepair("/" + "/".join(pointer), path, field, entries, version)


def _twin(element: Any, candidates: Any) -> Any:
    """The desired element matching a live one by name (containers, ports...)."""
    if not isinstance(element, dict) or not isinstance(candidates, list):
        return None
    return next(
        (c for c in candidates if isinstance(c, dict) and c.get("name") == element.get("name")),
        None,
    )


def repaired(live: list[Any], desired: list[Any], field: str) -> list[Any]:
    """Our entries, each over the live entry holding the same ``field`` value; live entries
    that collide with none of ours (another manager's own) are kept."""
    wanted = {d.get(field) for d in desired if isinstance(d, dict)}
    by_value = {e.get(field): e for e in live if isinstance(e, dict)}
    kept = [e for e in live if not (isinstance(e, dict) and e.get(field) in wanted)]
    ours = []
    for entry in desired:
        base = by_value.get(entry.get(field)) if isinstance(entry, dict) else None
        ours.append({**base, **entry} if isinstance(base, dict) else entry)
    return copy.deepcopy(kept + ours)


def without_manager(live: Manifest, manager: str) -> list[dict[str, Any]]:
    """The object's managedFields minus every entry of ``manager``."""
    entries = (live.get("metadata") or {}).get("managedFields") or []
    return [e for e in entries if e.get("manager") != manager]
