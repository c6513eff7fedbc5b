"""Following a config repo: fetch a branch into a private mirror, export a commit's tree.

A :class:`GitSource` keeps a private bare mirror under its cache dir, so the user's checkout is
never touched and uncommitted changes in a local repo are never deployed: only commits are.
Trees are exported into ``cache_dir/trees/<sha>`` atomically (built in a temp dir, then
renamed), so a directory under a sha name is always complete.

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
import shutil
import threading
import uuid
from pathlib import Path

from reconciler.errors import SourceError
from reconciler.gitcredentials import GitCredentials
from reconciler.private import private_dir, private_tree
from reconciler.source import gitcmd
from reconciler.source.plumbing import (
    SHA,
    CommitInfo,
    commit_info,
    current_branch,
    export_tree,
    is_ancestor,
    is_local_path,
    rev_parse,
)
from reconciler.source.redaction import strip_userinfo, url_secrets

FETCHED_REF = "refs/reconciler/fetched"


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
        self.is_local = is_local_path(location)
        self._secrets = url_secrets(location)
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
            self.branch = current_branch(self._url, self.display)
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
            gitcmd.run(["init", "--bare", "--quiet", "--shared=0600", str(self._mirror)])
        except gitcmd.GitFailed as failed:
            raise SourceError(
                f"{self.display}: cannot create mirror in {self._mirror}: {failed.line}"
            ) from failed.cause
        self._mirror_checked = True

    def _make_private(self) -> None:
        """A mirror made by an older version (umask modes): make it private, once per process."""
        try:
            gitcmd.run([*self._mirror_args, "config", "core.sharedRepository", "0600"])
            private_dir(self.cache_dir)
            private_tree(self._mirror)
            if self._trees.is_dir():
                private_tree(self._trees)
        except gitcmd.GitFailed as failed:
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
            gitcmd.run(
                args,
                env=self._credential_env(),
                secrets=[*self._secrets, *self.credentials.secrets()],
                timeout=self.fetch_timeout,
            )
        except gitcmd.GitFailed as failed:
            raise SourceError(self._fetch_message(failed, source_ref)) from failed.cause
        return rev_parse(self._mirror_args, FETCHED_REF, where=self.display)

    def _fetch_message(self, failed: gitcmd.GitFailed, source_ref: str) -> str:
        if f"couldn't find remote ref {source_ref}" in failed.stderr:
            if self.branch is None:
                return f"{self.display}: repository has no commits on its default branch"
            return f"{self.display}: branch '{self.branch}' not found or has no commits"
        if self.is_local and not Path(self._url).exists():
            return f"{self.display}: no such directory"
        return f"{self.display}: fetch failed: {failed.line}"

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``ancestor`` is in the history of ``descendant`` (both fetched)."""
        return self.ancestry(ancestor, descendant) is True

    def ancestry(self, older: str, newer: str) -> bool | None:
        """Whether ``older`` is in the history of ``newer``; None when either is not fetched
        here (yet)."""
        return is_ancestor(self._mirror_args, older, newer)

    def resolve(self, rev: str) -> str:
        """Resolve a rev-ish among fetched commits to a full sha."""
        self._ensure_mirror()
        return rev_parse(self._mirror_args, rev, where=self.display)

    # -- trees ----------------------------------------------------------------------------

    def tree(self, rev: str) -> Path:
        """Export the tree of ``rev`` to ``cache_dir/trees/<sha>`` (idempotent) and return it.

        Older trees beyond ``keep_trees`` (by last use) are pruned, so ``keep_trees`` must cover
        the revisions read at the same time. Calls are serialised within the process.
        """
        with self._tree_lock:
            sha = rev if SHA.match(rev) and (self._trees / rev).is_dir() else self.resolve(rev)
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
                        export_tree(self._mirror_args, sha, final, where=self.display)
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
        if not SHA.match(sha):
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
            if SHA.match(entry.name) and entry != keep and entry.is_dir()
        ]
        trees.sort(key=lambda entry: (entry.stat().st_mtime_ns, entry.name), reverse=True)
        for old in trees[self.keep_trees - 1 :]:
            self._discard(old)

    # -- commits and watching -------------------------------------------------------------

    def commit(self, rev: str) -> CommitInfo:
        """Sha, short sha, author, subject and commit time (UTC) of a fetched revision."""
        sha = self.resolve(rev)
        return commit_info(self._mirror_args, sha, where=self.display)

    def watch_paths(self) -> list[Path]:
        """Paths whose change means a new commit may have landed (local repos only).

        HEAD of the repo plus the refs of its common dir (``refs/``, and ``packed-refs`` or
        ``reftable/`` when present). Empty for remote URLs: those are polled.
        """
        if not self.is_local:
            return []
        repo = Path(self._url)
        try:
            out = gitcmd.run(
                [
                    "-C",
                    str(repo),
                    "rev-parse",
                    "--path-format=absolute",
                    "--git-dir",
                    "--git-common-dir",
                ]
            )
        except gitcmd.GitFailed as failed:
            raise SourceError(f"{self.display}: {failed.line}") from failed.cause
        git_dir, common_dir = (Path(line) for line in out.splitlines()[:2])
        paths = [git_dir / "HEAD", common_dir / "refs"]
        paths += [p for p in (common_dir / "packed-refs", common_dir / "reftable") if p.exists()]
        return paths
