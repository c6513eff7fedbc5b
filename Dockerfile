# The daemon image. helm and kustomize are needed only for apps that use them.
# (Not built in CI here: this machine has no Docker engine.)
FROM golang:1.26 AS tools
RUN CGO_ENABLED=0 GOBIN=/out go install helm.sh/helm/v3/cmd/helm@v3.22.0 \
 && CGO_ENABLED=0 GOBIN=/out go install sigs.k8s.io/kustomize/kustomize/v5@v5.8.2

FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git openssh-client \
 && rm -rf /var/lib/apt/lists/*
COPY --from=tools /out/helm /out/kustomize /usr/local/bin/
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
RUN pip install --no-cache-dir . && useradd --uid 10001 reconciler
USER 10001
ENV RECONCILER_HELM=/usr/local/bin/helm RECONCILER_KUSTOMIZE=/usr/local/bin/kustomize
ENTRYPOINT ["reconciler"]
CMD ["run", "--repo", "/config", "--state-dir", "/var/lib/reconciler"]
