"""A local repository read in place (``plan``): resolve revisions, the merge base, export a
revision's tree or one folder of it; the repo's index, HEAD and work tree are never touched."""

from __future__ import annotations

from pathlib import Path

from reconciler.errors import SourceError
from reconciler.source import gitcmd
from reconciler.source.plumbing import export_tree, rev_parse, subtree, tree_path


def _local_repo_args(repo_path: Path) -> list[str]:
    if not repo_path.is_dir():
        raise SourceError(f"{repo_path}: no such directory")
    return ["-C", str(repo_path)]


def resolve_rev(repo_path: Path, rev: str) -> str:
    """Resolve any rev-ish (sha, branch, tag, ``HEAD~1``) in a local repo to a commit sha."""
    return rev_parse(_local_repo_args(repo_path), rev, where=str(repo_path))


def merge_base(repo_path: Path, base: str, head: str) -> str:
    """The commit a pull request of ``head`` into ``base`` diffs from (``git merge-base``);
    ``base``'s own commit when the two share no history."""
    args = _local_repo_args(repo_path)
    base_sha = rev_parse(args, base, where=str(repo_path))
    head_sha = rev_parse(args, head, where=str(repo_path))
    try:
        return gitcmd.run([*args, "merge-base", base_sha, head_sha]).strip() or base_sha
    except gitcmd.GitFailed:
        return base_sha


def export_rev(repo_path: Path, rev: str, dest: Path, *, subdir: str | Path | None = None) -> Path:
    """Export the tree of ``rev`` in a local repo to ``dest`` (must not exist yet); return dest.

    With ``subdir`` (relative to the top of the work tree), only that folder is exported, and
    its contents land directly in ``dest``; nothing else of the commit is written. A folder
    that does not exist at ``rev`` (or is not a folder there) exports as an empty ``dest``:
    Git has no empty folders, so the two are the same. Reads only: the repo's index, HEAD and
    work tree are left alone.
    """
    args = _local_repo_args(repo_path)
    sha = rev_parse(args, rev, where=str(repo_path))
    if dest.exists():
        raise SourceError(f"{dest}: already exists; refusing to export {repo_path} @ {rev} over it")
    tree: str | None = None
    empty = False
    path = tree_path(subdir) if subdir is not None else ""
    if path:
        tree = subtree(args, sha, path, where=str(repo_path))
        empty = tree is None
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        export_tree(args, sha, dest, where=str(repo_path), tree=tree, empty=empty)
    except FileExistsError as err:
        raise SourceError(f"{dest}: created by someone else while exporting") from err
    return dest
