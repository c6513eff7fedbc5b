"""The kube client pool follows its kubeconfig: contexts added, unparsable files, $KUBECONFIG."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.kube.pool import Clients


def kubeconfig_text(*contexts: str, token: str = "t0") -> str:
    clusters = "".join(
        f"- name: {c}\n  cluster: {{server: 'https://127.0.0.1:1'}}\n" for c in contexts
    )
    ctxs = "".join(f"- name: {c}\n  context: {{cluster: {c}, user: u}}\n" for c in contexts)
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n{clusters}contexts:\n{ctxs}"
        f"users:\n- name: u\n  user: {{token: {token}}}\n"
    )


class Ticker:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_clients_see_a_context_added_to_the_kubeconfig_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text("one"))
    ticker = Ticker()
    clients = Clients(str(path), monotonic=ticker)
    one = clients.get("one", "one")
    assert clients.get("one", "one") is one

    path.write_text(kubeconfig_text("one", "two"))
    ticker.t = 0.5  # within the recheck interval: the file is not looked at yet
    assert "two" not in clients.parse().contexts
    ticker.t = 1.5
    two = clients.get("two", "two")
    assert two.context == "two"
    assert "two" in clients.parse().contexts
    renewed = clients.get("one", "one")
    assert renewed is not one  # rebuilt from the new kubeconfig (rotated credentials)
    ticker.t = 3.0
    assert clients.get("one", "one") is renewed  # unchanged file: kept
    clients.close()


def test_clients_keep_the_last_kubeconfig_while_the_file_does_not_parse(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text("one"))
    ticker = Ticker()
    clients = Clients(str(path), monotonic=ticker)
    one = clients.get("one", "one")

    path.write_text("clusters: [")  # half written
    ticker.t = 2.0
    assert clients.get("one", "one") is one
    path.write_text(kubeconfig_text("one", token="t1"))
    ticker.t = 4.0
    assert clients.get("one", "one") is not one
    clients.close()


def test_clients_stat_every_file_of_the_kubeconfig_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_text(kubeconfig_text("one"))
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(first), str(second)]))
    clients = Clients(None)

    assert clients.files() == [first, second]


def test_clients_of_clusters_no_longer_worked_are_dropped_and_stop_watching(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text("one", "two", "mgmt"))
    clients = Clients(str(path), watch=True)
    one, two = clients.get("one", "one"), clients.get("two", "two")
    management = clients.get("mgmt", "mgmt", keep=True)
    clients.retain({"one"})
    assert two.live is not None and two.live.closed  # its watches closed at once
    assert one.live is not None and not one.live.closed
    assert management.live is not None and not management.live.closed
    assert clients.get("one", "one") is one
    assert clients.get("mgmt", "mgmt") is management
    again = clients.get("two", "two")  # back in the inventory: a client of its own again
    assert again is not two and again.live is not None and not again.live.closed
    clients.close()


def test_clients_replaced_by_new_credentials_stop_watching_at_once(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text("one"))
    ticker = Ticker()
    clients = Clients(str(path), monotonic=ticker, watch=True)
    one = clients.get("one", "one")
    path.write_text(kubeconfig_text("one", token="t1"))
    ticker.t = 1.5
    renewed = clients.get("one", "one")
    assert renewed is not one
    assert one.live is not None and one.live.closed
    assert one.cached([]) == []
    clients.close()


def test_clients_of_clusters_another_replica_works_stop_watching_until_worked_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text("one", "two"))
    clients = Clients(str(path), watch=True)
    two = clients.get("two", "two")
    clients.retain({"one", "two"}, watched={"one"})
    assert clients.get("two", "two") is two  # kept (its discovery too) ...
    assert two.live is not None and two.live.closed  # ... but not watching
    clients.retain({"one", "two"}, watched={"one", "two"})
    assert not two.live.closed
    clients.close()
