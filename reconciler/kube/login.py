"""Which credentials to use: the kubeconfig, or in a pod without one, the ServiceAccount."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from reconciler.kube.credentials import CredentialSource, KubeconfigFiles
from reconciler.kube.incluster import detect
from reconciler.kube.members import MemberSecrets


def credential_source(
    kubeconfig: str | None, *, timeout: float, environ: Mapping[str, str] = os.environ
) -> CredentialSource:
    """A kubeconfig given (``--kubeconfig``, ``$KUBECONFIG``) or present (``~/.kube/config``)
    wins. Otherwise, in a pod (``$KUBERNETES_SERVICE_HOST`` and the ServiceAccount's files), the
    management cluster is reached in-cluster and member clusters with the Secrets of its
    namespace; else the kubeconfig's own error says what is missing."""
    default = Path(environ.get("HOME") or Path.home()) / ".kube" / "config"
    if kubeconfig is None and not environ.get("KUBECONFIG") and not default.exists():
        account = detect(environ)
        if account is not None:
            return MemberSecrets(account, timeout=timeout)
    return KubeconfigFiles(kubeconfig)
