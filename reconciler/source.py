"""Config repo access: resolve a branch or revision to a commit and export that commit's tree.

The only module that imports ``git`` (GitPython). A :class:`GitSource` keeps a private bare
mirror under its cache dir, so the user's checkout is never touched and uncommitted changes in a
local repo are never deployed: only commits are. Trees are exported into
``cache_dir/trees/<sha>`` atomically (built in a temp dir, then renamed), so a directory under a
sha name is always complete.

Everything written here is private (folders 0700, files 0600, whatever the umask): the mirror
and the trees hold what Git holds, plaintext Secrets included. A tree is deleted with
:meth:`GitSource.drop_tree` once nothing needs it (the daemon: once a revision is rendered).

Credentials come from git's own config, the ssh agent or the environment, or from the URL
itself (``https://user:token@host/repo``). URL credentials never appear on a command line, in a
log or in an error: git receives them through an ``insteadOf`` rewrite passed in its environment,
and every URL shown to people has its userinfo stripped.

No clocks, sleeps or polling here: the daemon decides when to call :meth:`GitSource.fetch`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from reconciler.errors import SourceError
from reconciler.gitcredentials import GitCredentials
from reconciler.private import DIR_MODE, private_dir, private_tree

if TYPE_CHECKING:
    import git

__all__ = [
    "CommitInfo",
    "GitSource",
    "export_rev",
    "redact",
    "resolve_rev",
    "strip_userinfo",
]

FETCHED_REF = "refs/reconciler/fetched"
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s'\"]*@)")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# Redacting a very short literal would mangle ordinary words in git's messages.
_MIN_SECRET_LEN = 6


@dataclass(frozen=True)
class CommitInfo:
    """What people need to recognise a commit: sha, short sha, author, subject, time (UTC)."""

    sha: str
    short: str
    author: str
    message_first_line: str
    committed_at: datetime


def strip_userinfo(url: str) -> str:
    """``https://user:tok@host/x`` -> ``https://host/x``; anything else is returned unchanged."""
    match = _URL_USERINFO.match(url)
    if not match:
        return url
    return match["scheme"] + url[match.end() :]


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """Strip userinfo from every URL in ``text`` and blank out the given secret literals."""
    text = _URL_USERINFO.sub(lambda m: m["scheme"], text)
    for secret in secrets:
        if len(secret) >= _MIN_SECRET_LEN:
            text = text.replace(secret, "***")
    return text


def _url_secrets(url: str) -> list[str]:
    """The literal credentials in a URL: the whole userinfo, the password or a bare token."""
    match = _URL_USERINFO.match(url)
    if not match:
        return []
    userinfo = match["userinfo"][:-1]
    user, _, password = userinfo.partition(":")
    return [userinfo, password] if password else [userinfo, user]


def _is_local_path(location: str) -> bool:
    """Git's rule: a URL has ``://``; ``host:path`` (no slash before the colon) is scp-like ssh."""
    if "://" in location:
        return False
    head, colon, _ = location.partition(":")
    return not colon or "/" in head


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


def _error_line(stderr: str) -> str:
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


class _GitFailed(Exception):
    """A git command exited non-zero; ``cause`` is a GitCommandError with nothing secret in it."""

    def __init__(self, line: str, stderr: str, cause: git.GitCommandError) -> None:
        super().__init__(line)
        self.line = line
        self.stderr = stderr
        self.cause = cause


def _git(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    secrets: Sequence[str] = (),
    timeout: float | None = None,
) -> str:
    """Run git; return stdout. Raise :class:`_GitFailed` with redacted output on failure."""
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
        raise _GitFailed(f"cannot run git: {err.status}", "", cause) from None
    status, stdout, stderr = result
    clean_err = redact(stderr, secrets)
    if status != 0:
        if timeout is not None and "did not complete in" in clean_err:
            line = f"timed out after {timeout:g}s"
        else:
            line = _error_line(clean_err)
        cause = git.GitCommandError([redact(a, secrets) for a in command], status, clean_err)
        raise _GitFailed(line, clean_err, cause)
    return stdout


