"""What `validate` and `render` find across targets, said once: overrides that match nothing,
duplicate objects (in one app, across apps), Helm failures, rollout stages, load-time checks."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from conftest import RepoFactory
from repo_snippets import app, cluster

from reconciler.cli.render import register_render_commands
from reconciler.presentation import CLUSTERS, clusters_phrase, once_per_message
from reconciler.toolchain import Toolchain


@click.group()
def cli() -> None:
    """A stand-in for the main group."""


register_render_commands(cli)


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


CLUSTERS_AB = {
    "clusters/a.yaml": cluster("a", "{env: prod}"),
    "clusters/b.yaml": cluster("b", "{env: prod}"),
}
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.25}]
"""
SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n"


# ---- one line per message, however many clusters -------------------------------------------


def test_lines_identical_but_for_the_cluster_are_given_once_naming_or_counting_them() -> None:
    lines = [(f"x on {CLUSTERS}", c) for c in ("b", "a")] + [(f"y: {CLUSTERS}", "a")]
    assert once_per_message(lines) == ["x on clusters a, b", "y: cluster a"]
    assert clusters_phrase(f"c{i}" for i in range(7)) == (
        "7 clusters (c0, c1, c2, c3, c4 and 2 more)"
    )


# ---- overrides that match nothing ----------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        pytest.param(
            "- name: mirror\n  target: {selector: {}}\n"
            '  images: [{name: nginx, newTag: "1.26"}, {name: ngnix, newTag: "1.26"}]\n',
            "app x: override mirror: images[1] (ngnix) matches no container on clusters a, b",
            id="image override matching no container",
        ),
        pytest.param(
            "- name: big\n  target: {selector: {}}\n  values: {replicaCount: 4}\n",
            "app x: override big: values ignored, the app has no Helm source (use patches) on "
            "clusters a, b",
            id="values on an app without a Helm source",
        ),
    ],
)
def test_validate_warns_once_of_an_override_part_that_takes_no_effect(
    make_repo: RepoFactory, override: str, expected: str
) -> None:
    spec = (
        "namespace: x\nsource: {manifests: manifests/}\nplacement: {selector: {}}\n"
        f"overrides:\n{override}"
    )
    root = make_repo(
        {**CLUSTERS_AB, "apps/x/manifests/web.yaml": DEPLOYMENT, "apps/x/app.yaml": app("x", spec)}
    )
    code, _, err = run("validate", root)
    assert code == 0, err
    assert err.splitlines() == [f"warning: apps/x/app.yaml:10: {expected}"]


# ---- duplicate objects ---------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "render"])
def test_a_duplicate_object_in_one_app_names_both_files_once(
    make_repo: RepoFactory, command: str
) -> None:
    root = make_repo(
        {
            **CLUSTERS_AB,
            "apps/x/manifests/one.yaml": SERVICE,
            "apps/x/manifests/two.yaml": DEPLOYMENT + "---\n" + SERVICE,
            "apps/x/app.yaml": app(
                "x", "namespace: x\nsource: {manifests: manifests/}\nplacement: {selector: {}}"
            ),
        }
    )
    code, _, err = run(command, root)
    assert code == 2
    assert err.splitlines()[0] == (
        "error: app x, clusters a, b: duplicate object Service/x/web: defined in "
        "apps/x/manifests/one.yaml:1 and apps/x/manifests/two.yaml:11"
    )
    assert len(err.splitlines()) == (2 if command == "validate" else 1)


@pytest.mark.parametrize("command", ["validate", "render"])
def test_two_apps_rendering_one_object_on_a_cluster_is_one_error(
    make_repo: RepoFactory, command: str
) -> None:
    spec = "namespace: x\nsource: {manifests: manifests/}\nplacement: {selector: {}}"
    root = make_repo(
        {
            **CLUSTERS_AB,
            "apps/x/manifests/svc.yaml": SERVICE,
            "apps/x/app.yaml": app("x", spec),
            "apps/y/manifests/svc.yaml": SERVICE,
            "apps/y/app.yaml": app("y", spec),
        }
    )
    code, _, err = run(command, root)
    assert code == 2
    assert (
        "error: object Service/x/web is rendered by apps x (apps/x/app.yaml:4) and y "
        "(apps/y/app.yaml:4) on clusters a, b"
    ) in err.splitlines()
    assert err.count("Service/x/web") == 1


