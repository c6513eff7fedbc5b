"""How far a reconcile pass is, for a status line on a terminal (counters only, thread-safe:
clusters run in parallel)."""

from __future__ import annotations

import threading


class PassProgress:
    """Targets planned and objects written so far, out of how many are known yet."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.targets_total = 0
        self.targets_done = 0
        self.objects_total = 0
        self.objects_done = 0
        self._lock = threading.Lock()

    def add(self, *, targets: int = 0, objects: int = 0) -> None:
        """So many more targets and objects are known to be coming."""
        with self._lock:
            self.targets_total += targets
            self.objects_total += objects

    def done(self, *, targets: int = 0, objects: int = 0) -> None:
        """So many more targets and objects are finished."""
        with self._lock:
            self.targets_done += targets
            self.objects_done += objects

    def line(self) -> str:
        """``apply: 2/9 targets, 120/300 objects written``."""
        with self._lock:
            text = f"{self.verb}: {self.targets_done}/{self.targets_total} targets"
            if self.objects_total:
                text += f", {self.objects_done}/{self.objects_total} objects written"
            return text
