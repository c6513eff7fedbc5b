"""Many Cluster entries over a few API servers: ``run --once`` ends after one pass per cluster
even when a round over them outlasts the drift interval (real kube-apiservers)."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client

from reconciler.store.rows import State
from tests.e2e.conftest import CLUSTERS
from tests.e2e.daemon_rig import API, ConfigRepo, reconciler, statuses, unique
from tests.kubeconfigs import with_contexts

ENTRIES = 63  # 21 per API server: two rounds of the default 32 passes at once, each
# round longer than the 200ms drift interval (before the fix, drift re-passes took the slots)


def test_once_ends_with_a_short_drift_interval_and_many_clusters(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, state, prefix = unique("many"), tmp_path / "state", unique("m")
    entries = {f"{prefix}-{i:02d}": CLUSTERS[i % len(CLUSTERS)] for i in range(ENTRIES)}
    config = with_contexts(kubeconfig, tmp_path / "kubeconfig", entries)
    repo = ConfigRepo(tmp_path / "repo")
    for name in entries:
        repo.write(
            f"clusters/{name}.yaml",
            {"apiVersion": API, "kind": "Cluster", "metadata": {"name": name}},
        )
    # Each entry's objects live in a namespace of its own (entries on one API server own theirs).
    repo.write(
        f"apps/{app}/manifests/config.yaml",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": app, "namespace": "${cluster.name}"},
            "data": {"cluster": "${cluster.name}"},
        },
    )
    repo.write(
        f"apps/{app}/app.yaml",
        {
            "apiVersion": API,
            "kind": "App",
            "metadata": {"name": app},
            "spec": {
                "source": {"manifests": "manifests/"},
                "placement": {"clusters": list(entries)},
            },
        },
    )
    sha = repo.commit("v1")

    done = reconciler(
        "run", "--once", "--repo", str(repo.root), "--state-dir", str(state),
        "--kubeconfig", str(config), "--instance", app, "--drift-interval", "200ms",
        "--interval", "1s", "--listen", "127.0.0.1:0",
        timeout=300,  # a bound on a hang (the bug: it never ended), not on speed
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert statuses(state, app) == {name: (State.SYNCED, sha) for name in entries}
    core = client.CoreV1Api(api_clients[CLUSTERS[0]])
    first = next(name for name, like in entries.items() if like == CLUSTERS[0])
    live = core.read_namespaced_config_map(app, first)
    assert live.data == {"cluster": first}
