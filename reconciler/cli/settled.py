"""What earlier ``apply`` and ``diff`` runs found settled on a cluster, kept between runs.

A kube client that keeps one (``ClusterClient.settled``) remembers, per object, the digest of what
we apply and the content version of the live object once a dry-run or an apply settled the two:
the same pair again needs no dry-run. The daemon keeps that memory while it runs; a command-line
run starts empty, so every ``apply`` would dry-run every object again. This file carries the
memory from one run to the next, as kubectl keeps its discovery cache: a no-change ``apply``
reads the objects and sends no dry-run. Anything that changed either side (Git's content, or the
live object's spec, metadata or managers) misses the memory and is dry-run as before.

One private file per API server and context under the cache dir, written atomically; a file
older than a day (``MAX_AGE``: the server may have been upgraded since) or unreadable is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.objects import ObjectRef
from reconciler.private import private_dir
from reconciler.toolchain import cache_root

if TYPE_CHECKING:
    from reconciler.kube.client import ClusterClient

FORMAT = 1
MAX_OBJECTS = 50_000  # a bound on the file, whatever the repo
MAX_AGE = 86400.0


def memory(client: ClusterClient) -> dict[ObjectRef, tuple[str, str]] | None:
    """The client's memory of settled objects; None for a client that keeps none."""
    found = getattr(client, "settled", None)
    return found if isinstance(found, dict) else None


def _server(client: ClusterClient) -> str:
    return str(getattr(client, "server", ""))


def path_of(client: ClusterClient) -> Path:
    key = hashlib.sha256(f"{_server(client)}\0{client.context}".encode()).hexdigest()[:32]
    return cache_root() / "settled" / f"{key}.json"


def load(client: ClusterClient, now: float | None = None) -> None:
    """Fill the client's memory from the last run against the same server and context."""
    settled = memory(client)
    if settled is None:
        return
    path = path_of(client)
    try:
        if (now or time.time()) - path.stat().st_mtime > MAX_AGE:
            return
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return
    if data.get("server") != _server(client) or data.get("context") != client.context:
        return
    for entry in data.get("objects") or []:
        try:
            group, kind, namespace, name, digest, live = entry
        except (TypeError, ValueError):
            return
        settled.setdefault(ObjectRef(group, kind, namespace, name), (digest, live))


def save(client: ClusterClient) -> None:
    """Write the client's memory for the next run (best effort: a cache)."""
    settled = memory(client)
    if not settled:
        return
    objects: list[list[Any]] = [
        [ref.group, ref.kind, ref.namespace, ref.name, digest, live]
        for ref, (digest, live) in list(settled.items())[-MAX_OBJECTS:]
    ]
    data = {
        "format": FORMAT,
        "server": _server(client),
        "context": client.context,
        "objects": objects,
    }
    path = path_of(client)
    try:
        private_dir(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".settled-")  # 0600
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
