"""Provision pinned control-plane and rendering binaries.

Order of preference for each binary: ``KUBEBUILDER_ASSETS`` (the envtest convention; etcd,
kube-apiserver, kubectl only), then a per-user cache keyed by version (and build flavour), then a
build from the Go module proxy into that cache. A cached binary counts only if it runs and
reports the expected version. Builds are serialized by a file lock so parallel test runs and CLI
calls never build twice, and land atomically so a killed build never leaves a half binary.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.toolchain import (
    HELM_FLAVOUR,
    HELM_VERSION,
    KUBERNETES_VERSION,
    KUSTOMIZE_VERSION,
    cache_root,
    cached_binary,
)

ETCD_VERSION = "v3.6.8"  # the etcd that k8s.io/kubernetes v1.36.3 itself requires
KWOK_VERSION = "v0.8.0"
REGISTRY_VERSION = "v3.1.2"  # CNCF distribution registry, for OCI chart sources in tests

# Staging modules that are not published on the module proxy and not needed to build binaries.
_UNPUBLISHED_STAGING = {"k8s.io/sample-cli-plugin"}


class ProvisionError(ReconcilerError):
    """A binary could not be located or built."""


@dataclass(frozen=True)
class Binary:
    name: str
    version: str
    envtest: bool  # may come from KUBEBUILDER_ASSETS
    flavour: str = ""  # part of the cache key: build options that change the binary
    expect: str = ""  # the version command's output must contain this


def _k8s_major_minor() -> tuple[str, str]:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    return major, minor


_K8S_MAJOR, _K8S_MINOR = _k8s_major_minor()

BINARIES: dict[str, Binary] = {
    "etcd": Binary("etcd", ETCD_VERSION, envtest=True),
    "kube-apiserver": Binary("kube-apiserver", KUBERNETES_VERSION, envtest=True),
    "kubectl": Binary("kubectl", KUBERNETES_VERSION, envtest=True),
    "kube-controller-manager": Binary(
        "kube-controller-manager", KUBERNETES_VERSION, envtest=False, expect=KUBERNETES_VERSION
    ),
    "kube-scheduler": Binary(
        "kube-scheduler", KUBERNETES_VERSION, envtest=False, expect=KUBERNETES_VERSION
    ),
    "kwok": Binary("kwok", KWOK_VERSION, envtest=False, expect=KWOK_VERSION.lstrip("v")),
    # Stamped like helm's own release build: `helm version` says HELM_VERSION and its built-in
    # Kubernetes version (Capabilities.KubeVersion, kubeVersion checks) is the pinned one.
    "helm": Binary(
        "helm",
        HELM_VERSION,
        envtest=False,
        flavour=HELM_FLAVOUR,
        expect=f'Version:"{HELM_VERSION}"',
    ),
    "kustomize": Binary("kustomize", KUSTOMIZE_VERSION, envtest=False),
    "registry": Binary("registry", REGISTRY_VERSION, envtest=False, expect=REGISTRY_VERSION),
}


_VERSION_ARGS = {"kubectl": ["version", "--client"], "helm": ["version"], "kustomize": ["version"]}

_HELM_LDFLAGS = " ".join(
    [
        f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
        "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
        *(
            f"-X helm.sh/helm/v3/pkg/{pkg}.k8sVersion{part}={value}"
            for pkg in ("chartutil", "lint/rules")
            for part, value in (("Major", _K8S_MAJOR), ("Minor", _K8S_MINOR))
        ),
    ]
)


def cached_path(name: str) -> Path:
    binary = BINARIES[name]
    return cached_binary(name, binary.version, binary.flavour)


Progress = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure(name: str, progress: Progress = _stderr) -> Path:
    """Path of a working binary ``name``, building it into the cache if needed."""
    binary = BINARIES[name]
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and binary.envtest:
        candidate = Path(assets) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    path = cached_path(name)
    if _works(path, binary.expect):
        return path
    lock_path = cache_root() / "build.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if _works(path, binary.expect):
            return path
        if path.exists():
            progress(f"cached {name} at {path} does not run as {binary.version}; rebuilding it")
        _BUILDERS[name](path, progress)
    if not _works(path, binary.expect):
        raise ProvisionError(f"built {name} at {path} but it does not run")
    return path


def ensure_all(progress: Progress = _stderr) -> dict[str, Path]:
    """Provision every binary; returns name -> path."""
    return {name: ensure(name, progress) for name in BINARIES}


def _works(path: Path, expect: str = "") -> bool:
    """A cached binary counts only if it answers ``--version`` with ``expect`` in the output.

    Catches corruption and binaries built from another version or without the version stamp.
    """
    if not path.is_file() or not os.access(path, os.X_OK):
        return False
    args = [str(path), *_VERSION_ARGS.get(path.name, ["--version"])]
    try:
        result = subprocess.run(args, capture_output=True, timeout=30, check=False)
    except OSError:
        return False
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and expect.encode() in result.stdout + result.stderr


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ProvisionError(
            "Go toolchain not found on PATH: install Go, or set KUBEBUILDER_ASSETS to a "
            "directory holding etcd, kube-apiserver and kubectl"
        )
    return go


def _run_go(args: list[str], cwd: Path, log: Path, what: str, env: dict[str, str]) -> None:
    with log.open("a") as out:
        out.write(f"$ go {' '.join(args)}\n")
        out.flush()
        result = subprocess.run(
            [_go(), *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False
        )
    if result.returncode != 0:
        raise ProvisionError(f"build of {what} failed (go {args[0]}); see {log}")


def _build_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "0"
    env.setdefault("GOFLAGS", "-mod=mod")
    return env


def _install_atomically(built: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copy2(built, tmp)
    tmp.chmod(0o755)
    tmp.replace(dest)


def _workdir(name: str) -> Path:
    work = cache_root() / "build" / name
    work.mkdir(parents=True, exist_ok=True)
    return work


_KUBERNETES_COMMANDS = ("kube-apiserver", "kubectl", "kube-controller-manager", "kube-scheduler")


def _kubernetes_tools_go() -> str:
    imports = "".join(f'\t_ "k8s.io/kubernetes/cmd/{cmd}"\n' for cmd in _KUBERNETES_COMMANDS)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports})\n"


def _build_kubernetes_binary(dest: Path, progress: Progress) -> None:
    """Build a Kubernetes command from a throwaway module (kubernetes issue #79384)."""
    name = dest.name
    work = _workdir(f"kubernetes-{KUBERNETES_VERSION}")
    log = work / "build.log"
    progress(
        f"building {name} {KUBERNETES_VERSION} from the Go module proxy "
        f"(first time only, takes several minutes; log: {log})"
    )
    env = _build_env()
    go_mod = work / "go.mod"
    tools_go = work / "tools.go"
    if not tools_go.exists() or tools_go.read_text() != _kubernetes_tools_go():
        go_mod.unlink(missing_ok=True)  # tidied for fewer commands than we build now
    if not go_mod.exists():
        upstream = _download_go_mod(f"k8s.io/kubernetes@{KUBERNETES_VERSION}", work, log, env)
        staging_version = "v0." + KUBERNETES_VERSION.split(".", 1)[1]
        lines = [
            "module reconciler.local/kubernetes-build",
            "",
            "go 1.26",
            "",
            f"require k8s.io/kubernetes {KUBERNETES_VERSION}",
            "",
        ]
        for module in _staging_modules(upstream):
            lines.append(f"replace {module} => {module} {staging_version}")
        tools_go.write_text(_kubernetes_tools_go())
        go_mod.write_text("\n".join(lines) + "\n")
        try:
            _run_go(["mod", "tidy"], work, log, name, env)
        except ProvisionError:
            go_mod.unlink()  # only a go.mod that tidied is kept
            raise
    out = work / "out" / name
    major, minor = _K8S_MAJOR, _K8S_MINOR
    ldflags = " ".join(
        f"-X {pkg}.{var}={value}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for var, value in (
            ("gitVersion", KUBERNETES_VERSION),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
        )
    )
    args = ["build", "-ldflags", ldflags, "-o", str(out), f"k8s.io/kubernetes/cmd/{name}"]
    _run_go(args, work, log, name, env)
    _install_atomically(out, dest)


