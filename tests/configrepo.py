"""Build small config repos in a temp dir for e2e tests (real files, the real loader)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

CLUSTER_LABELS = {
    "beijing-1": {"region": "cn-beijing"},
    "beijing-2": {"region": "cn-beijing"},
    "us-west-1": {"region": "us-west", "provider": "AWS"},
}


def unique(prefix: str) -> str:
    """A name no other test uses (the clusters are shared by the whole run)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def write_clusters(root: Path, labels: dict[str, dict[str, str]] | None = None) -> None:
    for name, cluster_labels in (labels or CLUSTER_LABELS).items():
        write(
            root / "clusters" / f"{name}.yaml",
            {
                "apiVersion": "reconciler.io/v1alpha1",
                "kind": "Cluster",
                "metadata": {"name": name, "labels": cluster_labels},
                "spec": {"vars": {"domain": f"{name}.example.com"}},
            },
        )


def write_cluster_entries(root: Path, entries: dict[str, str]) -> None:
    """Cluster entries: name -> kubeconfig context."""
    for name, context in entries.items():
        write(
            root / "clusters" / f"{name}.yaml",
            {
                "apiVersion": "reconciler.io/v1alpha1",
                "kind": "Cluster",
                "metadata": {"name": name},
                "spec": {"context": context},
            },
        )


def write_app(
    root: Path,
    name: str,
    manifests: list[dict[str, Any]],
    *,
    namespace: str | None = None,
    placement: dict[str, Any] | None = None,
    sync: dict[str, Any] | None = None,
    overrides: list[dict[str, Any]] | None = None,
    rollout: dict[str, Any] | None = None,
) -> None:
    spec: dict[str, Any] = {
        "source": {"manifests": "manifests/"},
        "placement": placement or {"clusters": list(CLUSTER_LABELS)},
    }
    if namespace:
        spec["namespace"] = namespace
    if sync:
        spec["sync"] = sync
    if overrides:
        spec["overrides"] = overrides
    if rollout is not None:
        spec["rollout"] = rollout
    app_dir = root / "apps" / name
    write(
        app_dir / "app.yaml",
        {
            "apiVersion": "reconciler.io/v1alpha1",
            "kind": "App",
            "metadata": {"name": name},
            "spec": spec,
        },
    )
    manifest_dir = app_dir / "manifests"
    if manifest_dir.exists():
        for old in manifest_dir.iterdir():
            old.unlink()
    manifest_dir.mkdir(parents=True, exist_ok=True)
    (manifest_dir / "all.yaml").write_text(yaml.safe_dump_all(manifests, sort_keys=False))


def write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def configmap(name: str, data: dict[str, str], namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def deployment(
    name: str, replicas: int = 2, image: str = "crccheck/hello-world:1.0"
) -> dict[str, Any]:
    """A Deployment that relies on server defaults (strategy, protocol, dnsPolicy, ...)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": image, "ports": [{"containerPort": 8000}]}
                    ]
                },
            },
        },
    }


def service(name: str) -> dict[str, Any]:
    """A Service whose clusterIP the server assigns."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8000}]},
    }


def secret(name: str, password: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"password": password},
    }


def crd_and_resource(group: str, kind: str, name: str) -> list[dict[str, Any]]:
    plural = kind.lower() + "s"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "size": {"type": "integer", "default": 1},
                                        "color": {"type": "string"},
                                    },
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    resource = {
        "apiVersion": f"{group}/v1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {"color": "blue"},
    }
    return [crd, resource]
