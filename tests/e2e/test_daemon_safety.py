"""The daemon's safety rules against real kube-apiservers: per-app blast radius of a broken
file, the mass-prune guard, private state."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from kubernetes import client

from reconciler.cli.main import cli
from reconciler.store.db import Store
from reconciler.store.rows import State
from tests.e2e.daemon_rig import (
    API,
    CLUSTERS,
    ConfigRepo,
    config_data,
    eventually,
    running_daemon,
    status_row_message,
    statuses,
    synced_everywhere,
    unique,
)


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_broken_app_stays_at_its_revision_while_a_good_change_goes_live(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    good, typo, bad_yaml = unique("good"), unique("typo"), unique("badyaml")
    namespace, state = unique("ns"), tmp_path / "state"
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters()
    everywhere = {"clusters": list(CLUSTERS)}
    for app in (good, typo, bad_yaml):
        repo.app(app, namespace, everywhere, {"v": "1"})
    first = repo.commit("v1")

    with running_daemon(repo, state, kubeconfig):
        for app in (good, typo, bad_yaml):
            eventually(synced_everywhere(state, app, CLUSTERS, first))

        repo.app(good, namespace, everywhere, {"v": "2"})
        typo_file = repo.app(typo, namespace, everywhere, {"v": "2"})
        typo_file.write_text(typo_file.read_text().replace("placement:", "placment:"))
        repo.write(f"apps/{bad_yaml}/manifests/config.yaml", "kind: ConfigMap\ndata: [unclosed\n")
        second = repo.commit("good v2; two broken apps")

        eventually(synced_everywhere(state, good, CLUSTERS, second))
        for cluster in CLUSTERS:
            assert config_data(api_clients[cluster], namespace, good) == {"v": "2"}
        for app in (typo, bad_yaml):
            eventually(
                lambda app=app: (
                    statuses(state, app) == {c: (State.INVALID_CONFIG, first) for c in CLUSTERS}
                )
            )
            for cluster in CLUSTERS:
                assert config_data(api_clients[cluster], namespace, app) == {"v": "1"}
        located = f"apps/{typo}/app.yaml:{line_of(typo_file, 'placment:')}: spec.placment"
        assert located in status_row_message(state, typo, "beijing-1")
        assert f"{first[:12]} stays applied" in status_row_message(state, typo, "beijing-1")
        assert f"apps/{bad_yaml}/manifests/config.yaml:3: invalid YAML" in status_row_message(
            state, bad_yaml, "us-west-1"
        )
        shown = CliRunner().invoke(cli, ["status", "--state-dir", str(state)])
        assert located in shown.stdout

        repo.app(typo, namespace, everywhere, {"v": "3"})
        repo.app(bad_yaml, namespace, everywhere, {"v": "3"})
        fixed = repo.commit("both fixed")
        for app in (typo, bad_yaml):
            eventually(synced_everywhere(state, app, CLUSTERS, fixed))
            for cluster in CLUSTERS:
                assert config_data(api_clients[cluster], namespace, app) == {"v": "3"}


def test_a_broken_cluster_file_holds_only_that_cluster(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, namespace, state = unique("spread"), unique("ns"), tmp_path / "state"
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters()
    everywhere = {"clusters": list(CLUSTERS)}
    repo.app(app, namespace, everywhere, {"v": "1"})
    first = repo.commit("v1")

    with running_daemon(repo, state, kubeconfig):
        eventually(synced_everywhere(state, app, CLUSTERS, first))

        broken = repo.root / "clusters/beijing-2.yaml"
        broken.write_text(broken.read_text().replace("labels:", "lables:"))
        repo.app(app, namespace, everywhere, {"v": "2"})
        second = repo.commit("v2; a typo in beijing-2's file")

        healthy = ("beijing-1", "us-west-1")
        eventually(lambda: {c: statuses(state, app).get(c) for c in healthy}
                   == {c: (State.SYNCED, second) for c in healthy})  # fmt: skip
        eventually(lambda: statuses(state, app).get("beijing-2") == (State.INVALID_CONFIG, first))
        assert "clusters/beijing-2.yaml" in status_row_message(state, app, "beijing-2")
        for cluster in healthy:
            assert config_data(api_clients[cluster], namespace, app) == {"v": "2"}
        assert config_data(api_clients["beijing-2"], namespace, app) == {"v": "1"}


def many_configmaps(repo: ConfigRepo, app: str, namespace: str, count: int) -> None:
    docs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{app}-{i}"},
         "data": {"i": str(i)}}
        for i in range(count)
    ]  # fmt: skip
    repo.write(f"apps/{app}/manifests/config.yaml", yaml.safe_dump_all(docs))
    repo.write(
        f"apps/{app}/app.yaml",
        {
            "apiVersion": API,
            "kind": "App",
            "metadata": {"name": app},
            "spec": {
                "namespace": namespace,
                "source": {"manifests": "manifests/"},
                "placement": {"clusters": list(CLUSTERS)},
            },
        },
    )


def live_count(api_clients: dict[str, client.ApiClient], namespace: str, app: str) -> int:
    return sum(
        len(
            client.CoreV1Api(api)
            .list_namespaced_config_map(namespace, label_selector=f"reconciler.io/app={app}")
            .items
        )
        for api in api_clients.values()
    )


def settings(allow_empty: bool) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Settings", "spec": {"allowEmpty": allow_empty}}


def test_removing_every_app_prunes_nothing_until_released(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, namespace, state = unique("fleet"), unique("ns"), tmp_path / "state"
    instance = unique("guard")
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters()
    many_configmaps(repo, app, namespace, 4)  # 12 objects on 3 clusters
    first = repo.commit("v1")

    with running_daemon(repo, state, kubeconfig, instance=instance):
        eventually(synced_everywhere(state, app, CLUSTERS, first))
        assert live_count(api_clients, namespace, app) == 12

        repo.git("rm", "-r", "-q", "apps")
        emptied = repo.commit("git rm -r apps")
        eventually(
            lambda: statuses(state, app) == {c: (State.INVALID_CONFIG, first) for c in CLUSTERS}
        )
        assert "no apps" in status_row_message(state, app, "beijing-1")

        repo.write("reconciler.yaml", settings(allow_empty=True))
        allowed = repo.commit("no apps, on purpose")
        eventually(lambda: statuses(state, app) == {c: (State.HELD, first) for c in CLUSTERS})
        message = status_row_message(state, app, "us-west-1")
        assert f"revision {allowed[:12]} held: would prune 12 of 12 objects on 3 clusters" in (
            message
        )
        assert f"reconciler release {allowed[:12]}" in message
        shown = CliRunner().invoke(cli, ["status", "--state-dir", str(state)])
        assert "held: would prune 12 of 12 objects" in shown.stdout
        assert live_count(api_clients, namespace, app) == 12
        assert emptied != allowed

        released = CliRunner().invoke(
            cli, ["release", allowed[:12], "--state-dir", str(state)], env={"USER": "alice"}
        )
        assert released.exit_code == 0, released.output
        assert "alice" in released.stdout
        eventually(lambda: live_count(api_clients, namespace, app) == 0)
        eventually(lambda: statuses(state, app) == {})
    with Store.open_readonly(state) as store:
        release = store.released(allowed)
        assert release is not None and release.user == "alice"


def test_state_is_private_under_umask_022(tmp_path: Path, kubeconfig: Path) -> None:
    app, namespace, state = unique("private"), unique("ns"), tmp_path / "state"
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters()
    repo.app(app, namespace, {"clusters": ["beijing-1"]}, {"v": "1"})
    repo.write(
        f"apps/{app}/manifests/secret.yaml",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": app},
         "stringData": {"token": "plaintext-in-git"}},
    )  # fmt: skip
    repo.commit("v1 with a Secret")

    done = subprocess.run(
        ["sh", "-c", 'umask 022 && exec "$@"', "sh", sys.executable, "-m", "reconciler", "run",
         "--once", "--repo", str(repo.root), "--state-dir", str(state),
         "--kubeconfig", str(kubeconfig), "--instance", app],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    loose = {}
    for path in [state, *state.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if not path.is_symlink() and mode & 0o077:
            loose[str(path.relative_to(state))] = oct(mode)
    assert loose == {}
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "state.db").stat().st_mode) == 0o600
    trees = state / "source" / "trees"
    assert not trees.exists() or os.listdir(trees) == []  # rendered, so no longer needed
    found = subprocess.run(
        ["grep", "-rl", "plaintext-in-git", str(state / "source")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert found.stdout == ""  # only in Git's compressed objects, never as a plain file
