"""Label selector semantics, in the spirit of Kubernetes' own selector tests."""

from __future__ import annotations

import pytest

from reconciler.selectors import (
    LabelSelector,
    Requirement,
    expression_problems,
    label_key_problem,
    label_value_problem,
)

Expr = tuple[str, str, list[str]]

# (matchLabels, matchExpressions, labels, matches) — cases from k8s.io/apimachinery's
# TestLabelSelectorAsSelector / TestRequirementMatches, translated to our input shape.
CASES: list[tuple[dict[str, str], list[Expr], dict[str, str], bool]] = [
    ({}, [], {}, True),  # empty selector selects everything
    ({}, [], {"a": "b"}, True),
    ({"x": "y"}, [], {"x": "y"}, True),
    ({"x": "y"}, [], {"x": "y", "z": "w"}, True),
    ({"x": "y"}, [], {"x": "z"}, False),
    ({"x": "y"}, [], {}, False),
    ({"x": "y", "a": "b"}, [], {"x": "y"}, False),  # all terms must hold
    ({}, [("x", "In", ["y", "z"])], {"x": "z"}, True),
    ({}, [("x", "In", ["y", "z"])], {"x": "w"}, False),
    ({}, [("x", "In", ["y"])], {}, False),  # In needs the key
    ({}, [("x", "NotIn", ["y"])], {"x": "z"}, True),
    ({}, [("x", "NotIn", ["y"])], {"x": "y"}, False),
    ({}, [("x", "NotIn", ["y"])], {}, True),  # a missing key satisfies NotIn
    ({}, [("x", "Exists", [])], {"x": ""}, True),
    ({}, [("x", "Exists", [])], {"y": "x"}, False),
    ({}, [("x", "DoesNotExist", [])], {}, True),
    ({}, [("x", "DoesNotExist", [])], {"x": "y"}, False),
    ({"a": "b"}, [("x", "In", ["y"]), ("z", "DoesNotExist", [])], {"a": "b", "x": "y"}, True),
    (
        {"a": "b"},
        [("x", "In", ["y"]), ("z", "DoesNotExist", [])],
        {"a": "b", "x": "y", "z": ""},
        False,
    ),
    ({"a": "b"}, [("a", "NotIn", ["b"])], {"a": "b"}, False),  # contradictory: nothing
]


@pytest.mark.parametrize(("match_labels", "expressions", "labels", "expected"), CASES)
def test_selector_matches_like_kubernetes(
    match_labels: dict[str, str], expressions: list[Expr], labels: dict[str, str], expected: bool
) -> None:
    selector = LabelSelector.build(match_labels, expressions)
    assert selector.matches(labels) is expected


def test_selector_prints_in_kubectl_syntax() -> None:
    selector = LabelSelector.build(
        {"provider": "AWS"},
        [
            ("env", "In", ["prod", "dev"]),
            ("x", "NotIn", ["a"]),
            ("y", "Exists", []),
            ("z", "DoesNotExist", []),
        ],
    )
    assert str(selector) == "provider=AWS,env in (dev,prod),x notin (a),y,!z"


def test_empty_selector_prints_as_everything() -> None:
    assert str(LabelSelector.build({}, [])) == "<everything>"


def test_failing_lists_only_the_unmet_requirements() -> None:
    selector = LabelSelector.build({"a": "b", "c": "d"}, [])
    assert selector.failing({"a": "b", "c": "x"}) == [Requirement("c", "=", ("d",))]


@pytest.mark.parametrize(
    ("key", "operator", "values", "problem"),
    [
        ("env", "in", ["prod"], ("operator", "unknown operator 'in'")),
        ("env", "Equals", ["prod"], ("operator", "unknown operator 'Equals'")),
        ("env", "In", [], ("values", "operator In needs at least one value")),
        ("env", "NotIn", [], ("values", "operator NotIn needs at least one value")),
        ("env", "Exists", ["x"], ("values", "operator Exists takes no values")),
        ("env", "DoesNotExist", ["x"], ("values", "operator DoesNotExist takes no values")),
        ("bad key", "Exists", [], ("key", "invalid label key 'bad key'")),
        ("env", "In", ["not valid!"], ("values[0]", "invalid label value 'not valid!'")),
    ],
)
def test_invalid_expressions_are_reported_with_their_field(
    key: str, operator: str, values: list[str], problem: tuple[str, str]
) -> None:
    problems = expression_problems(key, operator, values)
    assert len(problems) == 1
    assert problems[0][0] == problem[0]
    assert problems[0][1].startswith(problem[1])


@pytest.mark.parametrize("operator", ["In", "NotIn", "Exists", "DoesNotExist"])
def test_valid_expressions_have_no_problems(operator: str) -> None:
    values = ["a"] if operator in ("In", "NotIn") else []
    assert expression_problems("topology.kubernetes.io/zone", operator, values) == []


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("app", True),
        ("app.kubernetes.io/name", True),
        ("a_b-c.d", True),
        ("A", True),
        ("", False),
        ("-a", False),
        ("a-", False),
        ("a b", False),
        ("x" * 64, False),
        ("Example.com/name", False),  # prefix must be a lowercase DNS subdomain
        ("/name", False),
        ("example.com/", False),
    ],
)
def test_label_keys_follow_kubernetes_qualified_names(key: str, valid: bool) -> None:
    assert (label_key_problem(key) is None) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [("", True), ("prod", True), ("v1.2_x-y", True), ("-x", False), ("x" * 64, False)],
)
def test_label_values_follow_kubernetes_rules(value: str, valid: bool) -> None:
    assert (label_value_problem(value) is None) is valid
