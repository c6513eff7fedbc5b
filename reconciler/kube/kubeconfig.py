"""The kubeconfig, read once (every file of ``$KUBECONFIG`` merged) and shared by all clients.

The files are read and merged here as the ``kubernetes`` package's ``KubeConfigMerger`` does
(an entry's first definition wins; the last ``current-context`` set wins; each entry keeps the
file it came from, for relative paths). A context of the simple kinds local kubeconfigs hold
(a server, a CA, a client certificate and key or a bearer token) becomes a
:class:`Connection` without importing the ``kubernetes`` package (slow to import: a good part of
a CLI run); every other context (exec and auth-provider plugins, token files, basic auth, or
anything this reader does not know) is configured by that package's own loader, as before.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import copy
import hashlib
import os
import shutil
import tempfile
import threading
from typing import TYPE_CHECKING, Any

import yaml

from reconciler.errors import ReconcilerError
from reconciler.kube.connection import Connection, CredentialsError, configured

if TYPE_CHECKING:
    from kubernetes import client as k8s

# The kubernetes package writes a context's certificate data to temporary files it shares by
# content, and names a file before it has written it: contexts configured at the same time could
# read an empty CA ("no certificate or crl found"). One context at a time.
_CONFIGURING = threading.RLock()

_SECTIONS = ("clusters", "contexts", "users")
# What a context's cluster and user may hold for this reader to set it up alone: anything else
# goes to the kubernetes package's loader. ``extensions`` means nothing to either.
_CLUSTER_KEYS = frozenset(
    {
        "server",
        "certificate-authority",
        "certificate-authority-data",
        "insecure-skip-tls-verify",
        "tls-server-name",
        "extensions",
    }
)
_USER_KEYS = frozenset(
    {
        "token",
        "client-certificate",
        "client-certificate-data",
        "client-key",
        "client-key-data",
        "extensions",
    }
)

Entry = tuple[str, dict[str, Any]]  # (file it came from, the named entry)


class Kubeconfig:
    """A kubeconfig read once (every file of ``$KUBECONFIG`` merged), shared by all clients.

    Parsing per cluster would cost O(contexts) each, O(clusters²) in all: minutes at 1,000.
    """

    def __init__(self, path: str | None = None) -> None:
        location = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
        self.location = location
        self.origin = f"kubeconfig {location}"
        self._files: list[tuple[str, dict[str, Any]]] = []
        self._entries: dict[str, list[Entry]] = {section: [] for section in _SECTIONS}
        self._current: Any = None
        self._loader_config: Any = None  # the merged config as the kubernetes package holds it
        for name in location.split(os.pathsep):
            if not name:
                continue
            file = os.path.expanduser(name)
            if os.path.exists(file):
                self._read(file)
        if not self._files:
            raise ReconcilerError(
                f"kubeconfig {location}: no such file (set --kubeconfig or $KUBECONFIG)"
            )
        self.contexts = sorted(str(entry.get("name")) for _, entry in self._entries["contexts"])

    def _read(self, file: str) -> None:
        try:
            with open(file) as stream:
                config = yaml.safe_load(stream)
        except (yaml.YAMLError, OSError) as err:
            raise ReconcilerError(f"kubeconfig {self.location}: cannot be read: {err}") from err
        if config is None:
            raise ReconcilerError(
                f"kubeconfig {self.location}: cannot be read: Invalid kube-config. "
                f"{file} file is empty"
            )
        if not isinstance(config, dict):
            raise ReconcilerError(
                f"kubeconfig {self.location}: cannot be read: {file} is not a map"
            )
        for section in _SECTIONS:
            merged = self._entries[section]
            for entry in config.get(section) or []:
                if not isinstance(entry, dict):
                    raise ReconcilerError(
                        f"kubeconfig {self.location}: cannot be read: {file}: an entry of "
                        f"{section} is not a map"
                    )
                if all(known.get("name") != entry.get("name") for _, known in merged):
                    merged.append((file, entry))
        if "current-context" in config:
            self._current = config["current-context"]
        self._files.append((file, config))

    def connection(self, context: str) -> Connection:
        """How to reach ``context``; CredentialsError when it cannot be used."""
        if context not in self.contexts:
            raise CredentialsError(self._unknown(context))
        simple = self._simple(context)
        if simple is not None:
            return simple
        return configured(lambda configuration: self.configure(context, configuration))

    def configure(self, context: str, configuration: k8s.Configuration) -> None:
        """Set up ``configuration`` with the kubernetes package's own loader (ConfigException
        when it cannot)."""
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.config.kube_config import KubeConfigLoader

        if context not in self.contexts:
            raise ConfigException(self._unknown(context))
        with _CONFIGURING:
            loader = KubeConfigLoader(
                config_dict=self._as_loaded(), config_base_path=None, active_context=context
            )
            loader.load_and_set(configuration)

    def _unknown(self, context: str) -> str:
        return f"it has no context {context!r} (contexts: {', '.join(self.contexts) or 'none'})"

    def _as_loaded(self) -> Any:
        """The merged config as ``KubeConfigMerger`` builds it (ConfigNodes keep the file each
        entry came from)."""
        from kubernetes.config.kube_config import ConfigNode

        with _CONFIGURING:
            if self._loader_config is None:
                first_file, first = self._files[0]
                value = copy.deepcopy(first)
                for section in _SECTIONS:
                    value[section] = [
                        ConfigNode(f"{file}/{entry}", entry, file)
                        for file, entry in self._entries[section]
                    ]
                if any("current-context" in config for _, config in self._files):
                    value["current-context"] = self._current
                self._loader_config = ConfigNode(first_file, value, first_file)
            return self._loader_config

    def _simple(self, context: str) -> Connection | None:
        """``context`` set up without the kubernetes package, as its loader would set it up;
        None when it is not of the simple kinds (or not well formed: the loader says why)."""
        found = _named(self._entries["contexts"], context)
        if found is None or not isinstance(found[1].get("context"), dict):
            return None
        spec: dict[str, Any] = found[1]["context"]
        cluster_entry = _named(self._entries["clusters"], spec.get("cluster"))
        if cluster_entry is None:
            return None
        cluster_file, cluster_named = cluster_entry
        cluster = cluster_named.get("cluster")
        user: Any = None
        if spec.get("user") and self._entries["users"]:
            user_entry = _named(self._entries["users"], spec["user"])
            if user_entry is None:
                return None
            user = user_entry[1].get("user")
            if not isinstance(user, dict):
                return None
        if not isinstance(cluster, dict) or not set(cluster) <= _CLUSTER_KEYS:
            return None
        if user is not None and not set(user) <= _USER_KEYS:
            return None
        # Present but of another type, the loader fails or reads it otherwise: it says which.
        server = cluster.get("server")
        insecure = cluster.get("insecure-skip-tls-verify", False)
        server_name = cluster.get("tls-server-name", "")
        token = (user or {}).get("token", "")
        if not (isinstance(server, str) and server.rstrip("/")) or not isinstance(insecure, bool):
            return None
        if not isinstance(server_name, str) or not isinstance(token, str):
            return None
        host = server.rstrip("/")
        ca_file = cert_file = key_file = None
        if host.startswith("https"):
            # The kubernetes loader resolves the user's files too against the cluster's file.
            base = os.path.abspath(os.path.dirname(cluster_file))
            try:
                ca_file = _file_or_data(cluster, "certificate-authority", base)
                cert_file = _file_or_data(user, "client-certificate", base)
                key_file = _file_or_data(user, "client-key", base)
            except _NotSimple:
                return None
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return Connection(
            host=host,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            verify=not insecure,
            server_name=server_name or None,
            headers=lambda: dict(headers),
        )


def _named(entries: list[Entry], name: Any) -> Entry | None:
    """The entry called ``name``; None when there is none or some entry has no name (the
    loader refuses those)."""
    if any("name" not in entry for _, entry in entries):
        return None
    for entry in entries:
        if entry[1].get("name") == name:
            return entry
    return None


class _NotSimple(Exception):
    """A file or data field the kubernetes loader would fail on or read otherwise."""


def _file_or_data(section: dict[str, Any] | None, key: str, base: str) -> str | None:
    """The file holding ``section``'s ``<key>-data`` (base64, preferred) or ``<key>`` (a path,
    relative to ``base``), as the kubernetes loader finds it."""
    if not section:
        return None
    data_key = f"{key}-data"
    if data_key in section:
        data = section[data_key]
        if not isinstance(data, str):
            raise _NotSimple(data_key)
        if not data:
            return None
        try:
            content = base64.standard_b64decode(data.encode())
        except (binascii.Error, ValueError):
            raise _NotSimple(data_key) from None
        return _data_file(content)
    if key in section:
        path = section[key]
        if not (isinstance(path, str) and path):
            raise _NotSimple(key)
        file = os.path.normpath(os.path.join(base, path))
        if not os.path.isfile(file):
            raise _NotSimple(key)  # the loader's "File does not exist"
        return file
    return None


_DATA_FILES: dict[str, str] = {}  # digest of content -> file holding it
_DATA_DIR: list[str] = []  # the private directory, once made


def _data_file(content: bytes) -> str:
    """A file holding ``content`` (a CA, a client certificate or key from a kubeconfig's data
    fields: the TLS library reads files), in a private directory removed at exit. Written under
    another name first: a file is never seen half written."""
    digest = hashlib.sha256(content).hexdigest()
    with _CONFIGURING:
        known = _DATA_FILES.get(digest)
        if known is not None and os.path.isfile(known):
            return known
        if not _DATA_DIR or not os.path.isdir(_DATA_DIR[0]):
            _DATA_DIR[:] = [tempfile.mkdtemp(prefix="reconciler-kubeconfig-")]
            atexit.register(shutil.rmtree, _DATA_DIR[0], True)
        fd, partial = tempfile.mkstemp(dir=_DATA_DIR[0])
        with os.fdopen(fd, "wb") as stream:
            stream.write(content)
        file = os.path.join(_DATA_DIR[0], digest)
        os.replace(partial, file)
        _DATA_FILES[digest] = file
        return file
