"""${cluster.*} templates and the $${ escape."""

from __future__ import annotations

import re

import pytest

from reconciler.templates import (
    Context,
    Ref,
    SiteError,
    TemplateSyntaxError,
    find_sites,
    parse,
    substitute,
)
from reconciler.yamlsrc import load_documents

CTX = Context(
    "us-west-1",
    {"provider": "AWS", "topology.kubernetes.io/zone": "a"},
    {"domain": "usw1.example.com", "replicas": "5"},
)


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("${cluster.name}", "us-west-1"),
        ("hello.${cluster.vars.domain}", "hello.usw1.example.com"),
        ("${cluster.labels.provider}-${cluster.name}", "AWS-us-west-1"),
        ("${cluster.labels.topology.kubernetes.io/zone}", "a"),  # keys may hold dots and slashes
        ("$${cluster.name}", "${cluster.name}"),  # escaped: literal
        ("$${HOME} and ${cluster.name}", "${HOME} and us-west-1"),
        ("$5 on ${cluster.name}", "$5 on us-west-1"),  # a lone $ is text
    ],
)
def test_templates_render_cluster_values(text: str, rendered: str) -> None:
    template = parse(text)
    assert template is not None
    assert template.render(CTX) == rendered


def test_text_without_templates_needs_no_work() -> None:
    assert parse("plain $ text") is None


@pytest.mark.parametrize(
    "text",
    [
        "${cluster.nme}",
        "${cluster}",
        "${HOME}",
        "${cluster.vars.}",
        "${ cluster.name }",
        "${cluster.name",
    ],
)
def test_malformed_references_are_syntax_errors(text: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        parse(text)


def test_an_undefined_var_names_the_variable_and_cluster() -> None:
    template = parse("${cluster.vars.domian}")
    assert template is not None and template.refs == [Ref("vars", "domian")]
    with pytest.raises(
        Exception,
        match=re.escape(
            "unknown variable ${cluster.vars.domian} (cluster us-west-1 has no var 'domian')"
        ),
    ):
        template.render(CTX)


def test_substitution_types_unquoted_scalars_and_keeps_quoted_ones_strings() -> None:
    (doc,) = load_documents(
        'replicas: ${cluster.vars.replicas}\nquoted: "${cluster.vars.replicas}"\nmixed: '
        "n-${cluster.vars.replicas}\n"
    )
    sites, problems = find_sites(doc)
    assert problems == []
    out = substitute(doc.value, sites, CTX)
    assert out == {"replicas": 5, "quoted": "5", "mixed": "n-5"}


def test_substitution_leaves_the_source_untouched() -> None:
    (doc,) = load_documents("a:\n  b: ${cluster.name}\n")
    sites, _ = find_sites(doc)
    substitute(doc.value, sites, CTX)
    assert doc.value == {"a": {"b": "${cluster.name}"}}


def test_a_failing_site_reports_its_line() -> None:
    (doc,) = load_documents("a: 1\nb:\n  - ${cluster.vars.nope}\n")
    sites, _ = find_sites(doc)
    with pytest.raises(SiteError) as err:
        substitute(doc.value, sites, CTX)
    assert err.value.site.line == 3


def test_templates_in_mapping_keys_are_rejected_with_their_line() -> None:
    (doc,) = load_documents("labels:\n  ${cluster.name}: x\n")
    sites, problems = find_sites(doc)
    assert sites == []
    assert [(p.line, p.message) for p in problems] == [
        (2, "templates are not allowed in mapping keys")
    ]


def test_sites_can_be_found_below_a_subtree_with_relative_paths() -> None:
    (doc,) = load_documents("spec:\n  values:\n    host: ${cluster.vars.domain}\n")
    sites, _ = find_sites(doc, ("spec", "values"))
    assert [(s.path, s.line) for s in sites] == [(("host",), 3)]


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("3", 3),
        ("1.5", 1.5),
        ("true", True),
        ("1.20", "1.20"),  # a float would lose the trailing zero
        ("01234", "01234"),  # an octal int would lose the text
        ("1e3", "1e3"),
        ("yes", "yes"),
        ("", ""),
    ],
)
def test_unquoted_substitution_retypes_only_when_no_text_is_lost(var: str, value: object) -> None:
    (doc,) = load_documents("v: ${cluster.vars.v}\n")
    sites, _ = find_sites(doc)
    out = substitute(doc.value, sites, Context("c", {}, {"v": var}))
    assert out == {"v": value}
    assert type(out["v"]) is type(value)