def _download_go_mod(module: str, work: Path, log: Path, env: dict[str, str]) -> str:
    with log.open("a") as out:
        result = subprocess.run(
            [_go(), "mod", "download", "-json", module],
            cwd=work,
            capture_output=True,
            text=True,
            env=env | {"GOFLAGS": ""},
            check=False,
        )
        out.write(result.stdout + result.stderr)
    if result.returncode != 0:
        raise ProvisionError(f"could not download {module} from the Go module proxy; see {log}")
    info = json.loads(result.stdout)
    return Path(info["GoMod"]).read_text()


def _staging_modules(go_mod: str) -> list[str]:
    modules = []
    for line in go_mod.splitlines():
        parts = line.split()
        is_staging = len(parts) >= 3 and parts[1] == "=>" and parts[2].startswith("./staging/")
        if is_staging and parts[0] not in _UNPUBLISHED_STAGING:
            modules.append(parts[0])
    return modules


def _build_etcd(dest: Path, progress: Progress) -> None:
    work = _workdir(f"etcd-{ETCD_VERSION}")
    log = work / "build.log"
    progress(f"building etcd {ETCD_VERSION} from the Go module proxy (first time only; log: {log})")
    env = _build_env()
    (work / "main.go").write_text(
        'package main\n\nimport (\n\t"os"\n\n'
        '\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\n'
        "func main() { etcdmain.Main(os.Args) }\n"
    )
    if not (work / "go.sum").exists():
        (work / "go.mod").write_text(
            "module reconciler.local/etcd-build\n\ngo 1.26\n\n"
            f"require go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n"
        )
        _run_go(["mod", "tidy"], work, log, "etcd", env)
    out = work / "out" / "etcd"
    _run_go(["build", "-o", str(out), "."], work, log, "etcd", env)
    _install_atomically(out, dest)


