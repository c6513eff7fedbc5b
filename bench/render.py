"""Benchmark the desired-state stage: load + place + render a large generated config repo.

    .venv/bin/python bench/render.py [--clusters 1000] [--apps 50]

Generates (in a temp dir) N clusters and M apps of plain manifests (5 objects, 3 templated
values, 3 overrides each, every app placed on every cluster), then times ``load_repo`` and
``render_all`` and prints wall time and peak RSS (``getrusage``). Target: 1,000 x 50 in under
10 s and 1 GiB. Not a timed test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import time
from pathlib import Path

from reconciler.config.load import load_repo
from reconciler.render import render_all

REGIONS = 10
PROVIDERS = ("AWS", "GCP", "Aliyun")

CLUSTER = """\
apiVersion: reconciler.io/v1alpha1
kind: Cluster
metadata:
  name: {name}
  labels: {{region: r{region}, provider: {provider}, env: {env}}}
spec:
  vars: {{domain: {name}.example.com, replicas: "{replicas}"}}
"""

GROUP = """\
apiVersion: reconciler.io/v1alpha1
kind: ClusterGroup
metadata: {{name: r{region}}}
spec:
  selector: {{matchLabels: {{region: r{region}}}}}
"""

APP = """\
apiVersion: reconciler.io/v1alpha1
kind: App
metadata: {{name: {name}}}
spec:
  namespace: {name}
  source: {{manifests: manifests/}}
  placement:
    selector:
      matchExpressions: [{{key: env, operator: In, values: [prod, staging]}}]
  overrides:
  - name: prod-replicas
    target: {{selector: {{matchLabels: {{env: prod}}}}}}
    replicas: 5
  - name: pin-image
    images: [{{name: example.com/{name}, newTag: "2.0"}}]
  - name: lb-outside-gcp
    target:
      selector:
        matchExpressions: [{{key: provider, operator: NotIn, values: [GCP]}}]
    labels: {{exposure: public}}
    patches:
    - target: {{kind: Service, name: {name}}}
      merge: {{spec: {{type: LoadBalancer}}}}
"""

MANIFESTS = """\
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {name}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-settings}}
data:
  cluster: ${{cluster.name}}
  domain: ${{cluster.vars.domain}}
  log-level: info
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app.kubernetes.io/name: {name}}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app.kubernetes.io/name: {name}}}
  template:
    metadata:
      labels: {{app.kubernetes.io/name: {name}}}
    spec:
      serviceAccountName: {name}
      containers:
      - name: app
        image: example.com/{name}:1.0
        ports: [{{name: http, containerPort: 8080}}]
        envFrom: [{{configMapRef: {{name: {name}-settings}}}}]
        resources:
          requests: {{cpu: 100m, memory: 64Mi}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app.kubernetes.io/name: {name}}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}}}
spec:
  rules:
  - host: {name}.${{cluster.vars.domain}}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {{service: {{name: {name}, port: {{name: http}}}}}}
"""


def generate(root: Path, clusters: int, apps: int) -> None:
    (root / "clusters").mkdir(parents=True)
    (root / "groups").mkdir()
    for i in range(clusters):
        name = f"c-{i:04d}"
        text = CLUSTER.format(
            name=name,
            region=i % REGIONS,
            provider=PROVIDERS[i % len(PROVIDERS)],
            env="staging" if i % 4 == 0 else "prod",
            replicas=1 + i % 5,
        )
        (root / "clusters" / f"{name}.yaml").write_text(text)
    for r in range(REGIONS):
        (root / "groups" / f"r{r}.yaml").write_text(GROUP.format(region=r))
    for j in range(apps):
        name = f"app-{j:02d}"
        app_dir = root / "apps" / name
        (app_dir / "manifests").mkdir(parents=True)
        (app_dir / "app.yaml").write_text(APP.format(name=name))
        (app_dir / "manifests" / "all.yaml").write_text(MANIFESTS.format(name=name))


def peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--apps", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        root = Path(tmp) / "repo"
        generate(root, args.clusters, args.apps)
        gc.collect()
        rss_before = peak_rss_mib()
        start = time.perf_counter()
        repo = load_repo(root)
        loaded = time.perf_counter()
        results = render_all(repo)
        done = time.perf_counter()
    errors = [r for r in results if r.error is not None]
    objects = sum(len(r.rendered.objects) for r in results if r.rendered is not None)
    changes = sum(
        len(e.changes) for r in results if r.rendered for e in r.rendered.overrides_applied
    )
    print(f"repo: {args.clusters} clusters x {args.apps} apps -> {len(results)} targets")
    print(f"rendered: {objects} objects, {changes} override field changes, {len(errors)} errors")
    print(f"load_repo:  {loaded - start:6.2f} s")
    print(f"render_all: {done - loaded:6.2f} s  (placement + templates + overrides)")
    print(f"total wall: {done - start:6.2f} s  (target < 10 s)")
    print(
        f"peak RSS:   {peak_rss_mib():6.0f} MiB (before load: {rss_before:.0f} MiB; target < 1024)"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
