"""SSH fetches of the config repo, end to end: the daemon's GitSource with a key file and a
pinned known_hosts file, against a real Git SSH server on loopback (tests/gitssh.py). A wrong
host key fails fast with one line; the private key never shows."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import asyncssh
import pytest

from reconciler.errors import SourceError
from reconciler.gitcredentials import GitCredentials
from reconciler.source import GitSource
from tests.gitssh import serve, write_key


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


def _key_body(key: Path) -> list[str]:
    """The base64 lines of the private key (any one of them showing is a leak)."""
    return [line for line in key.read_text().splitlines() if line and "PRIVATE KEY" not in line]


def _assert_never_shown(key: Path, *texts: str) -> None:
    for text in texts:
        for line in _key_body(key):
            assert line not in text


def test_a_key_and_pinned_host_key_fetch_over_ssh(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    sha = bare_repo_with_a_commit(tmp_path)
    key, known = tmp_path / "id_ed25519", tmp_path / "known_hosts"
    with serve(tmp_path, write_key(key)) as ssh:
        known.write_text(ssh.known_hosts_line + "\n")
        creds = GitCredentials(ssh_key_file=key, known_hosts_file=known)
        url = f"ssh://git@127.0.0.1:{ssh.port}/repo.git"
        source = GitSource(url, "main", tmp_path / "cache", fetch_timeout=60, credentials=creds)
        assert source.fetch() == sha
        assert (source.tree(sha) / "file.txt").read_text() == "hello\n"
    out, err = capfd.readouterr()
    _assert_never_shown(key, out, err, caplog.text, repr(source))


def test_a_different_host_key_fails_with_one_line_and_no_prompt(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    bare_repo_with_a_commit(tmp_path)
    key, known = tmp_path / "id_ed25519", tmp_path / "known_hosts"
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    with serve(tmp_path, write_key(key)) as ssh:
        known.write_text(f"[127.0.0.1]:{ssh.port} {impostor}\n")
        creds = GitCredentials(ssh_key_file=key, known_hosts_file=known)
        url = f"ssh://git@127.0.0.1:{ssh.port}/repo.git"
        source = GitSource(url, "main", tmp_path / "cache", fetch_timeout=30, credentials=creds)
        started = time.monotonic()
        with pytest.raises(SourceError) as failed:
            source.fetch()
        # Bounded by the fetch timeout: a prompt would wait for it and report a timeout.
        assert time.monotonic() - started < 30
    message = str(failed.value)
    assert "\n" not in message
    assert message == (
        f"ssh://127.0.0.1:{ssh.port}/repo.git: fetch failed: ssh: Host key verification failed."
    )
    out, err = capfd.readouterr()
    _assert_never_shown(key, message, out, err, caplog.text)


def test_an_unknown_client_key_is_refused(tmp_path: Path) -> None:
    bare_repo_with_a_commit(tmp_path)
    key, other, known = tmp_path / "id_ed25519", tmp_path / "other", tmp_path / "known_hosts"
    write_key(other)
    with serve(tmp_path, write_key(key)) as ssh:
        known.write_text(ssh.known_hosts_line + "\n")
        creds = GitCredentials(ssh_key_file=other, known_hosts_file=known)
        url = f"ssh://git@127.0.0.1:{ssh.port}/repo.git"
        source = GitSource(url, "main", tmp_path / "cache", fetch_timeout=30, credentials=creds)
        with pytest.raises(SourceError) as failed:
            source.fetch()
    message = str(failed.value)
    assert "\n" not in message and "fetch failed: ssh: git@127.0.0.1: Permission denied" in message
    _assert_never_shown(other, message)
    _assert_never_shown(key, message)


def test_nothing_listening_is_one_line_naming_ssh(tmp_path: Path) -> None:
    key, known = tmp_path / "id_ed25519", tmp_path / "known_hosts"
    write_key(key)
    known.write_text("[127.0.0.1]:9 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\n")
    creds = GitCredentials(ssh_key_file=key, known_hosts_file=known)
    source = GitSource("ssh://git@127.0.0.1:9/r.git", "main", tmp_path / "c", credentials=creds)
    with pytest.raises(SourceError) as failed:
        source.fetch()
    message = str(failed.value)
    assert "\n" not in message and "fetch failed: ssh: connect to host 127.0.0.1 port 9" in message
