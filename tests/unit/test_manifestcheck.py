"""What the API server would reject is found at render (so by validate), located at file:line."""

from __future__ import annotations

import pytest
from conftest import RepoFactory
from repo_snippets import app, cluster

from reconciler.config.load import load_repo
from reconciler.errors import ConfigError, RenderError
from reconciler.manifestcheck import image_override_problems, object_problem
from reconciler.render import render_target

A = cluster("a")
SPEC = "source: {manifests: m/}\nnamespace: demo\n"
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"


def _render_error(make_repo: RepoFactory, manifest: str) -> str:
    repo = load_repo(
        make_repo(
            {"clusters/a.yaml": A, "apps/x/app.yaml": app("x", SPEC), "apps/x/m/o.yaml": manifest}
        )
    )
    with pytest.raises(RenderError) as err:
        render_target(repo, repo.apps["x"], repo.clusters["a"])
    return err.value.message


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        pytest.param(
            "apiVersion: v1\nkind: Service\nmetadata: {name: Hello_World}\n",
            "apps/x/m/o.yaml:1: Service/demo/Hello_World: metadata.name: invalid Service name "
            "'Hello_World': must be a DNS label",
            id="Service name",
        ),
        pytest.param(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Hello_World}\n",
            "apps/x/m/o.yaml:1: ConfigMap/demo/Hello_World: metadata.name: invalid name "
            "'Hello_World': must be a DNS subdomain",
            id="ConfigMap name",
        ),
        pytest.param(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels: {legacy: yes}\n",
            "apps/x/m/o.yaml:1: ConfigMap/demo/c: metadata.labels.legacy: must be a string, got "
            "bool true (quote it: YAML reads yes/no/on/off/true/false as booleans)",
            id="boolean label value",
        ),
        pytest.param(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations: {n: 5}\n",
            "apps/x/m/o.yaml:1: ConfigMap/demo/c: metadata.annotations.n: must be a string, got "
            "int 5",
            id="number annotation value",
        ),
        pytest.param(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels: {a: 'not ok'}\n",
            "apps/x/m/o.yaml:1: ConfigMap/demo/c: metadata.labels.a: invalid label value 'not ok'",
            id="invalid label value",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: hunter2!}\n",
            "apps/x/m/o.yaml:1: Secret/demo/s: data.password: not base64",
            id="Secret data not base64",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {n: 5}\n",
            "apps/x/m/o.yaml:1: Secret/demo/s: data.n: must be a string, got int 5",
            id="Secret data not a string",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {port: 5432}\n",
            "apps/x/m/o.yaml:1: Secret/demo/s: stringData.port: must be a string, got int 5432",
            id="Secret stringData not a string",
        ),
        pytest.param(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata: {a: "
            + "x" * (1_048_576 + 10)
            + "}\n",
            "apps/x/m/o.yaml:1: ConfigMap/demo/big: ConfigMap data is 1.00 MiB, over the limit",
            id="ConfigMap over 1 MiB",
        ),
        pytest.param(
            "apiVersion: example.com/v1\nkind: Blob\nmetadata: {name: big}\nspec: {a: "
            + "x" * 1_600_000
            + "}\n",
            "apps/x/m/o.yaml:1: Blob.example.com/demo/big: object is 1.53 MiB, over the API "
            "server's limit of 1.50 MiB",
            id="object over 1.5 MiB",
        ),
    ],
)
def test_what_the_api_server_rejects_fails_the_render_at_file_line(
    make_repo: RepoFactory, manifest: str, expected: str
) -> None:
    assert _render_error(make_repo, manifest).startswith(expected)


def test_the_second_document_of_a_file_is_located_at_its_line(make_repo: RepoFactory) -> None:
    manifest = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_Ok}\n"
    )
    assert _render_error(make_repo, manifest).startswith("apps/x/m/o.yaml:5: ConfigMap/demo/Not_Ok")


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a.b-c", "labels": {}}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:aggregate-to-view"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "data": {"p": "aHVudGVyMg=="},
            "stringData": {"q": "plain"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "wrapped", "labels": {"empty": None}},
            "data": {"p": "aHVudGVy\nMg==\n", "empty": "", "null": None},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "p",
                "labels": {"app.kubernetes.io/name": "web", "empty": ""},
                "annotations": {"example.com/note": "any text: at all"},
            },
        },
    ],
)
def test_valid_objects_pass(obj: dict[str, object]) -> None:
    assert object_problem(obj) is None


A_DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (
            "{name: redis, newName: 'mirror.example.com/redis:bad:tag'}",
            "apps/x/app.yaml:9: spec.overrides[0].images[0].newName: invalid image name "
            "'mirror.example.com/redis:bad:tag': no tag or digest here (use newTag or digest)",
        ),
        (
            "{name: redis, digest: notadigest}",
            "apps/x/app.yaml:9: spec.overrides[0].images[0].digest: invalid digest 'notadigest': "
            "must be algorithm:hex (sha256:<64 hex>)",
        ),
        (
            "{name: redis, digest: 'sha256:abc'}",
            "apps/x/app.yaml:9: spec.overrides[0].images[0].digest: invalid digest 'sha256:abc'",
        ),
    ],
)
def test_image_override_fields_are_schema_errors_at_app_yaml(
    make_repo: RepoFactory, image: str, expected: str
) -> None:
    spec = f"source: {{manifests: m/}}\noverrides:\n- name: o\n  images: [{image}]\n"
    root = make_repo(
        {"clusters/a.yaml": A, "apps/x/m/c.yaml": CM, "apps/x/app.yaml": app("x", spec)}
    )
    with pytest.raises(ConfigError) as err:
        load_repo(root)
    assert any(str(p).startswith(expected) for p in err.value.problems), err.value.problems


def test_replicas_beyond_int32_is_a_schema_error_at_app_yaml(make_repo: RepoFactory) -> None:
    spec = "source: {manifests: m/}\noverrides:\n- name: o\n  replicas: 99999999999999999999\n"
    root = make_repo(
        {"clusters/a.yaml": A, "apps/x/m/c.yaml": CM, "apps/x/app.yaml": app("x", spec)}
    )
    with pytest.raises(ConfigError) as err:
        load_repo(root)
    assert [str(p) for p in err.value.problems] == [
        "apps/x/app.yaml:9: spec.overrides[0].replicas: must be <= 2147483647"
    ]


def test_image_references_that_are_fine() -> None:
    assert image_override_problems("registry.local:5000/team/postgres", A_DIGEST) == []
    assert image_override_problems("${cluster.vars.registry}/redis", None) == []
