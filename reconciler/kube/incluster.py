"""In-cluster login: the pod's ServiceAccount (token, CA, namespace) and the API server address.

Used when no kubeconfig is given and the process runs in a pod: ``KUBERNETES_SERVICE_HOST`` and
``KUBERNETES_SERVICE_PORT`` are set and the ServiceAccount's files are mounted (in
``/var/run/secrets/kubernetes.io/serviceaccount``, or ``$RECONCILER_SERVICE_ACCOUNT_DIR``). The
token file is re-read while running (the kubelet rotates bound tokens).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    from kubernetes import client as k8s

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DIR_VARIABLE = "RECONCILER_SERVICE_ACCOUNT_DIR"
HOST_VARIABLE, PORT_VARIABLE = "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"


@dataclass(frozen=True)
class ServiceAccount:
    """The pod's own identity on the cluster it runs in (the management cluster)."""

    host: str
    port: str
    directory: Path
    namespace: str

    @property
    def server(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"in-cluster service account ({self.directory})"

    def configure(self, configuration: k8s.Configuration) -> None:
        from kubernetes.config.incluster_config import InClusterConfigLoader

        loader = InClusterConfigLoader(
            token_filename=str(self.directory / "token"),
            cert_filename=str(self.directory / "ca.crt"),
            environ={HOST_VARIABLE: self.host, PORT_VARIABLE: self.port},
        )
        loader.load_and_set(configuration)


def detect(environ: Mapping[str, str] = os.environ) -> ServiceAccount | None:
    """The ServiceAccount when running in a pod, else None. Half a setup is an error."""
    host, port = environ.get(HOST_VARIABLE, ""), environ.get(PORT_VARIABLE, "")
    directory = Path(environ.get(DIR_VARIABLE) or SERVICE_ACCOUNT_DIR)
    if not host or not port:
        return None
    missing = [f for f in ("token", "ca.crt", "namespace") if not (directory / f).is_file()]
    if missing:
        raise ReconcilerError(
            f"in-cluster: {HOST_VARIABLE} is set but {directory} has no {', '.join(missing)} "
            "(is the ServiceAccount token mounted? or give --kubeconfig)"
        )
    namespace = (directory / "namespace").read_text().strip()
    return ServiceAccount(host=host, port=port, directory=directory, namespace=namespace)
