"""Reading commits of any git dir: resolve a revision, whether a commit is in another's history,
a commit's author and subject, a folder's tree, and export a tree atomically (throwaway index
and work tree, renamed into place)."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from reconciler.errors import SourceError
from reconciler.private import DIR_MODE, private_tree
from reconciler.source import gitcmd

SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True)
class CommitInfo:
    """What people need to recognise a commit: sha, short sha, author, subject, time (UTC)."""

    sha: str
    short: str
    author: str
    message_first_line: str
    committed_at: datetime


def is_local_path(location: str) -> bool:
    """Git's rule: a URL has ``://``; ``host:path`` (no slash before the colon) is scp-like ssh."""
    if "://" in location:
        return False
    head, colon, _ = location.partition(":")
    return not colon or "/" in head


def current_branch(path: str, display: str) -> str | None:
    """The branch checked out in a local repo; None when it is not a repo (fetch says so)."""
    if not Path(path).exists():
        return None
    try:
        ref = gitcmd.run(["-C", path, "symbolic-ref", "--quiet", "HEAD"]).strip()
    except gitcmd.GitFailed as failed:
        if "not a git repository" in failed.stderr.lower():
            return None
        raise SourceError(
            f"{display}: HEAD is detached; pass --branch to say which branch to follow"
        ) from failed.cause
    return ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else ref


def export_tree(
    git_args: Sequence[str],
    sha: str,
    dest: Path,
    *,
    where: str,
    tree: str | None = None,
    empty: bool = False,
) -> None:
    """Write the tree of commit ``sha`` to ``dest`` (which must not exist) atomically.

    ``tree`` (a tree id inside that commit) is written instead when given; ``empty`` writes an
    empty directory. Uses a throwaway index and work tree, so the repo's own index, HEAD and
    work tree are never touched. Raises FileExistsError if ``dest`` appeared meanwhile (someone
    else exported it).
    """
    staging = dest.parent / f".tmp-{dest.name}-{uuid.uuid4().hex[:8]}"
    work = staging / "tree"
    staging.mkdir(mode=DIR_MODE)
    work.mkdir(mode=DIR_MODE)
    env = {"GIT_INDEX_FILE": str(staging / "index")}
    read = ["--empty"] if empty else [tree or sha]
    try:
        try:
            gitcmd.run([*git_args, "read-tree", *read], env=env)
            gitcmd.run(
                [*git_args, f"--work-tree={work}", "checkout-index", "--all", "--force"], env=env
            )
        except gitcmd.GitFailed as failed:
            err = SourceError(f"{where}: cannot export {sha[:12]}: {failed.line}")
            raise err from failed.cause
        private_tree(work)  # before it appears under its final name
        work.rename(dest)
    except OSError:
        if not dest.is_dir():
            raise
        raise FileExistsError(dest) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def rev_parse(git_args: Sequence[str], rev: str, *, where: str) -> str:
    """Resolve a rev-ish to a full commit sha, or SourceError "WHERE: unknown revision 'x'"."""
    try:
        out = gitcmd.run(
            [*git_args, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"]
        )
    except gitcmd.GitFailed as failed:
        if failed.stderr.strip():
            raise SourceError(f"{where}: {failed.line}") from failed.cause
        raise SourceError(f"{where}: unknown revision '{rev}'") from failed.cause
    return out.strip()


def is_ancestor(git_args: Sequence[str], older: str, newer: str) -> bool | None:
    """Whether commit ``older`` is in the history of ``newer`` (a commit is in its own); None
    when either is not a commit known here (not fetched yet) or git could not tell."""
    try:
        gitcmd.run([*git_args, "merge-base", "--is-ancestor", older, newer], timeout=30)
    except gitcmd.GitFailed as failed:
        return False if failed.cause.status == 1 else None
    return True


def tree_path(subdir: str | Path) -> str:
    """``subdir`` as a path inside a Git tree (``a/b``; ``""`` for the top)."""
    path = PurePosixPath(Path(subdir).as_posix())
    if path.is_absolute() or ".." in path.parts:
        raise SourceError(f"{subdir}: not a folder inside the repository")
    return "/".join(path.parts)


def subtree(git_args: Sequence[str], sha: str, path: str, *, where: str) -> str | None:
    """The id of folder ``path`` in commit ``sha``; None when there is no such folder."""
    try:
        out = gitcmd.run(
            [*git_args, "ls-tree", "--full-tree", "-z", sha, "--", path],
            env={"GIT_LITERAL_PATHSPECS": "1"},
        )
    except gitcmd.GitFailed as failed:
        raise SourceError(
            f"{where}: cannot read {sha[:12]}:{path}: {failed.line}"
        ) from failed.cause
    for entry in out.split("\0"):
        info, _, name = entry.partition("\t")
        fields = info.split()
        if name == path and len(fields) == 3 and fields[1] == "tree":
            return fields[2]
    return None


def commit_info(git_args: Sequence[str], sha: str, *, where: str) -> CommitInfo:
    fmt = "%H%x00%h%x00%an%x00%cI%x00%B"
    try:
        out = gitcmd.run(
            [*git_args, "show", "-s", "--encoding=UTF-8", f"--format={fmt}", sha, "--"]
        )
    except gitcmd.GitFailed as failed:
        raise SourceError(
            f"{where}: cannot read commit {sha[:12]}: {failed.line}"
        ) from failed.cause
    full, short, author, committed, message = out.split("\x00", 4)
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    return CommitInfo(
        sha=full,
        short=short,
        author=author,
        message_first_line=first_line,
        committed_at=datetime.fromisoformat(committed).astimezone(UTC),
    )
