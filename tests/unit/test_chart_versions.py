"""Version constraints in Helm's (Masterminds/semver v3) syntax."""

from __future__ import annotations

import pytest

from reconciler.charts.versions import ConstraintError, parse_constraint, parse_version

VERSIONS = ["0.0.3", "0.0.4", "0.2.3", "0.2.9", "0.3.0", "1.0.0", "1.2.0", "1.2.3", "1.2.10",
            "1.3.0-rc.1", "1.3.0", "1.4.5", "1.4.6", "2.0.0", "2.1.0"]  # fmt: skip


@pytest.mark.parametrize(
    ("constraint", "best"),
    [
        ("1.2.3", "1.2.3"),
        ("=1.2.3", "1.2.3"),
        ("v1.2.3", "1.2.3"),
        ("1.2", "1.2.10"),  # a missing part is a wildcard
        ("1.2.x", "1.2.10"),
        ("1.x", "1.4.6"),
        ("*", "2.1.0"),
        ("^1.2", "1.4.6"),
        ("^1.2.3", "1.4.6"),
        ("^0.2.3", "0.2.9"),
        ("^0.0.3", "0.0.3"),
        ("^0.0", "0.0.4"),
        ("^0", "0.3.0"),
        ("~1.2.3", "1.2.10"),
        ("~1.2", "1.2.10"),
        ("~1", "1.4.6"),
        ("~>1.2", "1.2.10"),
        (">=1.0 <2.0", "1.4.6"),
        (">=1.0, <2.0", "1.4.6"),
        (">= 1.0, < 2.0", "1.4.6"),
        ("=>1.0 =<1.2.3", "1.2.3"),
        (">1.2", "2.1.0"),
        (">1.2 <2", "1.4.6"),
        ("<1.2", "1.0.0"),
        ("<=1.2", "1.2.10"),
        ("<=1.2.3", "1.2.3"),
        ("1.2 - 1.4.5", "1.4.5"),
        ("1.2 - 1.4", "1.4.6"),
        ("^1.2, !=1.4.6", "1.4.5"),
        ("!=1.4.x <2", "1.3.0"),
        ("<1.0 || >=2.0 <2.1", "2.0.0"),
        ("3.x", None),
    ],
)
def test_a_constraint_picks_the_highest_version_it_allows(constraint: str, best: str) -> None:
    assert parse_constraint(constraint).best(VERSIONS) == best


def test_a_prerelease_is_picked_only_when_the_constraint_names_one() -> None:
    assert parse_constraint(">=1.2.10 <1.3.0").best(VERSIONS) == "1.2.10"
    assert parse_constraint(">=1.3.0-0 <1.3.0").best(VERSIONS) == "1.3.0-rc.1"
    assert parse_constraint("1.3.0-rc.1").best(VERSIONS) == "1.3.0-rc.1"


def test_versions_are_read_as_helm_reads_them() -> None:
    assert parse_constraint("^1.0").best(["v1.5.0", "1.4.0", "not-a-version", "1.6"]) == "1.6"
    assert parse_version("v1.2.3") == parse_version("1.2.3")
    assert parse_version("1.2.3+build.7") is not None
    assert parse_version("latest") is None


def test_only_a_single_full_equality_is_exact() -> None:
    assert str(parse_constraint("1.2.3").exact) == "1.2.3"
    assert str(parse_constraint("=1.2.3-rc.1").exact) == "1.2.3-rc.1"
    for ranged in ("1.2", "^1.2.3", ">=1.2.3", "1.2.3 || 1.2.4", "1.2.3 1.2.3"):
        assert parse_constraint(ranged).exact is None


@pytest.mark.parametrize(
    ("constraint", "message"),
    [
        ("", "empty"),
        ("latest", "'latest' is not a version"),
        (">=1.0 <two", "'two' is not a version"),
        ("1.2 ||", "empty alternative"),
        ("1.x-rc.1", "a wildcard has no prerelease"),
        ("=~1.2", "is not a version"),
    ],
)
def test_a_bad_constraint_says_which_part(constraint: str, message: str) -> None:
    with pytest.raises(ConstraintError, match=message):
        parse_constraint(constraint)