# ---- Helm ----------------------------------------------------------------------------------

CHART = {
    "apps/g/chart/Chart.yaml": "apiVersion: v2\nname: g\nversion: 0.1.0\n",
    "apps/g/chart/templates/cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: g}\n"
        "data: {k: '{{ .Values.nope.deeper }}'}\n"
    ),
}


def test_a_helm_failure_is_one_error_without_helms_debug_advice(
    make_repo: RepoFactory, tools: Toolchain
) -> None:
    root = make_repo(
        {
            **CLUSTERS_AB,
            **CHART,
            "apps/g/app.yaml": app(
                "g", "namespace: g\nsource: {helm: {chart: chart/}}\nplacement: {selector: {}}"
            ),
        }
    )
    code, _, err = run("validate", root)
    assert code == 2
    first, summary = err.splitlines()
    assert first.startswith("error: app g, clusters a, b: helm template apps/g/chart failed: ")
    assert "nil pointer" in first and "--debug" not in first
    assert summary == "error: 2 target(s) failed to render"


def test_a_release_name_helm_would_refuse_is_a_located_load_error(
    make_repo: RepoFactory,
) -> None:
    root = make_repo(
        {
            **CLUSTERS_AB,
            **CHART,
            "apps/g/app.yaml": app(
                "g",
                """
                namespace: g
                source:
                  helm: {chart: chart/, releaseName: Guest_Book}
                placement: {selector: {}}
                """,
            ),
        }
    )
    code, _, err = run("validate", root)
    assert code == 2
    assert err.splitlines()[0] == (
        "error: apps/g/app.yaml:8: spec.source.helm.releaseName: 'Guest_Book' is not a Helm "
        "release name (lowercase letters, digits, '-' and '.', starting and ending with a "
        "letter or digit; at most 53 characters)"
    )


# ---- rollout -------------------------------------------------------------------------------

ROLLOUT_APP = """
namespace: x
source: {manifests: manifests/}
placement: {selector: {}}
rollout:
  stages:
  - name: first
    target: {clusters: [a]}
    maxConcurrent: %s
  - name: gcp
    target: {selector: {matchLabels: {provider: gcp}}}
"""


def test_validate_warns_of_a_rollout_stage_matching_no_placed_cluster(
    make_repo: RepoFactory,
) -> None:
    root = make_repo(
        {
            **CLUSTERS_AB,
            "apps/x/manifests/svc.yaml": SERVICE,
            "apps/x/app.yaml": app("x", ROLLOUT_APP % "1"),
        }
    )
    code, _, err = run("validate", root)
    assert code == 0, err
    assert err.splitlines() == [
        "warning: apps/x/app.yaml:14: app x: rollout: stage gcp matches no cluster the app is "
        "placed on",
    ]


@pytest.mark.parametrize("value", ["0", '"0%"'])
def test_a_max_concurrent_of_zero_is_a_located_error(make_repo: RepoFactory, value: str) -> None:
    root = make_repo(
        {
            **CLUSTERS_AB,
            "apps/x/manifests/svc.yaml": SERVICE,
            "apps/x/app.yaml": app("x", ROLLOUT_APP % value),
        }
    )
    code, _, err = run("validate", root)
    assert code == 2
    shown = value.strip('"')
    shown = repr(shown) if "%" in shown else shown
    assert err.splitlines()[0] == (
        f"error: apps/x/app.yaml:13: spec.rollout.stages[0].maxConcurrent: {shown} would "
        "update no cluster: give at least 1 (or 1%)"
    )