def _export_tree(
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
            _git([*git_args, "read-tree", *read], env=env)
            _git([*git_args, f"--work-tree={work}", "checkout-index", "--all", "--force"], env=env)
        except _GitFailed as failed:
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


def _rev_parse(git_args: Sequence[str], rev: str, *, where: str) -> str:
    """Resolve a rev-ish to a full commit sha, or SourceError "WHERE: unknown revision 'x'"."""
    try:
        out = _git(
            [*git_args, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"]
        )
    except _GitFailed as failed:
        if failed.stderr.strip():
            raise SourceError(f"{where}: {failed.line}") from failed.cause
        raise SourceError(f"{where}: unknown revision '{rev}'") from failed.cause
    return out.strip()


def _tree_path(subdir: str | Path) -> str:
    """``subdir`` as a path inside a Git tree (``a/b``; ``""`` for the top)."""
    path = PurePosixPath(Path(subdir).as_posix())
    if path.is_absolute() or ".." in path.parts:
        raise SourceError(f"{subdir}: not a folder inside the repository")
    return "/".join(path.parts)


def _subtree(git_args: Sequence[str], sha: str, path: str, *, where: str) -> str | None:
    """The id of folder ``path`` in commit ``sha``; None when there is no such folder."""
    try:
        out = _git(
            [*git_args, "ls-tree", "--full-tree", "-z", sha, "--", path],
            env={"GIT_LITERAL_PATHSPECS": "1"},
        )
    except _GitFailed as failed:
        raise SourceError(
            f"{where}: cannot read {sha[:12]}:{path}: {failed.line}"
        ) from failed.cause
    for entry in out.split("\0"):
        info, _, name = entry.partition("\t")
        fields = info.split()
        if name == path and len(fields) == 3 and fields[1] == "tree":
            return fields[2]
    return None


def _commit_info(git_args: Sequence[str], sha: str, *, where: str) -> CommitInfo:
    fmt = "%H%x00%h%x00%an%x00%cI%x00%B"
    try:
        out = _git([*git_args, "show", "-s", "--encoding=UTF-8", f"--format={fmt}", sha, "--"])
    except _GitFailed as failed:
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


def _local_repo_args(repo_path: Path) -> list[str]:
    if not repo_path.is_dir():
        raise SourceError(f"{repo_path}: no such directory")
    return ["-C", str(repo_path)]


def _current_branch(path: str, display: str) -> str | None:
    """The branch checked out in a local repo; None when it is not a repo (fetch says so)."""
    if not Path(path).exists():
        return None
    try:
        ref = _git(["-C", path, "symbolic-ref", "--quiet", "HEAD"]).strip()
    except _GitFailed as failed:
        if "not a git repository" in failed.stderr.lower():
            return None
        raise SourceError(
            f"{display}: HEAD is detached; pass --branch to say which branch to follow"
        ) from failed.cause
    return ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else ref


def resolve_rev(repo_path: Path, rev: str) -> str:
    """Resolve any rev-ish (sha, branch, tag, ``HEAD~1``) in a local repo to a commit sha."""
    return _rev_parse(_local_repo_args(repo_path), rev, where=str(repo_path))


def merge_base(repo_path: Path, base: str, head: str) -> str:
    """The commit a pull request of ``head`` into ``base`` diffs from (``git merge-base``);
    ``base``'s own commit when the two share no history."""
    args = _local_repo_args(repo_path)
    base_sha = _rev_parse(args, base, where=str(repo_path))
    head_sha = _rev_parse(args, head, where=str(repo_path))
    try:
        return _git([*args, "merge-base", base_sha, head_sha]).strip() or base_sha
    except _GitFailed:
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
    sha = _rev_parse(args, rev, where=str(repo_path))
    if dest.exists():
        raise SourceError(f"{dest}: already exists; refusing to export {repo_path} @ {rev} over it")
    tree: str | None = None
    empty = False
    path = _tree_path(subdir) if subdir is not None else ""
    if path:
        tree = _subtree(args, sha, path, where=str(repo_path))
        empty = tree is None
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        _export_tree(args, sha, dest, where=str(repo_path), tree=tree, empty=empty)
    except FileExistsError as err:
        raise SourceError(f"{dest}: created by someone else while exporting") from err
    return dest


class GitSource:
    """A config repo (URL or local path) mirrored under ``cache_dir``.

    ``fetch`` is meant to be called by one thread at a time; ``tree`` and ``commit`` may be
    called from any thread. One cache dir belongs to one GitSource (one process).
    """

    def __init__(
        self,
        location: str,
        branch: str | None,
        cache_dir: Path,
        *,
        keep_trees: int = 3,
        fetch_timeout: float | None = 300.0,
        credentials: GitCredentials | None = None,
    ) -> None:
        if keep_trees < 1:
            raise ValueError("keep_trees must be at least 1")
        if location.startswith("-"):
            raise SourceError(f"{location}: not a repository URL or path")
        if branch is not None and (not branch or branch.startswith("-")):
            raise SourceError(f"{strip_userinfo(location)}: invalid branch name {branch!r}")
        self.location = location
        self.branch = branch
        # Absolute: git runs with other working directories and a relative index path would
        # silently export empty trees.
        self.cache_dir = cache_dir = cache_dir.absolute()
        self.keep_trees = keep_trees
        self.fetch_timeout = fetch_timeout
        self.is_local = _is_local_path(location)
        self._secrets = _url_secrets(location)
        self.credentials = credentials or GitCredentials()
        if not self.credentials.empty:
            if self.is_local:
                raise SourceError(f"{location}: Git credentials are for remote repositories")
            self.credentials.check(strip_userinfo(location))
        if self.is_local:
            self._url = str(Path(location).expanduser().resolve())
            self.display = self._url
        else:
            self._url = strip_userinfo(location)
            self.display = self._url
        if self.is_local and self.branch is None:
            # Follow the branch checked out now, not HEAD: checking out an old commit or
            # another branch in the work tree must not deploy it (and prune to match).
            self.branch = _current_branch(self._url, self.display)
        self._mirror = cache_dir / "mirror.git"
        self._trees = cache_dir / "trees"
        self._cleaned_staging = False
        self._mirror_checked = False
        self._tree_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GitSource({self.display!r}, branch={self.branch!r})"

    # -- mirror ---------------------------------------------------------------------------

    @property
    def _mirror_args(self) -> list[str]:
        return [f"--git-dir={self._mirror}"]

    def _ensure_mirror(self) -> None:
        if (self._mirror / "HEAD").is_file():
            if not self._mirror_checked:
                self._make_private()
            return
        # A half-created mirror (crash during init) is just cache: start over.
        shutil.rmtree(self._mirror, ignore_errors=True)
        try:
            private_dir(self._mirror.parent)
        except OSError as err:
            raise SourceError(
                f"{self.display}: cannot create {self._mirror.parent}: {err.strerror}"
            ) from err
        try:
            # --shared=0600: git writes every file 0600 and folder 0700, whatever the umask.
            _git(["init", "--bare", "--quiet", "--shared=0600", str(self._mirror)])
        except _GitFailed as failed:
            raise SourceError(
                f"{self.display}: cannot create mirror in {self._mirror}: {failed.line}"
            ) from failed.cause
        self._mirror_checked = True

    def _make_private(self) -> None:
        """A mirror made by an older version (umask modes): make it private, once per process."""
        try:
            _git([*self._mirror_args, "config", "core.sharedRepository", "0600"])
            private_dir(self.cache_dir)
            private_tree(self._mirror)
            if self._trees.is_dir():
                private_tree(self._trees)
        except _GitFailed as failed:
            raise SourceError(
                f"{self.display}: cannot configure mirror {self._mirror}: {failed.line}"
            ) from failed.cause
        except OSError as err:
            raise SourceError(
                f"{self.display}: cannot make {self.cache_dir} private: {err.strerror}"
            ) from err
        self._mirror_checked = True

    def _credential_env(self) -> dict[str, str]:
        """Hand URL credentials to git via an insteadOf rewrite, never via argv, and the
        credential files' settings (ssh command, token helper) via the environment."""
        if self.is_local:
            return {}
        entries = self.credentials.config()
        if self._url != self.location:
            entries.append((f"url.{self.location}.insteadOf", self._url))
        env = self.credentials.environment()
        if entries:
            env["GIT_CONFIG_COUNT"] = str(len(entries))
            for i, (key, value) in enumerate(entries):
                env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
        return env

    def fetch(self) -> str:
        """Update the mirror and return the sha the branch (default: remote HEAD) points at."""
        self._ensure_mirror()
        if self.branch is None:
            source_ref = "HEAD"
        elif self.branch.startswith("refs/"):
            source_ref = self.branch
        else:
            source_ref = f"refs/heads/{self.branch}"
        args = [
            *self._mirror_args,
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",  # it would record the URL after our credential rewrite
            "--",
            self._url,
            f"+{source_ref}:{FETCHED_REF}",
        ]
        try:
            _git(
                args,
                env=self._credential_env(),
                secrets=[*self._secrets, *self.credentials.secrets()],
                timeout=self.fetch_timeout,
            )
        except _GitFailed as failed:
            raise SourceError(self._fetch_message(failed, source_ref)) from failed.cause
        return _rev_parse(self._mirror_args, FETCHED_REF, where=self.display)

    def _fetch_message(self, failed: _GitFailed, source_ref: str) -> str:
        if f"couldn't find remote ref {source_ref}" in failed.stderr:
            if self.branch is None:
                return f"{self.display}: repository has no commits on its default branch"
            return f"{self.display}: branch '{self.branch}' not found or has no commits"
        if self.is_local and not Path(self._url).exists():
            return f"{self.display}: no such directory"
        return f"{self.display}: fetch failed: {failed.line}"

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``ancestor`` is in the history of ``descendant`` (both fetched)."""
        try:
            _git([*self._mirror_args, "merge-base", "--is-ancestor", ancestor, descendant])
        except _GitFailed:
            return False
        return True

    def resolve(self, rev: str) -> str:
        """Resolve a rev-ish among fetched commits to a full sha."""
        self._ensure_mirror()
        return _rev_parse(self._mirror_args, rev, where=self.display)

    # -- trees ----------------------------------------------------------------------------

    def tree(self, rev: str) -> Path:
        """Export the tree of ``rev`` to ``cache_dir/trees/<sha>`` (idempotent) and return it.

        Older trees beyond ``keep_trees`` (by last use) are pruned, so ``keep_trees`` must cover
        the revisions read at the same time. Calls are serialised within the process.
        """
        with self._tree_lock:
            sha = rev if _SHA.match(rev) and (self._trees / rev).is_dir() else self.resolve(rev)
            final = self._trees / sha
            try:
                private_dir(self._trees)
                if not self._cleaned_staging:
                    # Leftovers of a crashed process; no export of ours is running yet.
                    self._remove_staging(prefixes=(".tmp-", ".trash-"))
                    self._cleaned_staging = True
                if not final.is_dir():
                    # FileExistsError: someone else exported the same commit; it is complete.
                    with contextlib.suppress(FileExistsError):
                        _export_tree(self._mirror_args, sha, final, where=self.display)
                os.utime(final)  # mark as most recently used, so pruning keeps it
                self._prune(keep=final)
            except OSError as err:
                raise SourceError(
                    f"{self.display}: cannot write tree {final}: {err.strerror}"
                ) from err
            return final

    def drop_tree(self, sha: str) -> None:
        """Delete the exported tree of ``sha`` (it holds plaintext Secrets): nothing needs it
        any more. A tree that is not there is fine."""
        if not _SHA.match(sha):
            raise ValueError(f"not a full sha: {sha!r}")
        with self._tree_lock:
            self._discard(self._trees / sha)

    def drop_trees(self) -> None:
        """Delete every exported tree (a daemon starting: trees left by a crash)."""
        with self._tree_lock:
            if not self._trees.is_dir():
                return
            for entry in self._trees.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    self._discard(entry)

    @staticmethod
    def _discard(tree: Path) -> None:
        # Rename first: a directory under a sha name must never be half-deleted.
        trash = tree.with_name(f".trash-{tree.name}-{uuid.uuid4().hex[:8]}")
        try:
            tree.rename(trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def _remove_staging(self, prefixes: tuple[str, ...]) -> None:
        for entry in self._trees.iterdir():
            if entry.name.startswith(prefixes):
                shutil.rmtree(entry, ignore_errors=True)

    def _prune(self, keep: Path) -> None:
        trees = [
            entry
            for entry in self._trees.iterdir()
            if _SHA.match(entry.name) and entry != keep and entry.is_dir()
        ]
        trees.sort(key=lambda entry: (entry.stat().st_mtime_ns, entry.name), reverse=True)
        for old in trees[self.keep_trees - 1 :]:
            self._discard(old)

    # -- commits and watching -------------------------------------------------------------

    def commit(self, rev: str) -> CommitInfo:
        """Sha, short sha, author, subject and commit time (UTC) of a fetched revision."""
        sha = self.resolve(rev)
        return _commit_info(self._mirror_args, sha, where=self.display)

    def watch_paths(self) -> list[Path]:
        """Paths whose change means a new commit may have landed (local repos only).

        HEAD of the repo plus the refs of its common dir (``refs/``, and ``packed-refs`` or
        ``reftable/`` when present). Empty for remote URLs: those are polled.
        """
        if not self.is_local:
            return []
        repo = Path(self._url)
        try:
            out = _git(
                [
                    "-C",
                    str(repo),
                    "rev-parse",
                    "--path-format=absolute",
                    "--git-dir",
                    "--git-common-dir",
                ]
            )
        except _GitFailed as failed:
            raise SourceError(f"{self.display}: {failed.line}") from failed.cause
        git_dir, common_dir = (Path(line) for line in out.splitlines()[:2])
        paths = [git_dir / "HEAD", common_dir / "refs"]
        paths += [p for p in (common_dir / "packed-refs", common_dir / "reftable") if p.exists()]
        return paths