def _go_install(package: str, version: str, ldflags: str = "") -> Callable[[Path, Progress], None]:
    def build(dest: Path, progress: Progress) -> None:
        work = _workdir(f"{dest.name}-{version}")
        log = work / "build.log"
        progress(f"building {dest.name} {version} from the Go module proxy (log: {log})")
        with tempfile.TemporaryDirectory(dir=work) as gobin:
            env = _build_env() | {"GOBIN": gobin, "GOFLAGS": ""}
            flags = ["-ldflags", ldflags] if ldflags else []
            _run_go(["install", *flags, f"{package}@{version}"], work, log, dest.name, env)
            _install_atomically(Path(gobin) / dest.name, dest)

    return build


_BUILDERS: dict[str, Callable[[Path, Progress], None]] = {
    "etcd": _build_etcd,
    "kube-apiserver": _build_kubernetes_binary,
    "kubectl": _build_kubernetes_binary,
    "kube-controller-manager": _build_kubernetes_binary,
    "kube-scheduler": _build_kubernetes_binary,
    "kwok": _go_install("sigs.k8s.io/kwok/cmd/kwok", KWOK_VERSION),
    "helm": _go_install("helm.sh/helm/v3/cmd/helm", HELM_VERSION, _HELM_LDFLAGS),
    "kustomize": _go_install("sigs.k8s.io/kustomize/kustomize/v5", KUSTOMIZE_VERSION),
    "registry": _go_install(
        "github.com/distribution/distribution/v3/cmd/registry",
        REGISTRY_VERSION,
        f"-X github.com/distribution/distribution/v3/version.version={REGISTRY_VERSION}",
    ),
}
