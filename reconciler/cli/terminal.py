"""Terminal conventions, decided in one place: colour only on a terminal and never with
``NO_COLOR`` (https://no-color.org: any non-empty value), progress only on a terminal."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO


def no_color() -> bool:
    """Whether ``NO_COLOR`` is set to a non-empty value."""
    return bool(os.environ.get("NO_COLOR"))


def color(stream: TextIO | None = None) -> bool:
    """Whether to write ANSI colours to ``stream`` (stdout): a terminal, and no ``NO_COLOR``."""
    out = stream if stream is not None else sys.stdout
    return not no_color() and _isatty(out)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        return False


class StatusLine:  # rich's progress bars redraw with cursor escapes: NO_COLOR forbids them
    """One line of progress on stderr, rewritten in place with a carriage return (no escape
    sequence, so ``NO_COLOR`` terminals get it too), the time elapsed first; cleared at the end.
    Writes nothing when stderr is not a terminal: logs and pipes get the results only."""

    def __init__(
        self,
        text: Callable[[], str],
        stream: TextIO | None = None,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._text = text
        self._stream = stream if stream is not None else sys.stderr
        self.active = _isatty(self._stream)
        self._interval = interval
        self._clock = clock
        self._start = clock()
        self._width = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StatusLine:
        self.refresh()
        if self.active:
            self._thread = threading.Thread(target=self._tick, name="status-line", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.refresh()  # the last state, however short the work was
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._width:
            self._write("")

    def refresh(self) -> None:
        """Rewrite the line now (the ticker also does, every ``interval``)."""
        if self.active and not self._stop.is_set():
            elapsed = self._clock() - self._start
            self._write(f"[{elapsed:3.0f}s] {self._text()}")

    def _tick(self) -> None:
        while not self._stop.wait(self._interval):
            self.refresh()

    def _write(self, line: str) -> None:
        if not self.active:
            return
        with self._lock:
            columns = _columns(self._stream)
            line = line[: columns - 1]
            pad = " " * max(0, self._width - len(line))
            self._stream.write("\r" + line + pad + ("\r" if not line else ""))
            self._stream.flush()
            self._width = len(line)


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return 80
