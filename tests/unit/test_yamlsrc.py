"""YAML loading that remembers lines."""

from __future__ import annotations

import pytest

from reconciler.yamlsrc import YamlError, format_path, load_documents, retype_plain

TEXT = """\
a: 1
b:
  - x
  - y: 2
---
# comment only documents and empty ones are dropped
---
c: "q"
"""


def test_every_node_knows_its_line() -> None:
    first, second = load_documents(TEXT)
    assert first.value == {"a": 1, "b": ["x", {"y": 2}]}
    assert first.line_of(("a",)) == 1
    assert first.line_of(("b", 1, "y")) == 4
    assert second.value == {"c": "q"}
    assert second.line == 8


def test_a_missing_path_falls_back_to_its_nearest_ancestor() -> None:
    (doc,) = load_documents("a:\n  b: 1\n")
    assert doc.line_of(("a", "nope", 3)) == 1


def test_syntax_errors_name_the_line_and_keep_earlier_documents() -> None:
    with pytest.raises(YamlError) as err:
        load_documents("a: 1\n---\nb: [1,\n")
    assert err.value.issues[0].line == 4
    assert "invalid YAML" in err.value.issues[0].message
    assert [d.value for d in err.value.documents] == [{"a": 1}]


def test_duplicate_keys_are_errors_not_silently_overwritten() -> None:
    with pytest.raises(YamlError) as err:
        load_documents("a: 1\nb: 2\na: 3\n")
    assert [(i.line, i.message) for i in err.value.issues] == [(3, "duplicate key 'a'")]


def test_merge_keys_and_anchors_resolve_like_yaml() -> None:
    (doc,) = load_documents("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n")
    assert doc.value["use"] == {"x": 1, "y": 3}


def test_timestamps_stay_text_as_in_kubernetes() -> None:
    (doc,) = load_documents("day: 2024-01-02\n")
    assert doc.value == {"day": "2024-01-02"}


def test_unquoted_strings_with_a_dollar_are_remembered_as_plain() -> None:
    (doc,) = load_documents('a: ${x}\nb: "${x}"\n')
    assert doc.plain == frozenset({("a",)})


@pytest.mark.parametrize(
    ("text", "value"),
    [("5", 5), ("1.5", 1.5), ("true", True), ("null", None), ("a: b", "a: b"), ("05x", "05x")],
)
def test_retype_plain_types_text_like_an_unquoted_scalar(text: str, value: object) -> None:
    assert retype_plain(text) == value


def test_paths_format_as_dotted_fields_with_indexes() -> None:
    assert format_path(("spec", "overrides", 0, "name")) == "spec.overrides[0].name"
