"""The daemon's HTTP endpoint on loopback: /healthz, /readyz, /metrics (real sockets)."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from reconciler.daemon import http as metrics_module
from reconciler.daemon.http import HttpEndpoint, parse_listen
from reconciler.daemon.metrics import Metrics
from reconciler.errors import ReconcilerError


class Flags:
    ready = False
    healthy = True


@pytest.fixture
def flags() -> Flags:
    return Flags()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def endpoint(metrics: Metrics, flags: Flags) -> Iterator[HttpEndpoint]:
    server = HttpEndpoint(
        "127.0.0.1:0", metrics, ready=lambda: flags.ready, healthy=lambda: flags.healthy
    ).start()
    yield server
    server.stop()


def get(endpoint: HttpEndpoint, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_port_0_binds_a_free_loopback_port(endpoint: HttpEndpoint) -> None:
    assert endpoint.host == "127.0.0.1"
    assert endpoint.port > 0


def test_readyz_is_503_until_the_first_valid_load_then_200(
    endpoint: HttpEndpoint, flags: Flags
) -> None:
    assert get(endpoint, "/readyz") == (503, "no valid config loaded yet\n")
    flags.ready = True
    assert get(endpoint, "/readyz") == (200, "ok\n")


def test_healthz_follows_the_loops_health(endpoint: HttpEndpoint, flags: Flags) -> None:
    assert get(endpoint, "/healthz")[0] == 200
    flags.healthy = False
    assert get(endpoint, "/healthz")[0] == 503


def test_metrics_are_served_in_the_prometheus_text_format(
    endpoint: HttpEndpoint, metrics: Metrics
) -> None:
    metrics.reconcile_duration.labels("us-west-1").observe(0.3)
    metrics.objects_applied.labels("us-west-1", "created").inc(3)
    metrics.drifted_objects.labels("web", "us-west-1").set(2)
    metrics.last_sync.labels("web", "us-west-1").set(1795312345.0)
    metrics.git_errors.inc()

    status, body = get(endpoint, "/metrics")

    assert status == 200
    for line in (
        'reconciler_reconcile_duration_seconds_count{cluster="us-west-1"} 1.0',
        'reconciler_objects_applied_total{action="created",cluster="us-west-1"} 3.0',
        'reconciler_drifted_objects{app="web",cluster="us-west-1"} 2.0',
        'reconciler_last_successful_sync_timestamp_seconds{app="web",cluster="us-west-1"} '
        "1.795312345e+09",
        "reconciler_git_errors_total 1.0",
    ):
        assert line in body.splitlines()


def test_forgetting_a_target_drops_its_series(metrics: Metrics) -> None:
    metrics.drifted_objects.labels("web", "b").set(1)
    metrics.forget_target("web", "b")
    metrics.forget_target("never", "seen")

    assert b'app="web"' not in metrics.exposition()


def test_an_unknown_path_is_404(endpoint: HttpEndpoint) -> None:
    assert get(endpoint, "/")[0] == 404


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:9465", ("127.0.0.1", 9465)),
        ("0", ("127.0.0.1", 0)),
        (":9000", ("127.0.0.1", 9000)),
        ("[::1]:9465", ("::1", 9465)),
    ],
)
def test_listen_addresses_parse(text: str, address: tuple[str, int]) -> None:
    assert parse_listen(text) == address


def test_a_busy_port_is_one_clear_error(endpoint: HttpEndpoint, metrics: Metrics) -> None:
    with pytest.raises(ReconcilerError, match=r"cannot listen: Address already in use"):
        HttpEndpoint(f"127.0.0.1:{endpoint.port}", metrics, ready=lambda: True)


def idle_connection(endpoint: HttpEndpoint) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", endpoint.port), timeout=5)
    return sock


def test_an_idle_client_is_disconnected_after_the_socket_timeout(
    metrics: Metrics, flags: Flags, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_module._Server, "request_timeout", 0.3)
    server = HttpEndpoint("127.0.0.1:0", metrics, ready=lambda: flags.ready).start()
    try:
        with idle_connection(server) as sock:
            started = time.monotonic()
            assert sock.recv(1024) == b""  # closed by the server, not by our 5 s timeout
            assert time.monotonic() - started < 3
    finally:
        server.stop()


def test_connections_beyond_the_cap_are_closed_and_served_again_once_below_it(
    metrics: Metrics, flags: Flags, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_module._Server, "max_connections", 2)
    server = HttpEndpoint("127.0.0.1:0", metrics, ready=lambda: flags.ready).start()
    try:
        idle = [idle_connection(server) for _ in range(2)]
        with idle_connection(server) as refused:
            assert refused.recv(1024) == b""  # closed at once instead of holding a thread
        for sock in idle:
            sock.close()

        def served() -> bool:
            try:
                return get(server, "/healthz") == (200, "ok\n")
            except OSError:
                return False

        deadline = time.monotonic() + 5
        while not served():
            assert time.monotonic() < deadline, "never served again after idle clients left"
            time.sleep(0.05)
    finally:
        server.stop()
