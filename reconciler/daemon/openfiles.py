"""The open-file limit: raised to the hard limit at start, checked against the clusters.

Every cluster costs a few descriptors (its client's sockets, a watch); the process needs some
for itself (the store, the page's server, git, helm, logs). The common soft limit of 1024 is
too low for a thousand clusters, and a request failing with ``[Errno 24] Too many open files``
says nothing about why; so the daemon raises the soft limit as far as the hard one allows and
says when that is still too little for the clusters it was given.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

FDS_PER_CLUSTER = 4  # the client's sockets and a watch per cluster, with room to spare
FDS_BASE = 128  # the store, the page's server and its clients, git, helm, logs


@dataclass(frozen=True)
class OpenFileLimit:
    soft: int  # what the process may open now (-1: unlimited)
    hard: int
    before: int  # the soft limit before it was raised

    @property
    def raised(self) -> bool:
        return self.soft != self.before


def raise_soft_limit() -> OpenFileLimit:
    """Raise RLIMIT_NOFILE's soft limit to its hard limit (as far as the system lets us)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return OpenFileLimit(soft, hard, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return OpenFileLimit(soft, hard, soft)
    return OpenFileLimit(hard, hard, soft)


def needed(clusters: int) -> int:
    """Descriptors the daemon may need for ``clusters`` clusters."""
    return FDS_BASE + FDS_PER_CLUSTER * clusters


def too_low(soft: int, clusters: int) -> str | None:
    """Why ``soft`` is too low for ``clusters`` clusters (None: it is enough)."""
    need = needed(clusters)
    if soft < 0 or soft >= need:
        return None
    return (
        f"the open-file limit ({soft}) is below the {need} descriptors {clusters} clusters may "
        f"need ({FDS_PER_CLUSTER} per cluster + {FDS_BASE}); clusters may fail with 'Too many "
        "open files': raise the hard limit (ulimit -Hn, systemd LimitNOFILE, the container "
        "runtime's nofile ulimit)"
    )
