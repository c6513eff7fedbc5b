"""The client pool: one client per cluster context, rebuilt when the kubeconfig changes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.kube.client import ClusterClient
from reconciler.kube.kubeconfig import Kubeconfig


class Clients:
    """One kube client per cluster context, created on first use and reused. Thread-safe.

    The kubeconfig is parsed once and re-read when it changes: before handing out a client, its
    files (``kubeconfig``, else each entry of ``$KUBECONFIG``, else ``~/.kube/config``) are
    stat'ed, at most once per ``recheck`` seconds; when one's mtime or size changed (a context
    added, credentials rotated) it is parsed again and every cached client is rebuilt on next
    use. Replaced clients are closed at the next change or on :meth:`close` (a pass may still be
    using one). A kubeconfig that does not parse after a change keeps the previous one.

    Clients are built outside the shared lock, so one slow credential plugin delays only its
    own cluster.
    """

    def __init__(
        self,
        kubeconfig: str | None,
        timeout: float = 10.0,
        *,
        recheck: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.timeout = timeout
        self.recheck = recheck
        self._monotonic = monotonic
        self._parsed: Kubeconfig | None = None
        self._generation = 0  # counts parses: a client of an older one is rebuilt
        self._stamp: tuple[tuple[str, int | None, int | None], ...] = ()
        self._checked_at = 0.0
        self._clients: dict[str, tuple[ClusterClient, int]] = {}
        self._retired: list[ClusterClient] = []
        self._building: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, name: str, context: str) -> ClusterClient:
        with self._lock:
            self._refresh()
            building = self._building.setdefault(name, threading.Lock())
        with building:
            with self._lock:
                cached = self._clients.get(name)
                generation = self._generation
            if cached is not None:
                client, built_from = cached
                if client.context == context and built_from == generation:
                    return client
            kubeconfig, generation = self._current()
            client = ClusterClient(
                name, context=context, kubeconfig=kubeconfig, timeout=self.timeout
            )
            with self._lock:
                old = self._clients.get(name)
                if old is not None and old[0] is not client:
                    self._retired.append(old[0])
                self._clients[name] = (client, generation)
            return client

    def parse(self) -> Kubeconfig:
        """Read the kubeconfig now (it is read on first use otherwise)."""
        return self._current()[0]

    def files(self) -> list[Path]:
        """The kubeconfig files read, as ``Kubeconfig`` finds them."""
        location = self.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        return [Path(p).expanduser() for p in location.split(os.pathsep) if p]

    def _current(self) -> tuple[Kubeconfig, int]:
        with self._lock:
            if self._parsed is None:
                stamp = self._stat()
                self._parsed = Kubeconfig(self.kubeconfig)
                self._stamp, self._checked_at = stamp, self._monotonic()
                self._generation += 1
            return self._parsed, self._generation

    def _stat(self) -> tuple[tuple[str, int | None, int | None], ...]:
        stamp: list[tuple[str, int | None, int | None]] = []
        for path in self.files():
            try:
                st = path.stat()
            except OSError:
                stamp.append((str(path), None, None))
            else:
                stamp.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(stamp)

    def _refresh(self) -> None:
        """Re-read the kubeconfig if its files changed (called holding the lock)."""
        if self._parsed is None:
            return
        now = self._monotonic()
        if now - self._checked_at < self.recheck:
            return
        self._checked_at = now
        stamp = self._stat()
        if stamp == self._stamp:
            return
        try:
            parsed = Kubeconfig(self.kubeconfig)
        except ReconcilerError:
            return  # half written, say: keep the last one, look again at the next check
        self._parsed, self._stamp = parsed, stamp
        self._generation += 1
        for client in self._retired:
            client.close()
        self._retired = [client for client, _ in self._clients.values()]
        self._clients.clear()

    def close(self) -> None:
        with self._lock:
            for client in [*self._retired, *(c for c, _ in self._clients.values())]:
                client.close()
            self._retired.clear()
            self._clients.clear()
