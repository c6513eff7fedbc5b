"""The state dir's daemon lock: one daemon per state dir, and whether one runs there now."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.private import private_dir, private_file


def daemon_running(state_dir: Path) -> bool:
    """Whether a daemon holds the state dir's lock (the lock dies with its process)."""
    try:
        with (state_dir / "daemon.lock").open("r") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


@contextlib.contextmanager
def exclusive(state_dir: Path) -> Iterator[None]:
    """One daemon per state dir: a second one would fight over the store and the mirror."""
    path = state_dir / "daemon.lock"
    try:
        private_dir(state_dir)
        lock_file = private_file(path).open("a+")
    except OSError as err:
        raise ReconcilerError(f"{state_dir}: cannot use as state dir: {err.strerror}") from err
    with lock_file as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise ReconcilerError(
                f"{state_dir}: another daemon (pid {holder}) runs on this state dir"
            ) from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)
