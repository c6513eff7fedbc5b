"""Helm renders as the cluster would be seen by helm install: its own Kubernetes version and
served API versions, asked of the real kube-apiserver by live commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kubernetes import client

from tests.configrepo import unique, write

CHART_YAML = 'apiVersion: v2\nname: podinfo-like\nversion: 6.7.0\nkubeVersion: ">=1.23.0-0"\n'
TEMPLATE = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: caps\ndata:\n"
    "  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
    '  deployments: {{ .Capabilities.APIVersions.Has "apps/v1/Deployment" | quote }}\n'
)


def test_a_chart_with_a_kube_version_constraint_renders_with_the_clusters_own_version(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    root, app, ns = tmp_path / "repo", unique("caps"), unique("ns")
    write(
        root / "clusters" / "beijing-1.yaml",
        {
            "apiVersion": "reconciler.io/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": "beijing-1"},
            "spec": {"kubeVersion": "v1.20.0"},  # what offline renders assume: too old
        },
    )
    write(
        root / "apps" / app / "app.yaml",
        {
            "apiVersion": "reconciler.io/v1alpha1",
            "kind": "App",
            "metadata": {"name": app},
            "spec": {
                "namespace": ns,
                "source": {"helm": {"chart": "chart/"}},
                "placement": {"clusters": ["beijing-1"]},
            },
        },
    )
    chart = root / "apps" / app / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(CHART_YAML)
    (chart / "templates" / "caps.yaml").write_text(TEMPLATE)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    offline = cli("render", str(root))
    assert offline.returncode == 2
    assert "chart requires kubeVersion: >=1.23.0-0" in offline.stderr
    assert "v1.20.0" in offline.stderr

    applied = cli("apply", str(root), "--kubeconfig", str(kubeconfig), "--instance", app)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    live = client.CoreV1Api(api_clients["beijing-1"]).read_namespaced_config_map("caps", ns)
    version = client.VersionApi(api_clients["beijing-1"]).get_code().git_version
    assert live.data == {"kube": version, "deployments": "true"}
