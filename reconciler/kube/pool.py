"""The client pool: one client per cluster context, rebuilt when the credentials change."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Hashable
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.kube.client import DEFAULT_TIMEOUT, ClusterClient
from reconciler.kube.credentials import Credentials, CredentialSource
from reconciler.kube.login import credential_source
from reconciler.kube.scopes import LiveEvent
from reconciler.kube.watches import RETRY_UNWATCHABLE

# A replaced or dropped client keeps its connection this long at most (a pass may still be
# using it: far longer than a pass may last); its watches are closed at once.
RETIRED_FOR = 3600.0


class Clients:
    """One kube client per cluster context, created on first use and reused. Thread-safe.

    Credentials come from ``source`` (default: :func:`credential_source` — the kubeconfig, or
    in a pod without one, the ServiceAccount and member Secrets). They are read once and again
    when they change: before handing out a client the source is asked, at most once per
    ``recheck`` seconds and by one thread at a time (outside the shared lock, others go on with
    the clients they have), whether they changed (a kubeconfig's files stat'ed; member Secrets
    listed); when they did they are read again and every cached client is rebuilt on next use.
    Credentials that do not read after a change keep the previous ones.

    A daemon tells which clusters are still in its inventory and which it works
    (:meth:`retain`): the clients of clusters gone from the inventory are dropped, those of
    clusters another replica works stop watching. A replaced or dropped client stops watching
    at once (a pass still using it reads for itself) and is closed at the next change, after
    :data:`RETIRED_FOR` seconds, or on :meth:`close`.

    Clients are built outside the shared lock, so one slow credential plugin delays only its
    own cluster.
    """

    def __init__(
        self,
        kubeconfig: str | None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        recheck: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        source: CredentialSource | None = None,
        watch: bool = False,
        retry_unwatchable: float = RETRY_UNWATCHABLE,
    ) -> None:
        """``watch``: clients keep the live state they read current through watches (a daemon);
        :meth:`subscribe` hears what the watches see; ``retry_unwatchable``: seconds before a
        scope that cannot be watched is tried again."""
        self.kubeconfig = kubeconfig
        self.watch = watch
        self.retry_unwatchable = retry_unwatchable
        self._listeners: list[Callable[[LiveEvent], None]] = []
        self.timeout = timeout
        self.recheck = recheck
        self._monotonic = monotonic
        self._source = source or credential_source(kubeconfig, timeout=timeout)
        self._parsed: Credentials | None = None
        self._generation = 0  # counts parses: a client of an older one is rebuilt
        self._stamp: Hashable = None
        self._checked_at = 0.0
        self._refreshing = False
        self._clients: dict[str, tuple[ClusterClient, int]] = {}
        self._kept: set[str] = set()  # never dropped by retain (the management cluster's)
        self._retired: list[tuple[ClusterClient, float]] = []  # and since when
        self._building: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, name: str, context: str, *, keep: bool = False) -> ClusterClient:
        """The client of cluster ``name`` (through ``context``); ``keep``: :meth:`retain`
        never drops it (a client of the daemon's own, not of a cluster it works)."""
        self._refresh()
        if keep:
            with self._lock:
                self._kept.add(name)
        with self._lock:
            building = self._building.setdefault(name, threading.Lock())
        with building:
            with self._lock:
                cached = self._clients.get(name)
                generation = self._generation
            if cached is not None:
                client, built_from = cached
                if client.context == context and built_from == generation:
                    return client
            credentials, generation = self._current()
            client = ClusterClient(
                name,
                context=context,
                kubeconfig=credentials,
                timeout=self.timeout,
                watch=self.watch,
                on_event=self._notify,
                retry_unwatchable=self.retry_unwatchable,
            )
            with self._lock:
                old = self._clients.get(name)
                if old is not None and old[0] is not client:
                    self._retire(old[0])
                self._clients[name] = (client, generation)
            return client

    def retain(self, names: Collection[str], watched: Collection[str] | None = None) -> None:
        """Drop the clients of clusters not in ``names`` (the inventory): their watches close
        now; a later :meth:`get` builds a new one. Of those in ``names``, the ones not in
        ``watched`` (default: all watched) stop watching (another replica works them: their
        client only answers what a render asks, discovery kept), the others watch again."""
        wanted = set(names)
        watching = wanted if watched is None else set(watched)
        with self._lock:
            gone = [n for n in self._clients if n not in wanted and n not in self._kept]
            for name in gone:
                self._retire(self._clients.pop(name)[0])
            kept = [(n, c) for n, (c, _) in self._clients.items() if n not in self._kept]
            self._close_retired(self._monotonic() - RETIRED_FOR)
        for name, client in kept:
            if name in watching:
                client.resume_watching()
            else:
                client.stop_watching()

    def _retire(self, client: ClusterClient) -> None:
        """(The lock is held.)"""
        client.stop_watching()
        self._retired.append((client, self._monotonic()))

    def _close_retired(self, before: float) -> None:
        """Close the clients retired before ``before`` (the lock is held)."""
        keep = []
        for client, since in self._retired:
            if since < before:
                client.close()
            else:
                keep.append((client, since))
        self._retired = keep

    def subscribe(self, listener: Callable[[LiveEvent], None]) -> None:
        """Call ``listener`` with every watch event of every client (on the I/O thread: it
        must only hand the event over)."""
        self._listeners.append(listener)

    def _notify(self, event: LiveEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    def parse(self) -> Credentials:
        """Read the credentials now (they are read on first use otherwise)."""
        return self._current()[0]

    def files(self) -> list[Path]:
        """The kubeconfig files read (none in a pod that reads member Secrets)."""
        return self._source.files()

    def _current(self) -> tuple[Credentials, int]:
        with self._lock:
            if self._parsed is None:
                stamp = self._source.stamp()
                self._parsed = self._source.load()
                self._stamp, self._checked_at = stamp, self._monotonic()
                self._generation += 1
            return self._parsed, self._generation

    def _refresh(self) -> None:
        """Read the credentials again if they changed (one thread, outside the lock)."""
        with self._lock:
            now = self._monotonic()
            if self._parsed is None or self._refreshing or now - self._checked_at < self.recheck:
                return
            self._checked_at, self._refreshing = now, True
        parsed: Credentials | None = None
        try:
            stamp = self._source.stamp()
            if stamp != self._stamp:
                parsed = self._source.load()
        except ReconcilerError:
            pass  # half written or unreachable, say: keep the last ones, look again later
        with self._lock:
            self._refreshing = False
            if parsed is None:
                return
            self._parsed, self._stamp = parsed, stamp
            self._generation += 1
            self._close_retired(float("inf"))
            for client, _ in self._clients.values():
                self._retire(client)
            self._clients.clear()

    def close(self) -> None:
        with self._lock:
            self._close_retired(float("inf"))
            for client, _ in self._clients.values():
                client.close()
            self._clients.clear()
        self._source.close()
