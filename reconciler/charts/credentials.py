"""Credentials for chart sources, from a file the daemon or CLI is given (never from the repo).

``--chart-credentials FILE`` (or ``$RECONCILER_CHART_CREDENTIALS``) is a YAML mapping from URL
prefixes (``https://charts.example.com/private/``, ``oci://registry.example.com/team/``) to
what to send there. Secrets are read from files or environment variables when a request needs
them, so a rotated token file is picked up without a restart; no secret is ever held in the
configuration itself, printed or logged.

.. code-block:: yaml

    https://charts.example.com/private/:
      username: deploy               # or usernameFile / usernameEnv
      passwordFile: /run/secrets/charts-password   # or passwordEnv
    oci://registry.example.com/team/:
      tokenFile: /run/secrets/registry-token       # a bearer token (or tokenEnv)
    https://charts.internal.example.com/:
      caFile: /etc/ssl/internal-ca.pem             # trusted besides the system CAs
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import ChartError
from reconciler.yamlsrc import YamlError, load_documents

_FIELDS = {
    "username": "username",
    "usernameFile": "username_file",
    "usernameEnv": "username_env",
    "passwordFile": "password_file",
    "passwordEnv": "password_env",
    "tokenFile": "token_file",
    "tokenEnv": "token_env",
    "caFile": "ca_file",
}


@dataclass(frozen=True)
class SourceCredentials:
    """What to send to URLs under ``prefix``. Holds file paths and variable names, no secret."""

    prefix: str
    username: str | None = None
    username_file: str | None = None
    username_env: str | None = None
    password_file: str | None = None
    password_env: str | None = None
    token_file: str | None = None
    token_env: str | None = None
    ca_file: str | None = None

    def basic(self) -> tuple[str, str] | None:
        """(username, password) when basic auth is configured."""
        user = self.username or _secret(self.username_file, self.username_env, self.prefix)
        password = _secret(self.password_file, self.password_env, self.prefix)
        if user is None and password is None:
            return None
        return user or "", password or ""

    def token(self) -> str | None:
        """A bearer token when one is configured."""
        return _secret(self.token_file, self.token_env, self.prefix)

    def ssl_context(self) -> ssl.SSLContext | None:
        """System CAs plus ``caFile``, when one is configured."""
        if self.ca_file is None:
            return None
        context = ssl.create_default_context()
        try:
            context.load_verify_locations(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as err:
            raise ChartError(
                f"chart credentials for {self.prefix}: cannot load caFile {self.ca_file}: "
                f"{getattr(err, 'strerror', None) or err}"
            ) from err
        return context


def _secret(file: str | None, env: str | None, prefix: str) -> str | None:
    if file is not None:
        try:
            return Path(file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or type(err).__name__
            raise ChartError(
                f"chart credentials for {prefix}: cannot read {file}: {reason}"
            ) from err
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise ChartError(f"chart credentials for {prefix}: ${env} is not set")
        return value.strip()
    return None


def _under(url: str, prefix: str) -> bool:
    """``url`` is ``prefix`` or below it (a host prefix never matches a longer host name)."""
    if not url.startswith(prefix):
        return False
    return len(url) == len(prefix) or prefix.endswith("/") or url[len(prefix)] in "/?#"


@dataclass(frozen=True)
class ChartCredentials:
    entries: tuple[SourceCredentials, ...] = ()

    def for_url(self, url: str) -> SourceCredentials | None:
        """The entry with the longest prefix that ``url`` is under, if any."""
        found = [e for e in self.entries if _under(url, e.prefix)]
        return max(found, key=lambda e: len(e.prefix)) if found else None

    @classmethod
    def load(cls, path: Path) -> ChartCredentials:
        """Read a credentials file; every problem is a ChartError naming file:line."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or type(err).__name__
            raise ChartError(f"{path}: cannot read chart credentials: {reason}") from err
        try:
            docs = load_documents(text)
        except YamlError as err:
            raise ChartError(f"{path}: not valid YAML: {err}") from err
        if not docs or docs[0].value is None:
            return cls()
        doc = docs[0]
        if len(docs) > 1 or not isinstance(doc.value, dict):
            raise ChartError(f"{path}:1: expected one mapping of URL prefix -> credentials")
        entries = []
        for prefix, settings in doc.value.items():
            where = f"{path}:{doc.line_of((prefix,))}"
            entries.append(_entry(where, str(prefix), settings))
        return cls(tuple(entries))


def _entry(where: str, prefix: str, settings: Any) -> SourceCredentials:
    if not prefix.startswith(("https://", "http://", "oci://")):
        raise ChartError(f"{where}: {prefix!r} is not an https://, http:// or oci:// URL prefix")
    if not isinstance(settings, dict):
        raise ChartError(f"{where}: {prefix}: expected a mapping of {', '.join(_FIELDS)}")
    values: dict[str, str] = {}
    for key, value in settings.items():
        if key in ("password", "token"):
            raise ChartError(
                f"{where}: {prefix}: {key} is not taken inline; use {key}File or {key}Env"
            )
        if key not in _FIELDS:
            raise ChartError(
                f"{where}: {prefix}: unknown field {key!r} (one of {', '.join(_FIELDS)})"
            )
        if not isinstance(value, str) or not value:
            raise ChartError(f"{where}: {prefix}: {key} must be a non-empty string")
        values[_FIELDS[key]] = value
    entry = SourceCredentials(prefix, **values)
    if (entry.token_file or entry.token_env) and (entry.password_file or entry.password_env):
        raise ChartError(f"{where}: {prefix}: set a password or a token, not both")
    return entry
