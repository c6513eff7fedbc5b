"""`reconciler run --shard-lease-namespace`: options that cannot work are refused up front."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli.main import cli
from reconciler.daemon.replicas import default_replica_id


def run(tmp_path: Path, *extra: str) -> tuple[int, str]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    args = ["run", "--repo", str(tmp_path / "repo"), "--state-dir", str(tmp_path / "state")]
    args += ["--kubeconfig", str(kubeconfig), "--shard-lease-namespace", "reconciler", *extra]
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output


def test_once_does_not_share(tmp_path: Path) -> None:
    code, output = run(tmp_path, "--once", "--management-context", "mgmt")

    assert code == 2
    assert "--once cannot share the fleet" in output


def test_a_renew_period_over_half_the_lease_duration_is_refused(tmp_path: Path) -> None:
    code, output = run(
        tmp_path, "--management-context", "mgmt", "--shard-lease-duration", "10s",
        "--shard-renew-period", "6s",
    )  # fmt: skip

    assert code == 2
    assert "--shard-renew-period" in output and "at most half" in output


def test_a_lease_duration_under_one_second_is_refused(tmp_path: Path) -> None:
    code, output = run(
        tmp_path, "--shard-lease-duration", "0.4s", "--shard-renew-period", "0.1s"
    )  # fmt: skip

    assert code == 2
    assert "--shard-lease-duration" in output and "at least 1s" in output


def test_the_renew_period_is_judged_against_the_whole_seconds_of_the_lease(tmp_path: Path) -> None:
    code, output = run(
        tmp_path, "--shard-lease-duration", "10.9s", "--shard-renew-period", "5.2s"
    )  # fmt: skip

    assert code == 2
    assert "--shard-renew-period" in output and "at most half" in output


def test_outside_a_pod_the_management_context_is_needed(tmp_path: Path) -> None:
    code, output = run(tmp_path)

    assert code == 2
    assert "give --management-context" in output


def test_the_replica_id_is_the_pod_name_in_a_pod_else_unique_per_process() -> None:
    assert default_replica_id({"POD_NAME": "reconciler-2"}) == "reconciler-2"
    assert default_replica_id({}).endswith(f"-{os.getpid()}")
