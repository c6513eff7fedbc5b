"""Running git: the only module that imports ``git`` (GitPython), on first use. Output is
redacted; a failure is :class:`GitFailed` with the one line that says why (ssh's reason when
ssh failed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from reconciler.source.redaction import redact

if TYPE_CHECKING:
    import git


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


class GitFailed(Exception):
    """A git command exited non-zero; ``cause`` is a GitCommandError with nothing secret in it."""

    def __init__(self, line: str, stderr: str, cause: git.GitCommandError) -> None:
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
    """Run git; return stdout. Raise :class:`GitFailed` with redacted output on failure."""
    import git  # on first use: a command that never runs git does not pay for the import

    runner = git.Git()
    command = [str(git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git"), *args]
    try:
        result = runner.execute(
            command,
            with_extended_output=True,
            with_exceptions=False,
            env={"GIT_TERMINAL_PROMPT": "0", **(env or {})},
            kill_after_timeout=timeout,
        )
    except git.GitCommandNotFound as err:
        cause = git.GitCommandError(command[:1], "not found")
        raise GitFailed(f"cannot run git: {err.status}", "", cause) from None
    status, stdout, stderr = result
    clean_err = redact(stderr, secrets)
    if status != 0:
        if timeout is not None and "did not complete in" in clean_err:
            line = f"timed out after {timeout:g}s"
        else:
            line = error_line(clean_err)
        cause = git.GitCommandError([redact(a, secrets) for a in command], status, clean_err)
        raise GitFailed(line, clean_err, cause)
    return stdout
