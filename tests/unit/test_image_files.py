"""The Dockerfile pins the helm, kustomize and Kubernetes versions the devenv and renders use."""

from __future__ import annotations

import re
from pathlib import Path

from reconciler import toolchain

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def _arg(name: str) -> str:
    found = re.findall(rf"^ARG {name}=(\S+)$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert len(found) == 1, f"Dockerfile: expected one `ARG {name}=...`, found {found}"
    return found[0]


def test_dockerfile_pins_the_toolchain_versions() -> None:
    assert _arg("HELM_VERSION") == toolchain.HELM_VERSION
    assert _arg("KUSTOMIZE_VERSION") == toolchain.KUSTOMIZE_VERSION
    assert _arg("KUBERNETES_VERSION") == toolchain.KUBERNETES_VERSION


def test_dockerfile_takes_its_base_images_as_build_arguments() -> None:
    text = DOCKERFILE.read_text()
    assert _arg("PYTHON_IMAGE") and _arg("GO_IMAGE")
    froms = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert froms and all(image in ("${PYTHON_IMAGE}", "${GO_IMAGE}") for image in froms)
