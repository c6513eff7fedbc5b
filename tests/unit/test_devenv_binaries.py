"""Binary provisioning: cache, corruption, build failures (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.devenv import binaries


def test_staging_modules_are_read_from_the_kubernetes_go_mod() -> None:
    go_mod = (
        "module k8s.io/kubernetes\n"
        "replace (\n"
        "\tk8s.io/api => ./staging/src/k8s.io/api\n"
        "\tk8s.io/sample-cli-plugin => ./staging/src/k8s.io/sample-cli-plugin\n"
        "\tgithub.com/x/y => github.com/x/y v1.0.0\n"
        ")\n"
    )
    assert binaries._staging_modules(go_mod) == ["k8s.io/api"]


def test_a_corrupt_cached_binary_does_not_count_as_cached(tmp_path: Path) -> None:
    corrupt = tmp_path / "kube-apiserver"
    corrupt.write_bytes(b"\x7fELF truncated")
    corrupt.chmod(0o755)
    assert not binaries._works(corrupt)


def test_kubebuilder_assets_are_preferred_when_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    assert binaries.ensure("etcd") == fake


def test_a_build_failure_names_the_binary_and_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache"))
    monkeypatch.setenv("GOPROXY", "off")
    with pytest.raises(binaries.ProvisionError) as err:
        binaries.ensure("kustomize", progress=lambda _: None)
    log = tmp_path / "cache" / "build" / f"kustomize-{binaries.KUSTOMIZE_VERSION}" / "build.log"
    assert str(err.value) == f"build of kustomize failed (go install); see {log}"
    assert log.exists()
    assert not binaries.cached_path("kustomize").exists()


def _fake_binary(path: Path, output: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)
    return path


def test_a_cached_helm_without_the_version_stamp_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_CACHE", str(tmp_path))
    built: list[Path] = []

    def build(dest: Path, progress: binaries.Progress) -> None:
        built.append(dest)
        _fake_binary(dest, f'version.BuildInfo{{Version:"{binaries.HELM_VERSION}"}}')

    monkeypatch.setitem(binaries._BUILDERS, "helm", build)
    path = binaries.cached_path("helm")
    # What an unstamped `go install` of helm says about itself.
    _fake_binary(path, 'version.BuildInfo{Version:"v3.22", GitCommit:""}')
    assert binaries.ensure("helm", progress=lambda _: None) == path
    assert built == [path]
    assert binaries.ensure("helm", progress=lambda _: None) == path
    assert built == [path]  # the stamped one is reused


def test_helm_is_cached_per_pinned_kubernetes_version_and_stamped_with_it() -> None:
    major, minor = binaries.KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    assert binaries.cached_path("helm").parent.name.endswith(f"-k8s{major}.{minor}")
    assert f"pkg/chartutil.k8sVersionMinor={minor}" in binaries._HELM_LDFLAGS
    assert f"pkg/lint/rules.k8sVersionMajor={major}" in binaries._HELM_LDFLAGS
    assert f"internal/version.version={binaries.HELM_VERSION}" in binaries._HELM_LDFLAGS


def test_one_kubernetes_build_module_holds_every_control_plane_command() -> None:
    tools = binaries._kubernetes_tools_go()
    for name in ("kube-apiserver", "kubectl", "kube-controller-manager", "kube-scheduler"):
        assert f'"k8s.io/kubernetes/cmd/{name}"' in tools
        assert binaries._BUILDERS[name] is binaries._build_kubernetes_binary
