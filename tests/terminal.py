"""Run the CLI as on a terminal: stdout and/or stderr on pseudo-terminals (python's ``pty``)."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # CSI: colours, styles, cursor moves


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


def _drain(fd: int, into: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return
        if not chunk:
            return
        into.append(chunk)


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    stdout_tty: bool = True,
    stderr_tty: bool = True,
    timeout: float = 120.0,
) -> Run:
    """``python -m reconciler ARGS`` with stdout/stderr on a pty each (or a pipe); ``env`` is
    added to this process's environment (a None value removes a variable)."""
    environment = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    streams: list[tuple[int, int] | None] = [
        pty.openpty() if tty else None for tty in (stdout_tty, stderr_tty)
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        stdin=subprocess.DEVNULL,
        stdout=streams[0][1] if streams[0] else subprocess.PIPE,
        stderr=streams[1][1] if streams[1] else subprocess.PIPE,
        env=environment,
    )
    outputs: list[list[bytes]] = [[], []]
    readers = []
    for i, stream in enumerate(streams):
        if stream is not None:
            os.close(stream[1])  # the child holds its own copy
            fd = stream[0]
        else:
            pipe = process.stdout if i == 0 else process.stderr
            assert pipe is not None
            fd = pipe.fileno()
        reader = threading.Thread(target=_drain, args=(fd, outputs[i]), daemon=True)
        reader.start()
        readers.append(reader)
    try:
        code = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    for reader in readers:
        reader.join(timeout=10)
    for stream in streams:
        if stream is not None:
            os.close(stream[0])
    text = [b"".join(o).decode(errors="replace").replace("\r\n", "\n") for o in outputs]
    return Run(code, text[0], text[1])
