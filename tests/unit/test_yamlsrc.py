"""YAML loading that remembers lines."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from reconciler.yamlsrc import YamlError, format_path, load_documents, load_fast, retype_plain

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


@pytest.mark.parametrize(
    "text",
    ["1.20", "1.0e+3", "007", "0x10", "+5", "1_000", "True", "yes", "off", "~", "", "12:30"],
)
def test_retype_plain_keeps_text_that_would_not_read_back_the_same(text: str) -> None:
    assert retype_plain(text) == text


@pytest.mark.parametrize(
    ("text", "value"),
    [("-3", -3), ("0", 0), ("0.5", 0.5), ("-1.25", -1.25), ("false", False), ("null", None)],
)
def test_retype_plain_types_text_that_reads_back_the_same(text: str, value: object) -> None:
    assert retype_plain(text) == value
    assert type(retype_plain(text)) is type(value)


def test_paths_format_as_dotted_fields_with_indexes() -> None:
    assert format_path(("spec", "overrides", 0, "name")) == "spec.overrides[0].name"


# ---- typing like Kubernetes' YAML (go-yaml v2 via sigs.k8s.io/yaml) ---------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("t: 12:30\n", {"t": "12:30"}),  # YAML 1.1 base 60 would make this 750
        ("t: -1:30:00\n", {"t": "-1:30:00"}),
        ("t: 1:20.5\n", {"t": "1:20.5"}),  # and this float 80.5
        ("t: 1_000\n", {"t": 1000}),
        ("t: 0x1f\n", {"t": 31}),
        ("t: 1.5\n", {"t": 1.5}),
        ("t: yes\n", {"t": True}),  # YAML 1.1 booleans stay booleans, as in go-yaml v2
        ("t: off\n", {"t": False}),
    ],
)
def test_scalars_are_typed_like_kubernetes_yaml_without_base_60(text: str, value: object) -> None:
    (doc,) = load_documents(text)
    assert doc.value == value
    assert load_fast(text) == [value]


def test_tool_output_keeps_keys_and_timestamps_as_text() -> None:
    text = (
        "data:\n  8080: http\n  true: x\n  1.5: y\nreleased: 2024-01-01\nat: 2024-01-01T10:00:00Z\n"
    )
    assert load_fast(text) == [
        {
            "data": {"8080": "http", "true": "x", "1.5": "y"},
            "released": "2024-01-01",
            "at": "2024-01-01T10:00:00Z",
        }
    ]


def test_tool_output_drops_empty_documents_and_reports_bad_yaml() -> None:
    assert load_fast("---\n# only a comment\n---\na: 1\n---\n") == [{"a": 1}]
    with pytest.raises(YamlError):
        load_fast("a: [1,\n")


def _laughs(levels: int, width: int = 10) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * width)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("load", [load_documents, load_fast])
def test_alias_expansion_bombs_are_rejected_quickly(load: Callable[[str], object]) -> None:
    text = "kind: ConfigMap\n" + _laughs(9)  # ~450 bytes that expand to 10^9 nodes
    start = time.monotonic()
    with pytest.raises(YamlError) as err:
        load(text)
    assert time.monotonic() - start < 2
    (issue,) = err.value.issues
    assert "excessive aliasing" in issue.message
    assert issue.line > 1


def test_moderate_alias_use_is_fine() -> None:
    (doc,) = load_documents(_laughs(3))  # 1,000 leaves from 3 anchors
    assert len(doc.value["a2"]) == 10 and doc.value["a2"][0][0] == ["x"] * 10


def test_an_anchor_used_many_times_in_a_large_document_is_fine() -> None:
    items = "\n".join(f"  - {{name: item-{i}, <<: *defaults}}" for i in range(20_000))
    (doc,) = load_documents(f"defaults: &defaults {{a: 1, b: 2, c: 3}}\nitems:\n{items}\n")
    assert doc.value["items"][-1] == {"name": "item-19999", "a": 1, "b": 2, "c": 3}
