"""Git credentials from files: a token for https (checked against a real Git HTTP server on
loopback that demands it) and an SSH key with pinned host keys (checked with ssh's own view of
its options). Tokens never show in errors."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from reconciler.errors import SourceError
from reconciler.gitcredentials import GitCredentials
from reconciler.source import GitSource
from tests.githttp import serve

TOKEN = "glpat-7f3e2d1c0b9a"


def bare_repo_with_a_commit(root: Path) -> str:
    work = root / "work"
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.test"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "file.txt").write_text("hello\n")
    subprocess.run(["git", "-C", str(work), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(work), *identity, "commit", "-q", "-m", "c"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "repo.git")], check=True)
    return subprocess.run(
        ["git", "-C", str(work), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_a_token_file_authenticates_an_https_fetch_and_never_shows(tmp_path: Path) -> None:
    sha = bare_repo_with_a_commit(tmp_path)
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    with serve(tmp_path, "oauth2", TOKEN) as base:
        url = f"{base}/repo.git"
        creds = GitCredentials(token_file=token, username="oauth2")
        assert GitSource(url, "main", tmp_path / "a", credentials=creds).fetch() == sha

        with pytest.raises(SourceError) as anonymous:
            GitSource(url, "main", tmp_path / "b").fetch()
        assert "127.0.0.1" in str(anonymous.value)

        token.write_text("wrong-" + TOKEN)  # rotated (badly): read again at the next fetch
        with pytest.raises(SourceError) as refused:
            GitSource(url, "main", tmp_path / "a", credentials=creds).fetch()
        assert TOKEN not in str(refused.value) and "wrong-" not in str(refused.value)


def test_an_ssh_key_is_used_alone_with_strict_pinned_host_keys(tmp_path: Path) -> None:
    key, known = tmp_path / "id", tmp_path / "known_hosts"
    key.write_text("not really a key\n")
    known.write_text("git.example.test ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\n")
    env = GitCredentials(ssh_key_file=key, known_hosts_file=known).environment()
    command = shlex.split(env["GIT_SSH_COMMAND"])
    # ssh -G prints the options it would use for a host, without connecting.
    shown = subprocess.run(
        [*command, "-G", "git.example.test"], check=True, capture_output=True, text=True
    ).stdout.lower()
    assert f"identityfile {key}".lower() in shown
    assert f"userknownhostsfile {known}".lower() in shown
    assert "stricthostkeychecking true" in shown
    assert "identitiesonly yes" in shown and "batchmode yes" in shown


@pytest.mark.parametrize(
    ("url", "creds", "message"),
    [
        ("ssh://git@h/r.git", {"ssh_key_file": "id"}, "needs a known_hosts file"),
        ("https://h/r.git", {"ssh_key_file": "id", "known_hosts_file": "kh"}, "ssh:// or host"),
        ("git@h:r.git", {"token_file": "token"}, "a token works with https://"),
        ("https://h/r.git", {"token_file": "missing"}, "--git-token-file"),
    ],
)
def test_credentials_that_cannot_work_are_one_line_errors_at_start(
    tmp_path: Path, url: str, creds: dict[str, str], message: str
) -> None:
    for name in ("id", "kh", "token"):
        (tmp_path / name).write_text("x\n")
    files = {field: tmp_path / name for field, name in creds.items()}
    with pytest.raises(SourceError, match=message):
        GitSource(url, "main", tmp_path / "cache", credentials=GitCredentials(**files))
