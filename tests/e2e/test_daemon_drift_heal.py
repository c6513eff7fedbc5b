"""An edit on a real cluster becomes drift (manager, field, time) and self-heal corrects it."""

from __future__ import annotations

import time
from pathlib import Path

from click.testing import CliRunner
from kubernetes import client

from reconciler.cli.main import cli
from reconciler.store.rows import State
from tests.e2e.daemon_rig import (
    FAST,
    ConfigRepo,
    config_data,
    drift_records,
    eventually,
    running_daemon,
    status_row_message,
    statuses,
    synced_everywhere,
    unique,
)


def test_an_edit_on_a_cluster_becomes_drift_with_manager_and_field_and_self_heal_corrects_it(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    healed, kept, namespace = unique("healed"), unique("kept"), unique("ns")
    state = tmp_path / "state"
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters()
    on_b2 = {"clusters": ["beijing-2"]}
    repo.app(healed, namespace, on_b2, {"mode": "git"}, self_heal=True)
    repo.app(kept, namespace, on_b2, {"mode": "git"}, self_heal=False)
    sha = repo.commit("two apps")
    core = client.CoreV1Api(api_clients["beijing-2"])

    with running_daemon(repo, state, kubeconfig):
        for app in (healed, kept):
            eventually(synced_everywhere(state, app, ("beijing-2",), sha))
            core.patch_namespaced_config_map(
                app, namespace, {"data": {"mode": "edited"}}, field_manager="kubectl-edit"
            )
        edited_at = time.monotonic()

        corrected = eventually(
            lambda: [r for r in drift_records(state, healed) if not r.open],
            timeout=FAST.drift_interval + 5,
        )
        assert config_data(api_clients["beijing-2"], namespace, healed) == {"mode": "git"}
        (open_drift,) = eventually(
            lambda: drift_records(state, kept), timeout=FAST.drift_interval + 5
        )
        assert time.monotonic() - edited_at < FAST.drift_interval + 5
        for record in (corrected[0], open_drift):
            assert (record.cluster, record.kind, record.revision) == ("beijing-2", "modified", sha)
            (field,) = record.fields
            assert (field.path, field.git, field.live) == ("data.mode", "git", "edited")
            assert field.manager == "kubectl-edit"
            assert field.time is not None
        assert open_drift.open
        assert open_drift.object == f"ConfigMap/{namespace}/{kept}"

        time.sleep(FAST.drift_interval * 2)  # later checks neither heal it nor record it again
        assert config_data(api_clients["beijing-2"], namespace, kept) == {"mode": "edited"}
        assert [r.id for r in drift_records(state, kept)] == [open_drift.id]
        assert statuses(state, kept) == {"beijing-2": (State.DRIFTED, sha)}
        assert "modified by kubectl-edit" in status_row_message(state, kept, "beijing-2")
        assert statuses(state, healed) == {"beijing-2": (State.SYNCED, sha)}

    listed = CliRunner().invoke(cli, ["drift", "--state-dir", str(state), "--app", kept])
    assert listed.exit_code == 1
    assert "kubectl-edit" in listed.stdout
    healed_only = CliRunner().invoke(cli, ["drift", "--state-dir", str(state), "--app", healed])
    assert healed_only.exit_code == 0
