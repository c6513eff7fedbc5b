"""Sockets per cluster (real kube-apiservers, counted in a process of its own): every context
reaching one API server shares one HTTP/2 connection for its requests and one for its watches,
whatever the number of contexts, concurrent requests and watches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CLUSTERS
from tests.kubeconfigs import with_context

ALIASES = 10  # contexts per API server


def _probe(kubeconfig: Path, namespace: str, contexts: list[str], watch: bool) -> Any:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.e2e.socket_probe", str(kubeconfig), namespace]
        + (["--watch"] if watch else [])
        + contexts,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["errors"] == []
    return found


@pytest.mark.parametrize("watch", [False, True], ids=["requests", "requests-and-watches"])
def test_contexts_reaching_one_apiserver_share_one_connection(
    tmp_path: Path, kubeconfig: Path, namespace: str, watch: bool
) -> None:
    config = kubeconfig
    contexts = []
    for cluster in CLUSTERS:
        for i in range(ALIASES):
            name = f"{cluster}-alias-{i}"
            config = with_context(config, tmp_path / f"kc-{name}", name, like=cluster)
            contexts.append(name)
    found = _probe(config, namespace, contexts, watch)
    print(f"{found['contexts']} contexts, {found['watches']} watches: {found['connections']}")
    assert len(found["connections"]) == len(CLUSTERS)
    # One for requests (and one for watches); at most one more while a connection the server
    # closed (GOAWAY) is replaced. Never one per context: 10 contexts reach each server here.
    assert max(found["connections"].values()) <= (3 if watch else 2)


def test_one_context_per_apiserver_holds_two_sockets_with_its_watches(
    kubeconfig: Path, namespace: str
) -> None:
    found = _probe(kubeconfig, namespace, list(CLUSTERS), watch=True)
    print(f"{found['contexts']} contexts, {found['watches']} watches: {found['connections']}")
    assert len(found["connections"]) == len(CLUSTERS)
    assert max(found["connections"].values()) <= 3  # requests; watches; a replacement
