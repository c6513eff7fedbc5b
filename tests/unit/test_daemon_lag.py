"""Several replicas: whether a replica's head is behind an app's rollout (it waits), from its
Git's ancestry and the order of its fetches."""

from __future__ import annotations

from pathlib import Path

import structlog
from daemon_rig import make_rig, repo_files
from structlog.testing import capture_logs

from reconciler.daemon.lag import HeadLag
from reconciler.store.db import Store

H0, H1, H2 = "0" * 40, "1" * 40, "2" * 40
HISTORY = {H1: H0, H2: H1}  # each commit's parent


def ancestry_in(known: set[str], asked: list[tuple[str, str]]) -> HeadLag:
    """A lag whose Git knows ``known`` of the history H0 <- H1 <- H2 (and says what it asked)."""

    def ancestry(older: str, newer: str) -> bool | None:
        asked.append((older, newer))
        if older not in known or newer not in known:
            return None
        current: str | None = newer
        while current is not None:
            if current == older:
                return True
            current = HISTORY.get(current)
        return False

    return HeadLag(ancestry, structlog.get_logger("test"))


def test_a_head_behind_or_not_known_to_be_ahead_waits_and_a_newer_one_decides() -> None:
    asked: list[tuple[str, str]] = []
    lag = ancestry_in({H0, H1, H2}, asked)
    lag.learn([H1])  # another replica decided the app at h1
    lag.fetch_started()
    lag.fetched(H2)
    assert not lag.behind("web", H2, H1)  # a fetch since it learned of h1: no Git asked
    assert asked == []
    assert lag.behind("web", H0, H1)  # its valid head is older (h2 did not load)
    assert not lag.behind("web", H1, H1) and not lag.behind("web", H0, None)
    assert asked == [(H0, H1)]
    assert lag.behind("web", H0, H1) and asked == [(H0, H1)]  # asked once

    unknown = ancestry_in({H0}, [])
    unknown.fetch_started()
    unknown.fetched(H0)  # fetched before the other replica decided h1
    unknown.learn([H1])
    assert unknown.behind("web", H0, H1)
    unknown.fetch_started()  # its next fetch starts after it learned of h1 ...
    unknown.fetched(H0)  # ... and still says h0: the branch was taken back there
    assert not unknown.behind("web", H0, H1)


def test_a_fetch_started_before_the_rollout_was_read_does_not_count() -> None:
    lag = ancestry_in({H0, H1}, [])
    lag.fetch_started()  # in flight while the shared rollouts are read
    lag.learn([H1])
    lag.fetched(H0)
    assert lag.behind("web", H0, H1)
    lag.fetch_started()
    lag.fetched(H1)  # its head moved: decided at h1
    assert not lag.behind("web", H1, H1)


def test_the_wait_is_said_once_per_head() -> None:
    lag = ancestry_in({H0, H1}, [])
    lag.learn([H1])
    with capture_logs() as logs:
        for _ in range(3):
            assert lag.behind("web", H0, H1)
    (said,) = logs
    assert (said["app"], said["revision"], said["decided"], said["known"]) == (
        "web",
        H0[:12],
        H1[:12],
        True,
    )
    assert said["log_level"] == "info"


def test_the_daemon_tells_its_lag_when_each_fetch_starts_and_what_it_returned(
    tmp_path: Path, store: Store
) -> None:
    rig = make_rig(tmp_path, store)
    head = rig.source.commit_files(repo_files())
    rig.tick()
    elsewhere = "e" * 40  # decided by another replica, never fetched here
    rig.daemon.lag.learn([elsewhere])
    assert rig.daemon.lag.behind("web", head, elsewhere)  # the fetch was before it learned
    rig.daemon.poke()
    rig.tick()  # a fetch started since: the branch is at head
    assert not rig.daemon.lag.behind("web", head, elsewhere)
