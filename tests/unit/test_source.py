"""reconciler.source against real git repositories made in tmp_path."""

from __future__ import annotations

import base64
import http.server
import os
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest

from reconciler.errors import SourceError
from reconciler.source import (
    CommitInfo,
    GitSource,
    export_rev,
    gitcmd,
    redact,
    resolve_rev,
    strip_userinfo,
)


@pytest.fixture(autouse=True)
def isolated_git_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep the user's git config (insteadOf, hooks, signing) out of these tests."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


def git(cwd: Path, *args: str, date: str = "2026-11-22T14:03:41+02:00") -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada Lovelace",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada Lovelace",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_DATE": date,
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def commit_files(repo: Path, files: dict[str, str], message: str, **kw: str) -> str:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message, **kw)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A config repo on branch main with two commits."""
    path = tmp_path / "config"
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch=main")
    commit_files(
        path,
        {"clusters/a.yaml": "name: a\n", "apps/web/app.yaml": "replicas: 1\n"},
        "Add cluster a\n\nLonger body.",
    )
    commit_files(path, {"apps/web/app.yaml": "replicas: 2\n"}, "Scale web to 2")
    return path


def test_fetch_resolves_the_current_branch_of_a_local_repo(repo: Path, tmp_path: Path) -> None:
    git(repo, "checkout", "--quiet", "-b", "feature")
    feature_head = commit_files(repo, {"feature.txt": "x"}, "Feature work")

    src = GitSource(str(repo), None, tmp_path / "cache")

    assert src.fetch() == feature_head


def test_fetch_follows_the_named_branch_not_head(repo: Path, tmp_path: Path) -> None:
    main_head = git(repo, "rev-parse", "main")
    git(repo, "checkout", "--quiet", "-b", "feature")
    commit_files(repo, {"feature.txt": "x"}, "Feature work")

    assert GitSource(str(repo), "main", tmp_path / "cache").fetch() == main_head


def test_fetch_sees_a_commit_that_lands_after_the_first_fetch(repo: Path, tmp_path: Path) -> None:
    src = GitSource(str(repo), "main", tmp_path / "cache")
    first = src.fetch()

    second = commit_files(repo, {"apps/web/app.yaml": "replicas: 3\n"}, "Scale web to 3")

    assert first != second
    assert src.fetch() == second


def test_fetch_follows_a_force_pushed_branch_back_to_an_older_commit(
    repo: Path, tmp_path: Path
) -> None:
    src = GitSource(str(repo), "main", tmp_path / "cache")
    src.fetch()
    git(repo, "reset", "--quiet", "--hard", "HEAD~1")

    assert src.fetch() == git(repo, "rev-parse", "HEAD")


def test_fetch_clones_a_file_url_into_the_private_mirror(repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    src = GitSource(repo.as_uri(), None, cache)

    sha = src.fetch()

    assert sha == git(repo, "rev-parse", "HEAD")
    assert (cache / "mirror.git" / "HEAD").is_file()
    assert not (cache / "mirror.git" / "FETCH_HEAD").exists()
    assert not src.is_local
    assert src.watch_paths() == []


def test_fetch_never_touches_the_users_checkout(repo: Path, tmp_path: Path) -> None:
    (repo / "apps/web/app.yaml").write_text("replicas: 99  # uncommitted\n")
    before = git(repo, "status", "--porcelain=v1", "--branch")
    index_before = (repo / ".git" / "index").read_bytes()

    src = GitSource(str(repo), None, tmp_path / "cache")
    tree = src.tree(src.fetch())

    assert (tree / "apps/web/app.yaml").read_text() == "replicas: 2\n"
    assert git(repo, "status", "--porcelain=v1", "--branch") == before
    assert (repo / ".git" / "index").read_bytes() == index_before


def test_fetch_of_a_missing_branch_names_the_location_and_branch(
    repo: Path, tmp_path: Path
) -> None:
    src = GitSource(str(repo), "nope", tmp_path / "cache")

    with pytest.raises(SourceError) as caught:
        src.fetch()

    assert str(caught.value) == f"{repo}: branch 'nope' not found or has no commits"
    assert caught.value.__cause__ is not None


def test_fetch_of_a_missing_local_path_says_so(tmp_path: Path) -> None:
    src = GitSource(str(tmp_path / "nowhere"), None, tmp_path / "cache")

    with pytest.raises(SourceError, match=r"nowhere: no such directory$"):
        src.fetch()


def test_fetch_of_an_empty_repo_says_it_has_no_commits(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "--quiet")

    with pytest.raises(SourceError, match=r"branch '\w+' not found or has no commits$"):
        GitSource(str(empty), None, tmp_path / "cache").fetch()


def test_fetch_error_for_an_https_url_never_shows_the_credentials(tmp_path: Path) -> None:
    src = GitSource(
        "https://deploy-bot:s3cret-t0ken@127.0.0.1:9/config.git", "main", tmp_path / "cache"
    )

    with pytest.raises(SourceError) as caught:
        src.fetch()

    message = str(caught.value)
    assert message.startswith("https://127.0.0.1:9/config.git: fetch failed: ")
    assert "\n" not in message
    for shown in (message, str(caught.value.__cause__), repr(src), src.display):
        assert "s3cret-t0ken" not in shown
        assert "deploy-bot" not in shown


def test_fetch_error_for_a_token_only_url_never_shows_the_token(tmp_path: Path) -> None:
    src = GitSource("https://ghp_abcdef123456@127.0.0.1:9/x.git", None, tmp_path / "cache")

    with pytest.raises(SourceError) as caught:
        src.fetch()

    assert "ghp_abcdef123456" not in str(caught.value)
    assert "ghp_abcdef123456" not in str(caught.value.__cause__)


class _AuthRecorder(http.server.BaseHTTPRequestHandler):
    """A loopback git-over-HTTP server that asks for Basic auth and records what it gets."""

    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
        else:
            self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_url_credentials_reach_the_server_but_not_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AuthRecorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    _AuthRecorder.seen.clear()
    argv_seen: list[list[str]] = []
    real_git = gitcmd.run

    def spy(args: list[str], **kw: object) -> str:
        argv_seen.append(list(args))
        return real_git(args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(gitcmd, "run", spy)
    src = GitSource(f"http://bot:hunter2-secret@127.0.0.1:{port}/x.git", None, tmp_path / "c")
    try:
        with pytest.raises(SourceError) as caught:
            src.fetch()
    finally:
        server.shutdown()
        server.server_close()

    expected = "Basic " + base64.b64encode(b"bot:hunter2-secret").decode()
    assert expected in _AuthRecorder.seen
    assert all("hunter2-secret" not in arg for args in argv_seen for arg in args)
    assert "hunter2-secret" not in str(caught.value)
    assert str(caught.value).startswith(f"http://127.0.0.1:{port}/x.git: fetch failed: ")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:tok@host/x", "https://host/x"),
        ("https://tok@host:8443/x.git", "https://host:8443/x.git"),
        ("ssh://git@github.com/org/repo.git", "ssh://github.com/org/repo.git"),
        ("https://host/x", "https://host/x"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("/srv/config", "/srv/config"),
        ("file:///srv/config", "file:///srv/config"),
    ],
)
def test_strip_userinfo_removes_only_url_credentials(url: str, shown: str) -> None:
    assert strip_userinfo(url) == shown


def test_redact_strips_credentials_from_urls_inside_text() -> None:
    text = "fatal: unable to access 'https://u:pw@h/x/': see https://tok@h2/y and secret-value"

    assert redact(text, ["secret-value"]) == (
        "fatal: unable to access 'https://h/x/': see https://h2/y and ***"
    )


@pytest.mark.parametrize("branch", ["--upload-pack=touch /tmp/pwned", "-b", ""])
def test_a_branch_that_looks_like_an_option_is_refused(
    repo: Path, tmp_path: Path, branch: str
) -> None:
    with pytest.raises(SourceError, match="invalid branch name"):
        GitSource(str(repo), branch, tmp_path / "cache")


def test_a_location_that_looks_like_an_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a repository URL or path"):
        GitSource("--upload-pack=touch /tmp/pwned", None, tmp_path / "cache")


def test_tree_exports_the_commit_with_its_modes_and_symlinks(repo: Path, tmp_path: Path) -> None:
    (repo / "bin").mkdir()
    (repo / "bin/render.sh").write_text("#!/bin/sh\n")
    (repo / "bin/render.sh").chmod(0o755)
    (repo / "current").symlink_to("apps/web/app.yaml")
    sha = commit_files(repo, {}, "Add script and link")
    cache = tmp_path / "cache"
    src = GitSource(str(repo), None, cache)

    tree = src.tree(src.fetch())

    assert tree == cache / "trees" / sha
    assert (tree / "clusters/a.yaml").read_text() == "name: a\n"
    assert os.access(tree / "bin/render.sh", os.X_OK)
    assert (tree / "current").is_symlink()
    assert not (tree / ".git").exists()
    assert [p.name for p in (cache / "trees").iterdir()] == [sha]


def test_tree_accepts_a_rev_ish_and_names_the_dir_by_full_sha(repo: Path, tmp_path: Path) -> None:
    src = GitSource(str(repo), None, tmp_path / "cache")
    src.fetch()
    first = git(repo, "rev-parse", "HEAD~1")

    tree = src.tree(first[:8])

    assert tree.name == first
    assert (tree / "apps/web/app.yaml").read_text() == "replicas: 1\n"


def test_tree_is_idempotent_and_does_not_rewrite_an_existing_tree(
    repo: Path, tmp_path: Path
) -> None:
    src = GitSource(str(repo), None, tmp_path / "cache")
    sha = src.fetch()
    first = src.tree(sha)
    inode = (first / "clusters/a.yaml").stat().st_ino

    again = src.tree(sha)

    assert again == first
    assert (again / "clusters/a.yaml").stat().st_ino == inode


def test_tree_leaves_nothing_under_the_sha_name_when_export_fails_halfway(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    src = GitSource(str(repo), None, cache)
    sha = src.fetch()
    real_git = gitcmd.run

    def crash_after_checkout(args: list[str], **kw: object) -> str:
        out = real_git(args, **kw)  # type: ignore[arg-type]
        if "checkout-index" in args:
            files = list((cache / "trees").rglob("a.yaml"))
            assert files, "the files were written somewhere before the crash"
            cause = gitcmd.GitCommandFailed(["git"], 1, "fatal: disk full")
            raise gitcmd.GitFailed("disk full", "fatal: disk full", cause)
        return out

    monkeypatch.setattr(gitcmd, "run", crash_after_checkout)

    with pytest.raises(SourceError, match=f"cannot export {sha[:12]}: disk full"):
        src.tree(sha)

    assert not (cache / "trees" / sha).exists()
    assert list((cache / "trees").iterdir()) == []


def test_tree_exported_by_many_threads_at_once_is_complete_for_all(
    repo: Path, tmp_path: Path
) -> None:
    src = GitSource(str(repo), None, tmp_path / "cache")
    sha = src.fetch()
    results: list[Path] = []
    errors: list[BaseException] = []

    def export() -> None:
        try:
            results.append(src.tree(sha))
        except BaseException as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=export) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert set(results) == {tmp_path / "cache" / "trees" / sha}
    assert (results[0] / "apps/web/app.yaml").read_text() == "replicas: 2\n"
    assert [p.name for p in (tmp_path / "cache" / "trees").iterdir()] == [sha]


def test_tree_prunes_all_but_the_newest_trees(repo: Path, tmp_path: Path) -> None:
    trees = tmp_path / "cache" / "trees"
    src = GitSource(str(repo), "main", tmp_path / "cache", keep_trees=2)
    shas = []
    for n in range(3):
        commit_files(repo, {"n.txt": str(n)}, f"Commit {n}")
        shas.append(src.fetch())
        src.tree(shas[-1])
        os.utime(trees / shas[-1], ns=(n * 10**9, n * 10**9))  # deterministic ages

    assert sorted(p.name for p in trees.iterdir()) == sorted(shas[1:])


def test_tree_never_prunes_the_tree_it_returns(repo: Path, tmp_path: Path) -> None:
    trees = tmp_path / "cache" / "trees"
    src = GitSource(str(repo), "main", tmp_path / "cache", keep_trees=1)
    old = src.fetch()
    src.tree(old)
    new = commit_files(repo, {"n.txt": "1"}, "Newer")
    src.fetch()
    src.tree(new)

    back = src.tree(old)

    assert back.is_dir()
    assert [p.name for p in trees.iterdir()] == [old]


def test_tree_of_an_unknown_revision_names_the_location(repo: Path, tmp_path: Path) -> None:
    src = GitSource(str(repo), None, tmp_path / "cache")
    src.fetch()

    with pytest.raises(SourceError) as caught:
        src.tree("no-such-branch")

    assert str(caught.value) == f"{repo}: unknown revision 'no-such-branch'"


def test_commit_describes_the_revision_in_utc(repo: Path, tmp_path: Path) -> None:
    src = GitSource(str(repo), None, tmp_path / "cache")
    src.fetch()
    first = git(repo, "rev-parse", "HEAD~1")

    info = src.commit(first)

    assert info == CommitInfo(
        sha=first,
        short=git(repo, "rev-parse", "--short", first),
        author="Ada Lovelace",
        message_first_line="Add cluster a",
        committed_at=datetime(2026, 11, 22, 12, 3, 41, tzinfo=UTC),
    )
    assert info.committed_at.tzinfo is UTC


def test_watch_paths_of_a_local_repo_are_its_head_and_refs(repo: Path, tmp_path: Path) -> None:
    git(repo, "pack-refs", "--all")

    paths = GitSource(str(repo), None, tmp_path / "cache").watch_paths()

    git_dir = repo.resolve() / ".git"
    assert paths == [git_dir / "HEAD", git_dir / "refs", git_dir / "packed-refs"]


def test_watch_paths_of_a_linked_worktree_include_the_shared_refs(
    repo: Path, tmp_path: Path
) -> None:
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "--quiet", "-b", "side", str(linked))

    paths = GitSource(str(linked), None, tmp_path / "cache").watch_paths()

    common = repo.resolve() / ".git"
    assert paths[0] == common / "worktrees" / "linked" / "HEAD"
    assert paths[1] == common / "refs"


def test_resolve_rev_accepts_shas_branches_and_relative_revs(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    parent = git(repo, "rev-parse", "HEAD~1")

    assert resolve_rev(repo, "main") == head
    assert resolve_rev(repo, "HEAD~1") == parent
    assert resolve_rev(repo, parent[:10]) == parent


def test_resolve_rev_of_a_bad_rev_is_one_clear_line(repo: Path) -> None:
    with pytest.raises(SourceError) as caught:
        resolve_rev(repo, "x")

    assert str(caught.value) == f"{repo}: unknown revision 'x'"


def test_resolve_rev_outside_a_repo_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"not a git repository"):
        resolve_rev(tmp_path, "HEAD")
    with pytest.raises(SourceError, match=r"nowhere: no such directory"):
        resolve_rev(tmp_path / "nowhere", "HEAD")


def test_export_rev_writes_the_old_revision_and_leaves_the_checkout_alone(
    repo: Path, tmp_path: Path
) -> None:
    (repo / "scratch.txt").write_text("uncommitted")
    before = git(repo, "status", "--porcelain=v1")

    dest = export_rev(repo, "HEAD~1", tmp_path / "base")

    assert dest == tmp_path / "base"
    assert (dest / "apps/web/app.yaml").read_text() == "replicas: 1\n"
    assert not (dest / "scratch.txt").exists()
    assert git(repo, "status", "--porcelain=v1") == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_export_rev_refuses_to_overwrite_an_existing_dir(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()

    with pytest.raises(SourceError, match="already exists"):
        export_rev(repo, "HEAD", tmp_path / "base")


def test_export_rev_of_a_bad_rev_names_the_repo(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"unknown revision 'main~9'$"):
        export_rev(repo, "main~9", tmp_path / "base")
    assert not (tmp_path / "base").exists()


def test_export_rev_of_a_subdir_writes_only_that_folder(repo: Path, tmp_path: Path) -> None:
    commit_files(
        repo,
        {"deploy/my conf/clusters/a.yaml": "name: a\n", "src/big.bin": "x" * 1000},
        "A config repo in a subfolder of a monorepo",
    )
    (repo / "deploy/my conf/clusters/a.yaml").write_text("uncommitted\n")
    before = git(repo, "status", "--porcelain=v1")

    dest = export_rev(repo / "deploy", "HEAD", tmp_path / "head", subdir="deploy/my conf")

    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "clusters",
        "clusters/a.yaml",
    ]
    assert (dest / "clusters/a.yaml").read_text() == "name: a\n"
    assert git(repo, "status", "--porcelain=v1") == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_export_rev_of_a_subdir_missing_at_that_revision_is_an_empty_dir(
    repo: Path, tmp_path: Path
) -> None:
    commit_files(repo, {"deploy/clusters/a.yaml": "name: a\n"}, "Add deploy/")

    dest = export_rev(repo, "HEAD~1", tmp_path / "base", subdir=Path("deploy"))
    assert dest.is_dir() and list(dest.iterdir()) == []
    file = export_rev(repo, "HEAD", tmp_path / "file", subdir="deploy/clusters/a.yaml")
    assert list(file.iterdir()) == []
    top = export_rev(repo, "HEAD", tmp_path / "top", subdir=".")
    assert (top / "deploy/clusters/a.yaml").is_file() and (top / "apps/web/app.yaml").is_file()


@pytest.mark.parametrize("subdir", ["../elsewhere", "/etc", "deploy/../../x"])
def test_export_rev_refuses_a_subdir_outside_the_repo(
    repo: Path, tmp_path: Path, subdir: str
) -> None:
    with pytest.raises(SourceError, match="not a folder inside the repository"):
        export_rev(repo, "HEAD", tmp_path / "out", subdir=subdir)
    assert not (tmp_path / "out").exists()


def test_a_local_repo_follows_the_branch_checked_out_at_start_not_head(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "-b", "main")
    (repo / "f").write_text("1")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "one")
    first = git(repo, "rev-parse", "HEAD").strip()
    (repo / "f").write_text("2")
    git(repo, "commit", "--quiet", "-am", "two")
    second = git(repo, "rev-parse", "HEAD").strip()
    src = GitSource(str(repo), None, tmp_path / "cache")
    git(repo, "checkout", "--quiet", first)  # someone looks at an old commit
    assert src.branch == "main"
    assert src.fetch() == second
    assert src.is_ancestor(first, second) and not src.is_ancestor(second, first)


def test_ancestry_is_unknown_for_a_commit_not_fetched_yet(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "-b", "main")
    first = commit_files(repo, {"f": "1"}, "one")
    src = GitSource(str(repo), None, tmp_path / "cache")
    assert src.fetch() == first
    second = commit_files(repo, {"f": "2"}, "two")
    assert src.ancestry(first, second) is None and src.ancestry(second, first) is None
    assert not src.is_ancestor(first, second)
    assert src.fetch() == second
    assert src.ancestry(first, second) is True and src.ancestry(second, first) is False
    assert src.ancestry(first, first) is True


def test_a_relative_cache_dir_still_exports_the_whole_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "-b", "main")
    (repo / "clusters").mkdir()
    (repo / "clusters" / "a.yaml").write_text("x: 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "one")
    monkeypatch.chdir(tmp_path)
    src = GitSource(str(repo), None, Path("state"))
    tree = src.tree(src.fetch())
    assert (tree / "clusters" / "a.yaml").read_text() == "x: 1\n"


def test_a_detached_local_repo_without_a_branch_is_a_clear_error(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "-b", "main")
    (repo / "f").write_text("1")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "one")
    git(repo, "checkout", "--quiet", "--detach")
    with pytest.raises(SourceError, match="HEAD is detached; pass --branch"):
        GitSource(str(repo), None, tmp_path / "cache")


def modes_under(top: Path) -> dict[str, int]:
    return {
        str(p.relative_to(top)): stat.S_IMODE(p.lstat().st_mode)
        for p in [top, *top.rglob("*")]
        if not p.is_symlink()
    }


def test_mirror_and_trees_are_private_whatever_the_umask(repo: Path, tmp_path: Path) -> None:
    (repo / "bin").mkdir()
    (repo / "bin/render.sh").write_text("#!/bin/sh\n")
    (repo / "bin/render.sh").chmod(0o755)
    commit_files(repo, {"apps/web/secret.yaml": "kind: Secret\n"}, "A secret and a script")
    cache = tmp_path / "state" / "source"
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from reconciler.source import GitSource\n"
        "os.umask(0o022)\n"
        "src = GitSource(sys.argv[1], None, Path(sys.argv[2]))\n"
        "print(src.tree(src.fetch()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(repo), str(cache)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    tree = Path(done.stdout.strip())

    found = modes_under(cache)
    assert found["."] == found["mirror.git"] == found["trees"] == 0o700
    tree_rel = str(tree.relative_to(cache))
    assert found[tree_rel] == 0o700
    assert found[f"{tree_rel}/apps/web/secret.yaml"] == 0o600
    assert found[f"{tree_rel}/bin/render.sh"] == 0o700  # still executable, by its owner only
    loose = {name: oct(mode) for name, mode in found.items() if mode & 0o077}
    assert loose == {}


def test_an_older_world_readable_mirror_is_made_private(repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    GitSource(str(repo), None, cache).fetch()
    for path in [cache, *cache.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)

    src = GitSource(str(repo), None, cache)
    src.tree(src.fetch())

    assert {n: oct(m) for n, m in modes_under(cache).items() if m & 0o077} == {}


def test_drop_tree_deletes_an_exported_tree_and_drop_trees_all_of_them(
    repo: Path, tmp_path: Path
) -> None:
    src = GitSource(str(repo), None, tmp_path / "cache", keep_trees=5)
    head = src.fetch()
    first, second = src.tree(git(repo, "rev-parse", "HEAD~1")), src.tree(head)

    src.drop_tree(head)
    assert not second.exists()
    assert first.is_dir()
    src.drop_tree(head)  # gone already: fine

    src.drop_trees()
    assert list((tmp_path / "cache" / "trees").iterdir()) == []
    assert src.tree(head).is_dir()  # exported again when asked
