"""`render`, `explain` and `validate` through click, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner
from conftest import FIXTURES, SAMPLE_REPO, RepoFactory
from repo_snippets import app, cluster

from reconciler.cli.render import register_render_commands
from reconciler.toolchain import Toolchain


@click.group()
def cli() -> None:
    """A stand-in for the main group."""


register_render_commands(cli)


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_render_shows_aws_replicas_and_the_cluster_host() -> None:
    code, out, err = run("render", SAMPLE_REPO, "--cluster", "us-west-1", "--app", "hello-world")
    assert (code, err) == (0, "")
    docs = [d for d in yaml.safe_load_all(out) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    ingress = next(d for d in docs if d["kind"] == "Ingress")
    assert deployment["spec"]["replicas"] == 5
    assert ingress["spec"]["rules"][0]["host"] == "hello.usw1.example.com"
    assert out.startswith("# app: hello-world, cluster: us-west-1\n---\n")


def test_render_json_lists_targets_with_their_objects() -> None:
    code, out, _ = run("render", SAMPLE_REPO, "--app", "hello-world", "-o", "json")
    assert code == 0
    targets = json.loads(out)
    assert [(t["app"], t["cluster"], len(t["objects"])) for t in targets] == [
        ("hello-world", "beijing-1", 3),
        ("hello-world", "beijing-2", 3),
        ("hello-world", "us-west-1", 3),
    ]


def test_render_of_an_unknown_app_suggests_the_closest_name() -> None:
    code, _, err = run("render", SAMPLE_REPO, "--app", "hello-wrld")
    assert code == 2
    assert err == "error: unknown app 'hello-wrld' (did you mean 'hello-world'?)\n"


def test_render_errors_go_to_stderr_and_exit_2_while_good_targets_print(
    make_repo: RepoFactory,
) -> None:
    cm = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {d: "
        "'${cluster.vars.domain}'}\n"
    )
    root = make_repo(
        {
            "clusters/a.yaml": cluster("a", vars="{domain: a.example.com}"),
            "clusters/b.yaml": cluster("b"),
            "apps/x/app.yaml": app("x", "source: {manifests: m/}\nplacement: {clusters: [a, b]}"),
            "apps/x/m/cm.yaml": cm,
        }
    )
    code, out, err = run("render", root)
    assert code == 2
    assert "d: a.example.com" in out
    assert err == (
        "error: app x, cluster b: apps/x/m/cm.yaml:4: unknown variable ${cluster.vars.domain} "
        "(cluster b has no var 'domain')\n"
    )


def test_explain_says_which_rule_placed_beijing_2() -> None:
    code, out, _ = run("explain", SAMPLE_REPO, "--app", "hello-world", "--cluster", "beijing-2")
    assert code == 0
    assert out.splitlines() == [
        "app hello-world on cluster beijing-2: placed",
        "  - in group beijing",
        "renders 3 object(s)",
        "overrides, in the order they apply (later wins):",
        "  1. aws-high-availability (apps/hello-world/app.yaml:15): skipped, does not match "
        "selector: provider=AWS (needs provider=AWS, has provider=Aliyun)",
    ]


def test_explain_lists_each_applied_override_with_the_fields_it_changed() -> None:
    code, out, _ = run("explain", SAMPLE_REPO, "--app", "hello-world", "--cluster", "us-west-1")
    assert code == 0
    assert out.splitlines()[-2:] == [
        "  1. aws-high-availability (apps/hello-world/app.yaml:15): applies, matches selector: "
        "provider=AWS",
        "       Deployment.apps/demo/hello-world spec.replicas: 3 -> 5",
    ]


def test_explain_covers_helm_value_overrides_in_order(tools: Toolchain) -> None:
    code, out, _ = run("explain", SAMPLE_REPO, "--app", "guestbook", "--cluster", "us-west-1")
    assert code == 0
    assert out.splitlines()[-3:] == [
        "  1. beijing-registry-mirror (apps/guestbook/app.yaml:22): skipped, not in group beijing "
        "(needs region=cn-beijing, has region=us-west)",
        "  2. us-west-1-capacity (apps/guestbook/app.yaml:29): applies, listed in target.clusters",
        "       helm values replicaCount: 2 -> 4",
    ]


def test_explain_says_why_an_app_is_not_placed(make_repo: RepoFactory) -> None:
    root = make_repo(
        {
            "clusters/a.yaml": cluster("a", labels="{env: dev}"),
            "apps/x/app.yaml": app(
                "x", "source: {manifests: []}\nplacement: {selector: {matchLabels: {env: prod}}}"
            ),
        }
    )
    code, out, _ = run("explain", root, "--app", "x", "--cluster", "a")
    assert code == 0
    assert out.splitlines() == [
        "app x on cluster a: not placed",
        "  - does not match selector: env=prod (needs env=prod, has env=dev)",
    ]


def test_explain_reports_excluded_and_paused_clusters(make_repo: RepoFactory) -> None:
    root = make_repo(
        {
            "clusters/a.yaml": cluster("a"),
            "clusters/b.yaml": cluster("b", paused=True),
            "apps/x/app.yaml": app(
                "x", "source: {manifests: []}\nplacement: {clusters: [a, b], exclude: [a]}"
            ),
        }
    )
    _, out_a, _ = run("explain", root, "--app", "x", "--cluster", "a")
    _, out_b, _ = run("explain", root, "--app", "x", "--cluster", "b")
    assert out_a.splitlines()[:3] == [
        "app x on cluster a: not placed",
        "  - listed in placement.clusters",
        "  - excluded by placement.exclude",
    ]
    assert out_b.splitlines()[:3] == [
        "app x on cluster b: placed, but the cluster is paused: skipped",
        "  - listed in placement.clusters",
        "  - paused: skipped (spec.paused: true)",
    ]


def test_validate_accepts_the_sample_repo(tools: Toolchain) -> None:
    code, out, _ = run("validate", SAMPLE_REPO)
    assert code == 0
    assert out == "valid: 3 cluster(s), 1 group(s), 3 app(s), 9 target(s) rendered\n"


def test_validate_reports_a_typo_and_a_broken_manifest_with_exit_2() -> None:
    code, out, err = run("validate", FIXTURES / "typo-and-broken-manifest")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: apps/web/app.yaml:13: spec.overrides[0].replicsa: unknown field 'replicsa' (did "
        "you mean 'replicas'?)",
        "error: apps/web/manifests/configmap.yaml:7: invalid YAML: found unexpected end of stream "
        "(while scanning a quoted scalar at line 6)",
        f"error: 2 problem(s) in {FIXTURES / 'typo-and-broken-manifest'}",
    ]


def test_validate_also_fails_on_render_errors(make_repo: RepoFactory) -> None:
    root = make_repo(
        {
            "clusters/a.yaml": cluster("a"),
            "apps/x/app.yaml": app(
                "x",
                "source: {manifests: m/}\nplacement: {clusters: [a]}\noverrides:\n- name: o\n  "
                "patches:\n"
                "  - json: [{op: remove, path: /spec}]",
            ),
            "apps/x/m/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        }
    )
    code, _, err = run("validate", root)
    assert code == 2
    # located at the op (line 11), not at the override (line 9)
    assert err.splitlines()[0].startswith(
        "error: app x, cluster a: apps/x/app.yaml:11: override o: patches[0].json[0] "
        "(remove /spec) cannot apply to ConfigMap/c"
    )


@pytest.mark.parametrize("command", ["render", "validate"])
def test_an_app_without_targets_is_a_note_not_an_error(
    make_repo: RepoFactory, command: str
) -> None:
    root = make_repo(
        {"clusters/a.yaml": cluster("a"), "apps/x/app.yaml": app("x", "source: {manifests: []}")}
    )
    code, _, err = run(command, root)
    assert code == 0
    if command == "validate":
        assert err == (
            "note: app x is placed on no cluster: its placement names no clusters, groups or "
            "selector\n"
        )


@pytest.mark.parametrize(
    ("placement", "why"),
    [
        ("{selector: {matchLabels: {env: prod}}}", "its clusters a, b are paused"),
        ("{clusters: [b]}", "its cluster b is paused"),
        ("{clusters: [c], exclude: [c]}", "its cluster c is excluded by placement.exclude"),
        ("{selector: {matchLabels: {env: dev}}}", "no cluster matches its placement"),
    ],
)
def test_an_app_without_targets_is_a_note_saying_why(
    make_repo: RepoFactory, placement: str, why: str
) -> None:
    root = make_repo(
        {
            "clusters/a.yaml": cluster("a", labels="{env: prod}", paused=True),
            "clusters/b.yaml": cluster("b", labels="{env: prod}", paused=True),
            "clusters/c.yaml": cluster("c", labels="{env: staging}"),
            "apps/x/app.yaml": app("x", f"source: {{manifests: []}}\nplacement: {placement}"),
        }
    )
    code, _, err = run("validate", root)
    assert code == 0
    assert err == f"note: app x is placed on no cluster: {why}\n"


def test_render_of_an_app_on_a_paused_cluster_says_the_cluster_is_paused(
    make_repo: RepoFactory,
) -> None:
    root = make_repo(
        {
            "clusters/a.yaml": cluster("a", paused=True),
            "clusters/b.yaml": cluster("b"),
            "apps/x/app.yaml": app("x", "source: {manifests: []}\nplacement: {clusters: [a]}"),
        }
    )
    _, _, on_a = run("render", root, "--app", "x", "--cluster", "a")
    _, _, on_b = run("render", root, "--app", "x", "--cluster", "b")
    assert on_a == "note: app x is not deployed to cluster a: the cluster is paused\n"
    assert on_b == "note: app x is not deployed to cluster b: it is not placed there\n"


def test_explain_masks_secret_values_an_override_changes(make_repo: RepoFactory) -> None:
    root = make_repo(
        {
            "clusters/a.yaml": cluster("a"),
            "apps/x/app.yaml": app(
                "x",
                """
                namespace: demo
                source: {manifests: m/}
                placement: {clusters: [a]}
                overrides:
                - name: per-cluster-password
                  patches:
                  - target: {kind: Secret}
                    merge:
                      metadata: {labels: {rotated: "yes"}}
                      stringData: {password: s3cr3t-a}
                  - target: {kind: Secret}
                    json: [{op: add, path: /data, value: {token: czNjcjN0LWI=}}]
                """,
            ),
            "apps/x/m/secret.yaml": (
                "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\n"
                "stringData: {password: base-pass}\n"
            ),
        }
    )
    code, out, err = run("explain", root, "--app", "x", "--cluster", "a")
    assert (code, err) == (0, "")
    for value in ("base-pass", "s3cr3t-a", "czNjcjN0LWI="):
        assert value not in out
    assert out.splitlines()[-3:] == [
        '       Secret/demo/db metadata.labels: <absent> -> {"rotated":"yes"}',
        "       Secret/demo/db stringData.password: (masked)",
        "       Secret/demo/db data: (masked)",
    ]


def test_render_help_says_secret_values_are_printed_as_in_git() -> None:
    code, out, _ = run("render", "--help")
    assert code == 0
    assert "Secret values are printed as they are in Git" in " ".join(out.split())


# ---- a patch or override that matches nothing is a located warning ------------------------

NO_MATCH = {
    "clusters/a.yaml": cluster("a", "{tier: gold}"),
    "clusters/b.yaml": cluster("b", "{tier: gold}"),
    "apps/x/manifests/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n",
    "apps/x/app.yaml": app(
        "x",
        """
        namespace: x
        source: {manifests: manifests/}
        placement: {selector: {}}
        overrides:
        - name: gold
          target: {selector: {matchLabels: {tier: gold}}}
          patches:
          - target: {kind: ConfigMap, name: cm}
            merge: {data: {k: v}}
          - target: {kind: Service, name: web}
            merge: {spec: {type: LoadBalancer}}
        - name: silver
          target: {selector: {matchLabels: {tier: silver}}}
          labels: {tier: silver}
        """,
    ),
}


def test_validate_warns_of_a_patch_and_an_override_that_match_nothing(
    make_repo: RepoFactory,
) -> None:
    code, _, err = run("validate", make_repo(NO_MATCH))
    assert code == 0, err
    assert err.splitlines() == [
        "warning: apps/x/app.yaml:17: app x: override silver selects none of the clusters the "
        "app is placed on",
        "warning: apps/x/app.yaml:15: app x: override gold: patches[1] (kind=Service "
        "name=web) matches no object on clusters a, b",
    ]


def test_explain_warns_of_the_patch_that_matches_nothing_on_that_cluster(
    make_repo: RepoFactory,
) -> None:
    code, out, err = run("explain", make_repo(NO_MATCH), "--app", "x", "--cluster", "b")
    assert code == 0, err
    assert (
        "warning: apps/x/app.yaml:15: app x: override gold: patches[1] (kind=Service name=web) "
        "matches no object on cluster b"
    ) in err.splitlines()
    assert "note: patches[1] matched no object" in out


@pytest.mark.parametrize(
    "command",
    [("validate",), ("render",), ("explain", "--app", "web", "--cluster", "a"), ("diff",)],
)
def test_a_chart_credentials_file_that_cannot_be_read_is_one_error_naming_it(
    make_repo: RepoFactory, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Whether or not the repo has remote charts: the same line for every command."""
    from reconciler.cli.main import cli as main_cli

    root = make_repo(
        {
            "clusters/a.yaml": cluster("a"),
            "apps/web/app.yaml": app("web", "source: {manifests: m/}\nplacement: {clusters: [a]}"),
            "apps/web/m/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        }
    )
    missing = tmp_path / "nonexistent"
    name, *rest = command
    result = CliRunner().invoke(
        main_cli, [name, str(root), *rest, "--chart-credentials", str(missing)]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {missing}: cannot read chart credentials: No such file or directory\n"
    )
    assert result.stdout == ""
