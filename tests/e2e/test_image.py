"""The container image, built from the Dockerfile with buildah and run with `buildah run
--isolation chroot` (which shares the host's network, so the image reaches the real local
clusters on loopback).

`make image` builds it and runs this file with RECONCILER_IMAGE set. Run alone (or from
`make test`), the fixture builds the image itself through buildah's layer cache, so it always
tests the current code. Without buildah this file is skipped with that reason, unless
RECONCILER_REQUIRE_IMAGE is set (CI sets it: there a missing buildah is a failure).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from reconciler import toolchain

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]  # a cold base build takes minutes

ROOT = Path(__file__).resolve().parents[2]
HOME = "/var/lib/reconciler"
UID = "10001"


def _buildah(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["buildah", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    tag = os.environ.get("RECONCILER_IMAGE")
    if tag:
        return tag
    missing = [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]
    if missing:
        message = f"{' and '.join(missing)} not installed (`make image` installs them)"
        if os.environ.get("RECONCILER_REQUIRE_IMAGE"):
            pytest.fail(f"{message}, and RECONCILER_REQUIRE_IMAGE is set")
        pytest.skip(message)
    tag = "localhost/reconciler:test"
    build = subprocess.run(
        [str(ROOT / "image" / "build.sh"), tag], capture_output=True, text=True, timeout=1700
    )
    assert build.returncode == 0, build.stdout + build.stderr[-4000:]
    return tag


class Container:
    """A working container of the image; ``run`` as the image's user, chroot isolation."""

    def __init__(self, image: str) -> None:
        created = _buildah("from", "--pull=false", image)
        assert created.returncode == 0, created.stderr
        self.id = created.stdout.strip()

    def copy(self, source: Path, dest: str) -> None:
        copied = _buildah("copy", "--chown", f"{UID}:{UID}", self.id, str(source), dest)
        assert copied.returncode == 0, copied.stderr

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return _buildah("run", "--isolation", "chroot", self.id, "--", *args, timeout=timeout)

    def remove(self) -> None:
        _buildah("rm", self.id)


@pytest.fixture
def container(image: str) -> Iterator[Container]:
    box = Container(image)
    try:
        yield box
    finally:
        box.remove()


def test_image_config_runs_the_daemon_as_non_root_listening_for_probes(image: str) -> None:
    inspected = _buildah("inspect", "--type", "image", image)
    assert inspected.returncode == 0, inspected.stderr
    oci = json.loads(inspected.stdout)["OCIv1"]["config"]
    assert oci["User"] == f"{UID}:{UID}"
    assert oci["Entrypoint"] == ["reconciler"]
    assert oci["Cmd"][0] == "run" and "0.0.0.0:9465" in oci["Cmd"]
    assert "9465/tcp" in oci["ExposedPorts"]


def test_image_has_reconciler_pinned_helm_and_kustomize_and_no_compilers(
    container: Container,
) -> None:
    version = container.run("reconciler", "--version")
    assert version.returncode == 0 and "reconciler, version" in version.stdout, version.stderr
    assert container.run("id", "-u").stdout.strip() == UID
    helm = container.run("helm", "version", "--short")
    assert helm.stdout.startswith(toolchain.HELM_VERSION), helm.stdout + helm.stderr
    kustomize = container.run("kustomize", "version")
    assert toolchain.KUSTOMIZE_VERSION in kustomize.stdout, kustomize.stdout + kustomize.stderr
    found = container.run("sh", "-c", "command -v gcc cc c++ clang go make pip3 || true")
    assert found.stdout.strip() == ""


def test_image_validates_the_sample_repo(container: Container) -> None:
    container.copy(ROOT / "sample-repo", f"{HOME}/sample-repo")
    validated = container.run("reconciler", "validate", f"{HOME}/sample-repo")
    assert validated.returncode == 0, validated.stdout + validated.stderr


def test_image_reconciles_the_local_clusters_once(
    container: Container,
    kubeconfig: Path,
    api_clients: dict[str, client.ApiClient],
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "sample-repo", repo)
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.test"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "sample"]):
        subprocess.run(["git", "-C", str(repo), *identity, *args], check=True)
    container.copy(repo, f"{HOME}/repo")
    container.copy(kubeconfig, f"{HOME}/kubeconfig")

    once = container.run(
        "reconciler", "run", "--once", "--repo", f"{HOME}/repo", "--kubeconfig",
        f"{HOME}/kubeconfig", "--state-dir", f"{HOME}/state", "--instance", "image-smoke",
    )  # fmt: skip
    assert once.returncode == 0, once.stdout + once.stderr[-4000:]

    apps = {name: client.AppsV1Api(api) for name, api in api_clients.items()}
    on_aws = apps["us-west-1"].read_namespaced_deployment("hello-world", "demo")
    assert on_aws.metadata.labels["reconciler.io/app"] == "hello-world"
    assert on_aws.spec.replicas == 5  # the AWS override: rendered and applied from the image
    assert apps["beijing-1"].read_namespaced_deployment("hello-world", "demo").spec.replicas != 5
