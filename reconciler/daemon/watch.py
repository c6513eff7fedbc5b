"""Watch a local repo's refs (watchfiles) and poke the loop when a commit may have landed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from structlog.typing import FilteringBoundLogger

from reconciler.errors import ReconcilerError


class RepoWatcher:
    """A daemon thread; polling still runs, so a watch that fails only costs latency."""

    def __init__(
        self, paths: Callable[[], list[Path]], poke: Callable[[], None], log: FilteringBoundLogger
    ) -> None:
        self._paths = paths
        self._poke = poke
        self.log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            paths = self._paths()
        except ReconcilerError as err:
            self.log.warning("cannot watch the repo; polling only", error=str(err))
            return
        if not paths:
            return
        self._thread = threading.Thread(
            target=self._watch, args=(paths,), name="reconciler-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop (it notices within half a second)."""
        self._stop.set()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _watch(self, paths: list[Path]) -> None:
        import watchfiles

        self.log.info("watching the repo for commits", paths=[str(p) for p in paths])
        try:
            for _ in watchfiles.watch(
                *paths,
                watch_filter=None,  # the default filter ignores everything under .git
                debounce=400,
                step=30,
                rust_timeout=500,  # how soon a stop is noticed
                stop_event=self._stop,
                raise_interrupt=False,
            ):
                self._poke()
        except Exception as err:  # the watch is an optimisation: polling still runs
            self.log.warning("watching the repo stopped; polling only", error=str(err))
