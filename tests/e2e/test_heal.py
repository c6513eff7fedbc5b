"""A one-shot heal: `reconciler apply --heal` corrects drift on an app with selfHeal: false, once,
says what it healed, and the daemon's drift record says who healed it and when."""

from __future__ import annotations

import getpass
import time
from pathlib import Path

from click.testing import CliRunner
from kubernetes import client

from reconciler.cli.main import cli
from tests.e2e.daemon_rig import (
    FAST,
    ConfigRepo,
    config_data,
    drift_records,
    eventually,
    reconciler,
    running_daemon,
    synced_everywhere,
    unique,
)


def test_a_one_shot_heal_corrects_drift_the_daemon_only_records_and_says_who_healed_it(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, namespace, instance = unique("kept"), unique("ns"), unique("test")
    state = tmp_path / "state"
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters()
    repo.app(app, namespace, {"clusters": ["beijing-2"]}, {"mode": "git"}, self_heal=False)
    sha = repo.commit("an app that only records drift")
    core = client.CoreV1Api(api_clients["beijing-2"])

    def edit(value: str) -> None:
        body = {"data": {"mode": value}}
        core.patch_namespaced_config_map(app, namespace, body, field_manager="kubectl-edit")

    def live() -> dict[str, str] | None:
        return config_data(api_clients["beijing-2"], namespace, app)

    with running_daemon(repo, state, kubeconfig, instance=instance):
        eventually(synced_everywhere(state, app, ("beijing-2",), sha))
        edit("edited")
        (first,) = eventually(lambda: drift_records(state, app), timeout=FAST.drift_interval + 5)
        time.sleep(FAST.drift_interval * 2)  # later checks record it, never correct it
        assert live() == {"mode": "edited"}
        assert [(r.id, r.open) for r in drift_records(state, app)] == [(first.id, True)]

        heal = reconciler(
            "apply",
            str(repo.root),
            "--app",
            app,
            "--cluster",
            "beijing-2",
            "--heal",
            "--state-dir",
            str(state),
            "--kubeconfig",
            str(kubeconfig),
            "--instance",
            instance,
        )
        assert heal.returncode == 0, heal.stderr
        assert f"configured ConfigMap/{namespace}/{app} (drift corrected)" in heal.stdout
        assert (
            f"healed 1 field on ConfigMap/{namespace}/{app} (app {app}, cluster beijing-2):\n"
            '  data.mode: live "edited" → git "git" (live set by kubectl-edit at '
        ) in heal.stdout
        assert f"1 drift record in {state} marked healed by hand" in heal.stdout
        assert live() == {"mode": "git"}
        (record,) = drift_records(state, app)
        assert record.id == first.id and not record.open
        assert record.healed_by == getpass.getuser()
        assert record.healed_at is not None

        edit("again")  # the heal was once: the next edit is again only recorded
        second = eventually(
            lambda: [r for r in drift_records(state, app) if r.open],
            timeout=FAST.drift_interval + 5,
        )
        time.sleep(FAST.drift_interval * 2)
        assert live() == {"mode": "again"}
        (still,) = [r for r in drift_records(state, app) if r.open]
        assert still.id == second[0].id and still.healed_by is None
        (field,) = still.fields
        assert (field.path, field.git, field.live) == ("data.mode", "git", "again")

    listed = CliRunner().invoke(cli, ["drift", "--state-dir", str(state), "--app", app])
    assert f"healed by {getpass.getuser()}" in listed.stdout
    as_json = CliRunner().invoke(cli, ["drift", "--state-dir", str(state), "-o", "json"])
    assert f'"healed_by": "{getpass.getuser()}"' in as_json.stdout
