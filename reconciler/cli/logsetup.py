"""structlog for the daemon: console lines on a terminal, JSON lines otherwise; never locals."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from reconciler.cli.terminal import no_color


def configure_logging(stream: TextIO | None = None, level: str = "info") -> None:
    """structlog to ``stream`` (stderr): console lines on a terminal (in colour unless
    ``NO_COLOR`` is set), JSON lines otherwise."""
    out = stream if stream is not None else sys.stderr
    tty = out.isatty()
    colors = tty and not no_color()
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if tty:
        # Never show locals in tracebacks: frames hold Secret values and credentials.
        formatter: Any = (
            structlog.dev.RichTracebackFormatter(show_locals=False)
            if colors
            else structlog.dev.plain_traceback
        )
        processors.append(
            structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=formatter)
        )
    else:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
