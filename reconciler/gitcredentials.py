"""Credentials for fetching a remote config repo, from files (a mounted Secret), handed to git.

SSH: a private key file and a pinned ``known_hosts`` file (host keys are checked strictly; no
other ssh config, agent or key is used). HTTPS: a token file, sent as the password of
``username`` by a credential helper that reads the file at each fetch, so a rotated token is
picked up and the token is never on a command line, in git's config or in the environment.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import SourceError

# The helper answers git's `get` with the username and the token file's content.
_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    "printf 'username=%s\\n' \"$RECONCILER_GIT_USERNAME\"; "
    'printf \'password=%s\\n\' "$(cat "$RECONCILER_GIT_TOKEN_FILE")"; }; f'
)


@dataclass(frozen=True)
class GitCredentials:
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None
    token_file: Path | None = None
    username: str = "git"

    @property
    def empty(self) -> bool:
        return not (self.ssh_key_file or self.known_hosts_file or self.token_file)

    def check(self, url: str) -> None:
        """One-line SourceError for files that cannot be read or do not fit ``url``."""
        if self.ssh_key_file and self.token_file:
            raise SourceError(f"{url}: give an SSH key or a token, not both")
        if self.ssh_key_file and not self.known_hosts_file:
            raise SourceError(
                f"{url}: an SSH key needs a known_hosts file (--git-known-hosts-file) to pin the "
                "server's host key"
            )
        ssh = url.startswith("ssh://") or (":" in url.split("/")[0] and "://" not in url)
        if self.token_file and ssh:
            raise SourceError(f"{url}: a token works with https:// URLs; for ssh give a key")
        if self.ssh_key_file and not ssh:
            raise SourceError(f"{url}: an SSH key works with ssh:// or host:path URLs")
        for option, path in (
            ("--git-ssh-key-file", self.ssh_key_file),
            ("--git-known-hosts-file", self.known_hosts_file),
            ("--git-token-file", self.token_file),
        ):
            if path is not None and not os.access(path, os.R_OK):
                reason = "no such file" if not path.exists() else "not readable"
                raise SourceError(f"{option} {path}: {reason}")

    def config(self) -> list[tuple[str, str]]:
        """git config entries (passed through the environment)."""
        if self.token_file is None:
            return []
        # An empty helper first drops helpers from git's own config (a cache, a keychain).
        return [("credential.helper", ""), ("credential.helper", _HELPER)]

    def environment(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.known_hosts_file is not None:
            ssh = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes"]
            ssh += ["-o", "StrictHostKeyChecking=yes"]
            ssh += ["-o", f"UserKnownHostsFile={self.known_hosts_file}"]
            if self.ssh_key_file is not None:
                ssh += ["-o", "IdentitiesOnly=yes", "-o", f"IdentityFile={self.ssh_key_file}"]
                ssh += ["-o", "IdentityAgent=none"]
            env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        if self.token_file is not None:
            env["RECONCILER_GIT_TOKEN_FILE"] = str(self.token_file)
            env["RECONCILER_GIT_USERNAME"] = self.username
        return env

    def secrets(self) -> list[str]:
        """What must never be shown (the token as it is now), for redaction."""
        if self.token_file is None:
            return []
        try:
            token = self.token_file.read_text().strip()
        except OSError:
            return []
        return [token] if token else []
