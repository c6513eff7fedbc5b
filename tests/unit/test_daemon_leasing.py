"""What a replica may do with a Lease (pure): expiry as observed, live replicas, decisions."""

from __future__ import annotations

from reconciler.daemon.leasing import (
    Action,
    Observer,
    Session,
    alive,
    decide,
    live_replicas,
    next_round_in,
    valid_until,
)
from reconciler.daemon.replicas import ShardSettings, pass_outlives_lease


def session(name: str, renewed: str, *, holder: str | None = "", duration: float = 15.0) -> Session:
    return Session(name, name if holder == "" else holder, duration, (holder, renewed))


def test_a_lease_seen_for_the_first_time_counts_as_just_renewed() -> None:
    observer = Observer()
    sessions = {"a": session("a", "t1")}

    # Whatever its renewTime says (another machine's clock), it is live for a whole duration.
    assert live_replicas(sessions, observer, 1000.0, me="me", my_session_valid=True) == ["a", "me"]
    assert live_replicas(sessions, observer, 1014.9, me="me", my_session_valid=True) == ["a", "me"]


def test_a_lease_nobody_renews_expires_after_its_duration_as_observed() -> None:
    observer = Observer()
    live_replicas({"a": session("a", "t1")}, observer, 100.0, me="me", my_session_valid=True)
    live_replicas({"a": session("a", "t1")}, observer, 110.0, me="me", my_session_valid=True)

    assert live_replicas(
        {"a": session("a", "t1")}, observer, 115.0, me="me", my_session_valid=True
    ) == ["me"]


def test_a_renewal_restarts_the_count() -> None:
    observer = Observer()
    live_replicas({"a": session("a", "t1")}, observer, 100.0, me="me", my_session_valid=True)
    live_replicas({"a": session("a", "t2")}, observer, 110.0, me="me", my_session_valid=True)

    assert "a" in live_replicas(
        {"a": session("a", "t2")}, observer, 124.0, me="me", my_session_valid=True
    )
    assert "a" not in live_replicas(
        {"a": session("a", "t2")}, observer, 125.0, me="me", my_session_valid=True
    )


def test_a_released_session_is_not_live_and_an_invalid_own_session_leaves_us_out() -> None:
    sessions = {"a": session("a", "t1", holder=None), "me": session("me", "t1")}

    assert live_replicas(sessions, Observer(), 0.0, me="me", my_session_valid=False) == []


def test_a_holder_without_any_session_lease_is_given_one_duration_to_show_up() -> None:
    observer = Observer()

    assert alive("ghost", {}, observer, 50.0, 15.0)
    assert alive("ghost", {}, observer, 64.0, 15.0)
    assert not alive("ghost", {}, observer, 65.0, 15.0)


def test_what_to_do_with_a_cluster_lease() -> None:
    assert decide(False, None, "me", False).action is Action.CREATE
    assert decide(True, None, "me", False).action is Action.TAKE
    assert decide(True, "me", "me", True).action is Action.ADOPT
    busy = decide(True, "other", "me", True)
    assert busy.action is Action.WAIT
    assert "other" in busy.reason
    taken = decide(True, "other", "me", False)
    assert taken.action is Action.TAKE
    assert "expired" in taken.reason


def test_our_session_ends_before_anyone_else_may_count_it_expired() -> None:
    # Others start counting when they see the renewal, which is after we sent it.
    assert valid_until(sent_at=100.0, duration=15.0, margin=5.0) == 110.0


def test_the_observer_forgets_replicas_not_looked_at_for_long() -> None:
    observer = Observer()
    observer.observe("old", ("x",), 0.0)
    observer.observe("new", ("y",), 95.0)
    observer.forget(older_than=50.0, now=100.0)

    assert set(observer.seen) == {"new"}


def test_one_failed_renewal_is_retried_while_the_session_still_holds() -> None:
    for duration in (1.0, 2.0, 3.0, 3.9, 10.4, 15.0, 60.0):
        for renew in (0.1, 0.5, 1.0, 1.5, 5.0, 30.0):
            settings = ShardSettings("ns", "a", "i", duration=duration, renew=renew)
            if renew > settings.seconds / 2:
                continue  # refused by the command line
            valid = valid_until(0.0, settings.seconds, settings.margin)  # renewed at 0
            assert next_round_in(renew, 0.0, True) == renew
            failed_at = renew  # the next renewal fails at once
            retry_at = failed_at + next_round_in(renew, 0.0, False)
            assert retry_at < valid, (duration, renew)


def test_a_long_round_waits_less_and_never_a_negative_time() -> None:
    assert next_round_in(5.0, 1.5, True) == 3.5
    assert next_round_in(5.0, 9.0, True) == 0.0


def test_the_holder_judges_its_session_by_the_whole_seconds_the_lease_says() -> None:
    # The others read leaseDurationSeconds (whole seconds): the holder must not count longer.
    for duration, written in ((10.4, 10), (10.9, 10), (15.0, 15), (1.5, 1)):
        settings = ShardSettings("ns", "a", "i", duration=duration, renew=0.1)
        assert settings.seconds == written
        assert valid_until(0.0, settings.seconds, settings.margin) < written


def test_a_pass_that_may_outlive_the_lease_is_named() -> None:
    settings = ShardSettings("ns", "a", "i", duration=15.0, renew=5.0)

    problem = pass_outlives_lease(300.0, settings)
    assert problem is not None and "--cluster-timeout 300s" in problem
    assert pass_outlives_lease(15.0, settings) is None
