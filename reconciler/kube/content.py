"""What counts as a change of a live object's content, and whether a change was our own write.

A watch reports a change only when what an apply or a dry-run can see changed
(:func:`content_version`: not a status update or a new resourceVersion alone), and not when it
is one of our own writes (:func:`written_by_us`: the pass that made it knows already). Pure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from reconciler import FIELD_MANAGER


def content_version(obj: Mapping[str, Any]) -> str:
    """A digest of what an apply or a dry-run can see of a live object: everything but its
    status, its resourceVersion and the times and status entries of its managedFields."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("resourceVersion", None)
    managed = [
        {k: v for k, v in entry.items() if k != "time"}
        for entry in meta.pop("managedFields", None) or []
        if isinstance(entry, Mapping) and entry.get("subresource") != "status"
    ]
    body = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    text = json.dumps([body, meta, managed], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def written_by_us(obj: Mapping[str, Any], before: Mapping[str, Any] | None) -> bool:
    """Whether this version of ``obj`` is one of our own writes (a pass's apply: the pass that
    made it knows already; telling the loop would only pass the cluster again for nothing):
    the newest write in its managedFields is ours and newer than any in the version before.
    A tie with another manager counts as theirs; a change that recorded no newer write (a
    field removed by a manager that keeps none) is not ours."""
    newest, managers = _newest_write(obj)
    if not managers or (before is not None and newest <= _newest_write(before)[0]):
        return False
    return all(manager.partition("-")[0] == FIELD_MANAGER for manager in managers)


def _newest_write(obj: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The time of the newest managedFields entry (status aside) and who wrote then."""
    entries = [
        (str(entry.get("time") or ""), str(entry.get("manager") or ""))
        for entry in (obj.get("metadata") or {}).get("managedFields") or []
        if isinstance(entry, Mapping) and entry.get("subresource") != "status"
    ]
    newest = max((at for at, _ in entries), default="")
    return newest, [manager for at, manager in entries if at == newest]
