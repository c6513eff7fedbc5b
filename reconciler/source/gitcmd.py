"""Running git: the only module that runs the ``git`` command (no library: nothing to import at
start-up). Output is redacted; a failure is :class:`GitFailed` with the one line that says why
(ssh's reason when ssh failed)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

from reconciler.source.redaction import redact


def _ssh_reason(line: str) -> bool:
    """A line of ssh's own (git's line after it only says "Could not read from remote
    repository")."""
    if line.startswith(("fatal:", "error:", "warning:")):
        return False
    return (
        line.startswith("ssh:")
        or line.startswith("Host key verification failed")
        or "Permission denied (" in line
    )


def error_line(stderr: str) -> str:
    """The one line of git's stderr that says what went wrong, without its ``fatal:`` prefix
    (ssh's reason, when ssh failed)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if _ssh_reason(line):
            return f"ssh: {line.removeprefix('ssh:').strip()}"
    for line in lines:
        for prefix in ("fatal:", "error:"):
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
    return lines[-1] if lines else "git failed without a message"


class GitCommandFailed(Exception):
    """A git command that failed: the command (credentials redacted), its status, its stderr."""

    def __init__(self, command: Sequence[str], status: int | None, stderr: str) -> None:
        super().__init__(f"{' '.join(command)}: exit {status}: {stderr}".strip())
        self.command = list(command)
        self.status = status
        self.stderr = stderr


class GitFailed(Exception):
    """A git command exited non-zero; ``cause`` is a GitCommandFailed with nothing secret in it."""

    def __init__(self, line: str, stderr: str, cause: GitCommandFailed) -> None:
        super().__init__(line)
        self.line = line
        self.stderr = stderr
        self.cause = cause


def run(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    secrets: Sequence[str] = (),
    timeout: float | None = None,
) -> str:
    """Run git; return stdout. Raise :class:`GitFailed` with redacted output on failure.

    Messages in English (``error_line`` reads them), never a prompt; with ``timeout`` the command
    and everything it started (ssh, remote helpers) are killed when it runs longer.
    """
    command = [os.environ.get("GIT_PYTHON_GIT_EXECUTABLE") or "git", *args]
    full_env = {
        **os.environ,
        "LANGUAGE": "C",
        "LC_ALL": "C",
        "GIT_TERMINAL_PROMPT": "0",
        **(env or {}),
    }
    try:
        # Its own process group when bounded, so a timeout ends its children too.
        proc = subprocess.Popen(
            command,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=timeout is not None,
        )
    except OSError as err:
        cause = GitCommandFailed(command[:1], None, "not found")
        raise GitFailed(f"cannot run git: {err}", "", cause) from None
    timed_out = False
    try:
        try:
            out, err_out = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
            out, err_out = proc.communicate()
    except BaseException:  # ^C or a bug: never leave git running
        _kill(proc)
        raise
    stdout = _text(out)
    clean_err = redact(_text(err_out), secrets)
    if proc.returncode != 0 or timed_out:
        line = f"timed out after {timeout:g}s" if timed_out else error_line(clean_err)
        cause = GitCommandFailed([redact(a, secrets) for a in command], proc.returncode, clean_err)
        raise GitFailed(line, clean_err, cause)
    return stdout


def _text(data: bytes) -> str:
    """Git's output as text, one trailing newline dropped."""
    text = data.decode("utf-8", "surrogateescape")
    return text[:-1] if text.endswith("\n") else text


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill a git command (and its process group when it has its own)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(OSError):
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
