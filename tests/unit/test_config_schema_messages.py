"""pydantic's number errors read as the loader's other schema messages, not pydantic's own
("Input should be less than or equal to 100")."""

from __future__ import annotations

import pytest
from conftest import RepoFactory
from repo_snippets import settings

from reconciler.config.load import load_repo
from reconciler.errors import ConfigError


@pytest.mark.parametrize(
    ("guard", "expected"),
    [
        pytest.param("{maxPercent: 150}", "spec.pruneGuard.maxPercent: must be <= 100", id="le"),
        pytest.param("{maxPercent: -1}", "spec.pruneGuard.maxPercent: must be >= 0", id="ge"),
        pytest.param(
            "{maxPercent: '25%'}",
            "spec.pruneGuard.maxPercent: expected a number, got a string",
            id="number as text",
        ),
        pytest.param(
            "{maxObjects: ten}",
            "spec.pruneGuard.maxObjects: expected an integer, got a string",
            id="integer as text",
        ),
        pytest.param(
            "{maxObjects: 2.5}",
            "spec.pruneGuard.maxObjects: expected an integer, got a number",
            id="integer with a fraction",
        ),
    ],
)
def test_number_errors_are_in_the_house_style(
    make_repo: RepoFactory, guard: str, expected: str
) -> None:
    root = make_repo({"reconciler.yaml": settings(f"allowEmpty: true, pruneGuard: {guard}")})
    with pytest.raises(ConfigError) as err:
        load_repo(root)
    assert [str(p) for p in err.value.problems] == [f"reconciler.yaml:3: {expected}"]
