"""How each component runs: etcd's and each kube-apiserver's command line, the kubeconfigs
(every cluster for users; one cluster for its controllers and kwok), where logs and keys go."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import yaml

from reconciler.devenv.processes import spawn
from reconciler.devenv.state import ClusterInfo, DevEnvState


def pki_dir(state: DevEnvState) -> Path:
    return Path(state.directory) / "pki"


def worker_log(state: DevEnvState, cluster: str, worker: str) -> Path:
    return Path(state.directory) / f"{worker}-{cluster}.log"


def spawn_etcd(
    state: DevEnvState, etcd_bin: Path, die_with_parent: bool
) -> subprocess.Popen[bytes]:
    directory = Path(state.directory)
    peer = f"http://127.0.0.1:{state.etcd_peer_port}"
    return spawn(
        [
            str(etcd_bin),
            "--name=devenv",
            f"--data-dir={directory / 'etcd-data'}",
            f"--listen-client-urls=http://127.0.0.1:{state.etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{state.etcd_port}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=devenv={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        Path(state.etcd_log),
        die_with_parent,
    )


def spawn_apiserver(
    state: DevEnvState, info: ClusterInfo, apiserver_bin: Path, die_with_parent: bool
) -> subprocess.Popen[bytes]:
    pki = pki_dir(state)
    cluster_dir = pki / info.name
    return spawn(
        [
            str(apiserver_bin),
            f"--etcd-servers=http://127.0.0.1:{state.etcd_port}",
            f"--etcd-prefix=/clusters/{info.name}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={info.port}",
            f"--cert-dir={cluster_dir}",
            f"--tls-cert-file={cluster_dir / 'serving.crt'}",
            f"--tls-private-key-file={cluster_dir / 'serving.key'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer=https://{info.name}.devenv.reconciler.local",
            f"--service-account-key-file={cluster_dir / 'sa.pub'}",
            f"--service-account-signing-key-file={cluster_dir / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            # Pods need no service-account tokens: no kubelet runs their containers (kwok
            # only plays their status), and light clusters have no token controller at all.
            "--disable-admission-plugins=ServiceAccount",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
        ],
        Path(info.log),
        die_with_parent,
    )


def write_kubeconfig(state: DevEnvState) -> None:
    ca_b64 = base64.b64encode(Path(state.ca).read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": c.name, "cluster": {"server": c.server, "certificate-authority-data": ca_b64}}
            for c in state.clusters
        ],
        "users": [{"name": "reconciler-devenv-admin", "user": {"token": state.token}}],
        "contexts": [
            {"name": c.name, "context": {"cluster": c.name, "user": "reconciler-devenv-admin"}}
            for c in state.clusters
        ],
        "current-context": state.clusters[0].name if state.clusters else "",
        "preferences": {},
    }
    path = Path(state.kubeconfig)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)


def cluster_kubeconfig(state: DevEnvState, info: ClusterInfo) -> Path:
    """A kubeconfig with just this cluster, for its controllers and kwok."""
    ca_b64 = base64.b64encode(Path(state.ca).read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": info.name,
                "cluster": {"server": info.server, "certificate-authority-data": ca_b64},
            }
        ],
        "users": [{"name": "admin", "user": {"token": state.token}}],
        "contexts": [{"name": info.name, "context": {"cluster": info.name, "user": "admin"}}],
        "current-context": info.name,
    }
    path = pki_dir(state) / info.name / "kubeconfig"
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.replace(path)
    return path
