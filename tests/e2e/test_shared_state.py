"""Shared state on a real management cluster (one devenv apiserver): the status replicas
publish, read back by ``reconciler status``/``drift``; conditional rollout writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
import structlog
from click.testing import CliRunner

from reconciler.cli.main import cli
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.publish import StatusPublisher
from reconciler.fields import Drift, FieldChange
from reconciler.kube.client import ClusterClient
from reconciler.kube.management import REPLICA_LABEL, SharedObjects, StaleWrite
from reconciler.published.rollout import SharedRollout, decode, encode
from reconciler.published.status import build, content_hash
from reconciler.published.status import encode as encode_status
from reconciler.store.db import Store
from reconciler.store.rows import DriftRow, State, StatusRow

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
T = TypeVar("T")


class InlineDispatcher:
    """Runs every job at once, on the calling thread."""

    def submit(self, job: Callable[[], T], name: str) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(job())
        except Exception as err:
            future.set_exception(err)
        return future


MANAGEMENT = "beijing-1"


@pytest.fixture
def shared(kubeconfig: Path, namespace: str) -> SharedObjects:
    client = ClusterClient("management", context=MANAGEMENT, kubeconfig=str(kubeconfig))
    return SharedObjects(client, namespace, "default")


def _flags(kubeconfig: Path, namespace: str) -> list[str]:
    return [
        "--kubeconfig",
        str(kubeconfig),
        "--management-context",
        MANAGEMENT,
        "--shard-lease-namespace",
        namespace,
    ]


def test_status_and_drift_read_what_every_replica_published(
    shared: SharedObjects, kubeconfig: Path, namespace: str
) -> None:
    web = StatusRow("web", "us-west-1", State.SYNCED, "", "a" * 40, T0, T0)
    api = StatusRow("api", "beijing-2", State.DRIFTED, "1 drifted object", "a" * 40, T0)
    drift = DriftRow(
        3,
        "api",
        "beijing-2",
        "Deployment.apps/demo/api",
        Drift.MODIFIED,
        [FieldChange("spec.replicas", 3, 7, "kubectl-scale", T0)],
        "a" * 40,
        T0,
        None,
    )
    for cluster, replica, rows, drifts in (
        ("us-west-1", "replica-a", [web], []),
        ("beijing-2", "replica-b", [api], [drift]),
    ):
        status = build(cluster, replica, rows, [], drifts)
        shared.publish_status(cluster, replica, encode_status(status), content_hash(status))

    flags = _flags(kubeconfig, namespace)
    wide = CliRunner().invoke(cli, ["status", "-o", "wide", *flags])
    assert wide.exit_code == 0, wide.output
    lines = wide.output.splitlines()
    assert "REPLICA" in lines[0]
    assert any("web" in ln and "us-west-1" in ln and "replica-a" in ln for ln in lines)
    assert any("api" in ln and "beijing-2" in ln and "replica-b" in ln for ln in lines)

    table = CliRunner().invoke(cli, ["status", *flags])
    assert "REPLICA" not in table.output and "us-west-1" in table.output

    document = json.loads(CliRunner().invoke(cli, ["status", "-o", "json", *flags]).output)
    assert {(t["app"], t["cluster"], t["replica"]) for t in document["targets"]} == {
        ("web", "us-west-1", "replica-a"),
        ("api", "beijing-2", "replica-b"),
    }

    listed = CliRunner().invoke(cli, ["drift", *flags])
    assert listed.exit_code == 1, listed.output  # open drift listed
    assert "Deployment.apps/demo/api" in listed.output and "kubectl-scale" in listed.output
    typo = CliRunner().invoke(cli, ["drift", "--app", "nosuch", *flags])
    assert typo.exit_code == 2 and "api, web" in typo.output


def test_a_rollout_write_based_on_an_old_read_is_refused(shared: SharedObjects) -> None:
    first = shared.write_rollout("web", encode(SharedRollout("web", driver="a")), None)
    with pytest.raises(StaleWrite):
        shared.write_rollout("web", encode(SharedRollout("web", driver="x")), None)

    second = shared.write_rollout("web", encode(SharedRollout("web", driver="b")), first)
    with pytest.raises(StaleWrite):  # a driver that read before b wrote cannot overwrite it
        shared.write_rollout("web", encode(SharedRollout("web", driver="stale")), first)

    read = shared.rollout("web")
    assert read is not None and read.resource_version == second.resource_version
    assert decode(read.data).driver == "b"


def test_an_idle_cluster_is_published_once(shared: SharedObjects, tmp_path: Path) -> None:
    metrics = Metrics()
    log = structlog.get_logger("test")
    with Store.open(tmp_path / "state") as store:
        store.set_status(StatusRow("web", "us-west-1", State.SYNCED, "", "a" * 40, T0, T0))
        publisher = StatusPublisher(store, shared, "replica-a", InlineDispatcher(), metrics, log)
        publisher.tick({"us-west-1"}, set())
        publisher.tick({"us-west-1"}, set())  # collects the write
        assert publisher.writes == 1
        for minute in range(1, 4):  # idle passes: rows rewritten with new times only
            at = T0.replace(minute=minute)
            store.set_status(StatusRow("web", "us-west-1", State.SYNCED, "", "a" * 40, at, at))
            publisher.tick({"us-west-1"}, {"us-west-1"})
        assert publisher.writes == 1

        store.set_status(StatusRow("web", "us-west-1", State.FAILED, "boom", "a" * 40, T0))
        publisher.tick({"us-west-1"}, {"us-west-1"})
        publisher.tick({"us-west-1"}, set())
        assert publisher.writes == 2
        read = shared.status("us-west-1")
        assert read is not None and "boom" in read.data["app.web"]
        print(f"published status object: {sum(len(v) for v in read.data.values())} bytes")

        # A restarted replica lists what it published and writes nothing unchanged.
        again = StatusPublisher(store, shared, "replica-a", InlineDispatcher(), metrics, log)
        again.tick({"us-west-1"}, set())
        again.tick({"us-west-1"}, set())
        assert again.writes == 0
        # A new owner writes it once (its name goes on the object).
        other = StatusPublisher(store, shared, "replica-b", InlineDispatcher(), metrics, log)
        other.tick({"us-west-1"}, set())
        other.tick({"us-west-1"}, set())
        assert other.writes == 1
        read = shared.status("us-west-1")
        assert read is not None and read.data["replica"] == "replica-b"


def test_the_sweeper_deletes_the_status_of_clusters_that_left_the_repo(
    shared: SharedObjects, tmp_path: Path
) -> None:
    metrics, log = Metrics(), structlog.get_logger("test")
    for cluster in ("us-west-1", "gone-1"):
        status = build(
            cluster, "replica-a", [StatusRow("web", cluster, State.SYNCED, "", "a", T0)], [], []
        )
        shared.publish_status(cluster, "replica-a", encode_status(status), content_hash(status))
    with Store.open(tmp_path / "state") as store:
        other = StatusPublisher(store, shared, "replica-b", InlineDispatcher(), metrics, log)
        other.tick(set(), set(), known={"us-west-1"}, sweeper=False)
        assert shared.status("gone-1") is not None  # only the sweeper deletes

        sweeper = StatusPublisher(store, shared, "replica-a", InlineDispatcher(), metrics, log)
        sweeper.tick(set(), set(), known={"us-west-1"}, sweeper=True)
        sweeper.tick(set(), set(), known={"us-west-1"}, sweeper=True)  # collects; no new sweep

    assert shared.status("gone-1") is None
    assert shared.status("us-west-1") is not None


def test_a_new_owner_rewrites_a_status_the_previous_owner_wrote_late(
    shared: SharedObjects, tmp_path: Path
) -> None:
    metrics, log = Metrics(), structlog.get_logger("test")
    with Store.open(tmp_path / "state") as store:
        store.set_status(StatusRow("web", "us-west-1", State.SYNCED, "", "a" * 40, T0, T0))
        new_owner = StatusPublisher(
            store, shared, "replica-b", InlineDispatcher(), metrics, log, check_after=0.0
        )
        new_owner.tick({"us-west-1"}, set())  # gained: written
        # The previous owner's write, dispatched before it lost the cluster, lands now.
        late = build("us-west-1", "replica-a", store.list_status(), [], [])
        shared.publish_status("us-west-1", "replica-a", encode_status(late), content_hash(late))
        for _ in range(3):  # collect; read back and see replica-a; write again
            new_owner.tick({"us-west-1"}, set())
        new_owner.tick({"us-west-1"}, set())

    read = shared.status("us-west-1")
    assert read is not None and read.labels[REPLICA_LABEL] == "replica-b"
    assert new_owner.writes == 2
