# syntax=docker/dockerfile:1
# The reconciler image: `docker build .` anywhere (or `buildah build .`). `make image` builds this
# same file from base images made locally from Debian packages (image/base.sh) and smoke-tests it.
#
# Base images are build arguments, so a mirror or a locally built base can stand in:
#   docker build --build-arg PYTHON_IMAGE=registry.example/python:3.11-slim-bookworm .
# PYTHON_IMAGE needs python3 (>= 3.11, with venv), apt-get and useradd; GO_IMAGE needs `go`.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG GO_IMAGE=golang:1.26-bookworm

# ---- helm and kustomize, pinned to the versions the devenv and tests use --------------------
# (reconciler/toolchain.py; tests/unit/test_image_files.py keeps them equal.) helm is stamped
# like its release build and like the devenv's: `helm version` and the Kubernetes version a
# chart sees (Capabilities.KubeVersion) are the pinned ones, so renders match the CLI's.
FROM ${GO_IMAGE} AS tools
ARG HELM_VERSION=v3.22.0
ARG KUSTOMIZE_VERSION=v5.8.2
ARG KUBERNETES_VERSION=v1.36.3
ENV CGO_ENABLED=0 GOBIN=/out GOFLAGS=-buildvcs=false GOMODCACHE=/go/pkg/mod \
    GOCACHE=/root/.cache/go-build
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    k8s=${KUBERNETES_VERSION#v}; major=${k8s%%.*}; minor=${k8s#*.}; minor=${minor%%.*}; \
    flags="-s -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"; \
    flags="$flags -X helm.sh/helm/v3/internal/version.gitTreeState=clean"; \
    for pkg in chartutil lint/rules; do \
      flags="$flags -X helm.sh/helm/v3/pkg/$pkg.k8sVersionMajor=$major"; \
      flags="$flags -X helm.sh/helm/v3/pkg/$pkg.k8sVersionMinor=$minor"; \
    done; \
    go install -trimpath -ldflags="$flags" helm.sh/helm/v3/cmd/helm@${HELM_VERSION} \
 && go install -trimpath -ldflags=-s sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}

# ---- the Python package in a virtualenv ------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/reconciler
# Dependencies first, from pyproject.toml alone, so a code or README change reuses this layer.
COPY pyproject.toml /src/
RUN mkdir /src/reconciler && touch /src/reconciler/__init__.py /src/README.md \
 && /opt/reconciler/bin/pip install /src && /opt/reconciler/bin/pip uninstall -y reconciler \
 && rm -rf /src/reconciler /src/build /src/*.egg-info /src/README.md
COPY README.md /src/
COPY reconciler /src/reconciler
RUN /opt/reconciler/bin/pip install --no-deps /src \
 && /opt/reconciler/bin/pip uninstall -y pip setuptools

# ---- the final image: Python, git, ssh, helm, kustomize; no compilers -----------------------
FROM ${PYTHON_IMAGE}
RUN printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-exclude=/usr/share/man/*' \
        'path-exclude=/usr/share/locale/*' 'path-include=/usr/share/doc/*/copyright' \
        > /etc/dpkg/dpkg.cfg.d/reconciler-slim \
 && apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/reconciler \
        --shell /usr/sbin/nologin reconciler \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/reconciler
COPY --from=tools /out/helm /out/kustomize /usr/local/bin/
COPY --from=build /opt/reconciler /opt/reconciler
ENV PATH=/opt/reconciler/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    RECONCILER_HELM=/usr/local/bin/helm RECONCILER_KUSTOMIZE=/usr/local/bin/kustomize \
    RECONCILER_STATE_DIR=/var/lib/reconciler HOME=/var/lib/reconciler
USER 10001:10001
WORKDIR /var/lib/reconciler
# /healthz, /readyz and /metrics must be reachable by the kubelet and Prometheus in a container;
# outside one, `reconciler run` listens on loopback by default.
EXPOSE 9465
ENTRYPOINT ["reconciler"]
CMD ["run", "--repo", "/config", "--listen", "0.0.0.0:9465"]
