"""The kubeconfig, read once (every file of ``$KUBECONFIG`` merged) and shared by all clients."""

from __future__ import annotations

import os
import threading

import yaml
from kubernetes import client as k8s
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.kube_config import ConfigNode, KubeConfigLoader, KubeConfigMerger

from reconciler.errors import ReconcilerError

# The kubernetes package writes a context's certificate data to temporary files it shares by
# content, and names a file before it has written it: contexts configured at the same time could
# read an empty CA ("no certificate or crl found"). One context at a time.
_CONFIGURING = threading.RLock()


class Kubeconfig:
    """A kubeconfig read once (every file of ``$KUBECONFIG`` merged), shared by all clients.

    Parsing per cluster would cost O(contexts) each, O(clusters²) in all: minutes at 1,000.
    """

    def __init__(self, path: str | None = None) -> None:
        location = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
        try:
            self._merged = KubeConfigMerger(location)
        except (yaml.YAMLError, OSError, ConfigException) as err:
            raise ReconcilerError(f"kubeconfig {location}: cannot be read: {err}") from err
        if self._merged.config is None:
            raise ReconcilerError(
                f"kubeconfig {location}: no such file (set --kubeconfig or $KUBECONFIG)"
            )
        self.location = location
        self.origin = f"kubeconfig {location}"
        entries = self._merged.config.value.get("contexts") or []
        self.contexts = sorted(
            str((e.value if isinstance(e, ConfigNode) else e).get("name")) for e in entries
        )

    def configure(self, context: str, configuration: k8s.Configuration) -> None:
        if context not in self.contexts:
            raise ConfigException(
                f"it has no context {context!r} (contexts: {', '.join(self.contexts) or 'none'})"
            )
        with _CONFIGURING:
            loader = KubeConfigLoader(
                config_dict=self._merged.config, config_base_path=None, active_context=context
            )
            loader.load_and_set(configuration)
