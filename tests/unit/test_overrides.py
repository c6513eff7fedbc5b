"""Overrides: replicas, images, labels/annotations, patches; file order, later wins."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import RepoFactory
from repo_snippets import app, cluster

from reconciler.config.load import load_repo
from reconciler.config.schema import ImageOverride, ObjectTarget
from reconciler.errors import RenderError
from reconciler.overrides import rewrite_image, split_image, target_matches
from reconciler.render import RenderedTarget, render_target

WORKLOADS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers:
      - {name: init, image: "busybox:1.36"}
      containers:
      - {name: web, image: "crccheck/hello-world"}
      - {name: sidecar, image: "docker.io/envoyproxy/envoy:v1.30@sha256:aaa"}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - {name: job, image: "crccheck/hello-world:old"}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: db, image: "registry.local:5000/team/postgres:16"}
---
apiVersion: v1
kind: Service
metadata: {name: web, labels: {app: web}}
spec:
  type: ClusterIP
  ports: [{port: 80}]
"""


def _render(make_repo: RepoFactory, overrides: str, on: str = "usw-1") -> RenderedTarget:
    root = make_repo(
        {
            "clusters/usw-1.yaml": cluster("usw-1", "{provider: AWS}", "{tag: v9, zone: a}"),
            "clusters/bj-1.yaml": cluster("bj-1", "{region: cn-beijing}", "{tag: v8, zone: b}"),
            "apps/web/app.yaml": app(
                "web",
                f"namespace: demo\nsource: {{manifests: m/}}\nplacement: "
                f"{{clusters: [usw-1, bj-1]}}\noverrides:\n{overrides}",
            ),
            "apps/web/m/workloads.yaml": WORKLOADS,
        }
    )
    repo = load_repo(root)
    return render_target(repo, repo.apps["web"], repo.clusters[on])


def _obj(rendered: RenderedTarget, kind: str, name: str) -> dict[str, Any]:
    return next(o for o in rendered.objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _images(obj: dict[str, Any]) -> list[str]:
    spec = obj["spec"]
    pod = (
        spec["jobTemplate"]["spec"]["template"]["spec"]
        if obj["kind"] == "CronJob"
        else spec["template"]["spec"]
    )
    return [c["image"] for key in ("initContainers", "containers") for c in pod.get(key, [])]


def test_replicas_override_sets_deployments_and_statefulsets_only(make_repo: RepoFactory) -> None:
    out = _render(make_repo, "- {name: ha, replicas: 5}")
    assert _obj(out, "Deployment", "web")["spec"]["replicas"] == 5
    assert _obj(out, "StatefulSet", "db")["spec"]["replicas"] == 5
    assert "replicas" not in _obj(out, "Service", "web")["spec"]


def test_later_overrides_win_in_file_order(make_repo: RepoFactory) -> None:
    out = _render(make_repo, "- {name: first, replicas: 5}\n- {name: second, replicas: 7}")
    assert _obj(out, "Deployment", "web")["spec"]["replicas"] == 7
    assert [e.override for e in out.overrides_applied] == ["first", "second"]
    assert [str(c) for c in out.overrides_applied[1].changes] == [
        "Deployment.apps/demo/web spec.replicas: 5 -> 7",
        "StatefulSet.apps/demo/db spec.replicas: 5 -> 7",
    ]


def test_only_overrides_whose_target_selects_the_cluster_apply(make_repo: RepoFactory) -> None:
    overrides = (
        "- {name: aws, target: {selector: {matchLabels: {provider: AWS}}}, replicas: 5}\n"
        "- {name: beijing, target: {clusters: [bj-1]}, replicas: 2}"
    )
    assert _obj(_render(make_repo, overrides), "Deployment", "web")["spec"]["replicas"] == 5
    assert (
        _obj(_render(make_repo, overrides, on="bj-1"), "Deployment", "web")["spec"]["replicas"] == 2
    )


def test_an_override_target_can_exclude_clusters(make_repo: RepoFactory) -> None:
    out = _render(make_repo, "- {name: all-but-usw, target: {exclude: [usw-1]}, replicas: 9}")
    assert out.overrides_applied == []
    assert _obj(out, "Deployment", "web")["spec"]["replicas"] == 3


def test_image_override_rewrites_every_container_of_every_workload_kind(
    make_repo: RepoFactory,
) -> None:
    out = _render(make_repo, "- name: pin\n  images: [{name: crccheck/hello-world, newTag: '1.1'}]")
    assert _images(_obj(out, "Deployment", "web")) == [
        "busybox:1.36",
        "crccheck/hello-world:1.1",
        "docker.io/envoyproxy/envoy:v1.30@sha256:aaa",
    ]
    assert _images(_obj(out, "CronJob", "nightly")) == ["crccheck/hello-world:1.1"]


def test_image_override_reaches_init_containers(make_repo: RepoFactory) -> None:
    out = _render(
        make_repo,
        "- name: mirror\n  images: [{name: busybox, newName: mirror.example.com/busybox}]",
    )
    assert _images(_obj(out, "Deployment", "web"))[0] == "mirror.example.com/busybox:1.36"


def test_image_override_by_digest_replaces_the_tag(make_repo: RepoFactory) -> None:
    digest = "sha256:" + "b" * 64  # a digest the schema accepts (algorithm:hex)
    out = _render(
        make_repo,
        f"- name: pin\n  images: [{{name: registry.local:5000/team/postgres, digest: '{digest}'}}]",
    )
    assert _images(_obj(out, "StatefulSet", "db")) == [
        f"registry.local:5000/team/postgres@{digest}"
    ]


def test_image_override_values_may_use_cluster_templates(make_repo: RepoFactory) -> None:
    out = _render(
        make_repo,
        "- name: pin\n  images: [{name: crccheck/hello-world, newTag: '${cluster.vars.tag}'}]",
        on="bj-1",
    )
    assert _images(_obj(out, "CronJob", "nightly")) == ["crccheck/hello-world:v8"]


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("nginx", ("nginx", None, None)),
        ("nginx:1.27", ("nginx", "1.27", None)),
        ("registry.local:5000/team/app", ("registry.local:5000/team/app", None, None)),
        ("registry.local:5000/team/app:v2", ("registry.local:5000/team/app", "v2", None)),
        ("app@sha256:abc", ("app", None, "sha256:abc")),
        ("app:v1@sha256:abc", ("app", "v1", "sha256:abc")),
    ],
)
def test_image_references_split_into_name_tag_and_digest(
    image: str, parts: tuple[str, str | None, str | None]
) -> None:
    assert split_image(image) == parts


@pytest.mark.parametrize(
    ("image", "override", "result"),
    [
        ("nginx:1.25", {"name": "nginx", "newTag": "1.27"}, "nginx:1.27"),
        ("nginx:1.25", {"name": "nginx", "newName": "mirror/nginx"}, "mirror/nginx:1.25"),
        ("nginx@sha256:a", {"name": "nginx", "newName": "m/nginx"}, "m/nginx@sha256:a"),
        ("nginx:1.25", {"name": "nginx", "digest": "sha256:b"}, "nginx@sha256:b"),
        ("nginx-extra:1", {"name": "nginx", "newTag": "2"}, None),  # name must match exactly
        ("library/nginx:1", {"name": "nginx", "newTag": "2"}, None),
        ("registry:5000/nginx", {"name": "registry", "newTag": "2"}, None),  # port is not a tag
    ],
)
def test_images_match_by_full_name_only(
    image: str, override: dict[str, str], result: str | None
) -> None:
    assert rewrite_image(image, ImageOverride.model_validate(override)) == result


def test_labels_and_annotations_go_to_metadata_and_pod_templates_never_selectors(
    make_repo: RepoFactory,
) -> None:
    out = _render(make_repo, "- name: tier\n  labels: {tier: gold}\n  annotations: {owner: team-a}")
    web = _obj(out, "Deployment", "web")
    assert web["metadata"]["labels"]["tier"] == "gold"
    assert web["spec"]["template"]["metadata"]["labels"] == {"app": "web", "tier": "gold"}
    assert web["spec"]["template"]["metadata"]["annotations"] == {"owner": "team-a"}
    assert web["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    job = _obj(out, "CronJob", "nightly")
    assert job["spec"]["jobTemplate"]["metadata"]["labels"] == {"tier": "gold"}
    assert job["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"] == {"tier": "gold"}
    assert _obj(out, "Service", "web")["metadata"]["annotations"] == {"owner": "team-a"}


def test_merge_patch_follows_rfc_7386(make_repo: RepoFactory) -> None:
    patch = (
        "- name: lb\n  patches:\n  - target: {kind: Service, name: web}\n    merge: {spec: {type: "
        "LoadBalancer, ports: [{port: 443}]}, metadata: {labels: {app: null}}}"
    )
    svc = _obj(_render(make_repo, patch), "Service", "web")
    assert svc["spec"] == {"type": "LoadBalancer", "ports": [{"port": 443}]}  # lists replace
    assert "app" not in svc["metadata"]["labels"]  # null deletes


def test_json_patch_follows_rfc_6902(make_repo: RepoFactory) -> None:
    patch = (
        "- name: pin-zone\n  patches:\n  - target: {kind: Deployment}\n    json:\n"
        "    - {op: add, path: /spec/template/spec/nodeSelector, value: {zone: "
        "'${cluster.vars.zone}'}}\n"
        "    - {op: remove, path: /spec/template/spec/initContainers}\n"
        "    - {op: replace, path: /spec/template/spec/containers/0/name, value: app}"
    )
    pod = _obj(_render(make_repo, patch), "Deployment", "web")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"zone": "a"}
    assert "initContainers" not in pod
    assert pod["containers"][0]["name"] == "app"


@pytest.mark.parametrize(
    ("target", "names"),
    [
        ({"kind": "Deployment"}, ["Deployment/web"]),
        ({"group": "apps"}, ["Deployment/web", "StatefulSet/db"]),
        ({"group": ""}, ["Service/web"]),
        ({"name": "w*"}, ["Deployment/web", "Service/web"]),
        ({"name": "?b"}, ["StatefulSet/db"]),
        ({"namespace": "de*", "kind": "CronJob"}, ["CronJob/nightly"]),
        ({"namespace": "other"}, []),
        ({}, ["CronJob/nightly", "Deployment/web", "Service/web", "StatefulSet/db"]),
    ],
)
def test_patch_targets_match_group_kind_and_name_or_namespace_globs(
    target: dict[str, str], names: list[str]
) -> None:
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo"},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "demo"},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "demo"},
        },
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "demo"}},
    ]
    chosen = ObjectTarget.model_validate(target)
    got = sorted(
        f"{o['kind']}/{o['metadata']['name']}" for o in objects if target_matches(chosen, o)
    )
    assert got == names


def test_a_patch_that_cannot_apply_names_override_object_and_cluster(
    make_repo: RepoFactory,
) -> None:
    patch = (
        "- name: broken\n  patches:\n  - target: {kind: Service}\n    json: [{op: replace, path: "
        "/spec/nope/x, value: 1}]"
    )
    with pytest.raises(RenderError) as err:
        _render(make_repo, patch)
    message = str(err.value)
    # located at the failing op (line 13), not at the override (line 10)
    assert message.startswith("app web, cluster usw-1: apps/web/app.yaml:13: override broken: ")
    assert "patches[0].json[0] (replace /spec/nope/x) cannot apply to Service/demo/web" in message


def test_a_failing_json_patch_test_op_is_an_error(make_repo: RepoFactory) -> None:
    patch = (
        "- name: guard\n  patches:\n  - target: {kind: Service}\n    json: [{op: test, path: "
        "/spec/type, value: NodePort}]"
    )
    with pytest.raises(
        RenderError, match=re.escape("override guard: patches[0].json[0] (test /spec/type)")
    ):
        _render(make_repo, patch)


def test_effects_record_every_changed_field_in_order(make_repo: RepoFactory) -> None:
    overrides = (
        "- name: ha\n  replicas: 5\n"
        "- name: lb\n  patches:\n  - target: {kind: Service}\n    merge: {spec: {type: "
        "LoadBalancer}}\n"
        "  - target: {kind: Ingress}\n    merge: {spec: {}}"
    )
    effects = _render(make_repo, overrides).overrides_applied
    assert [str(c) for c in effects[0].changes] == [
        "Deployment.apps/demo/web spec.replicas: 3 -> 5",
        "StatefulSet.apps/demo/db spec.replicas: <absent> -> 5",
    ]
    assert [str(c) for c in effects[1].changes] == [
        'Service/demo/web spec.type: "ClusterIP" -> "LoadBalancer"'
    ]
    assert effects[1].notes == ["patches[1] matched no object"]
    assert effects[1].where == "apps/web/app.yaml:12"


def test_rendered_objects_share_nothing_with_the_repo_or_other_renders(
    make_repo: RepoFactory,
) -> None:
    patch = (
        "- name: ns\n  patches:\n  - target: {kind: Deployment}\n    json: [{op: add, path: "
        "/spec/template/spec/nodeSelector, value: {zone: a}}]"
    )
    _render(make_repo, patch)
    repo = load_repo(make_repo({}))  # same files, written by _render
    first = render_target(repo, repo.apps["web"], repo.clusters["usw-1"])
    _obj(first, "Deployment", "web")["spec"]["template"]["spec"]["nodeSelector"]["zone"] = "mutated"
    _obj(first, "Service", "web")["spec"]["type"] = "mutated"
    again = render_target(repo, repo.apps["web"], repo.clusters["usw-1"])
    assert _obj(again, "Deployment", "web")["spec"]["template"]["spec"]["nodeSelector"] == {
        "zone": "a"
    }
    assert _obj(again, "Service", "web")["spec"]["type"] == "ClusterIP"


def test_an_override_on_a_malformed_object_is_a_located_error(make_repo: RepoFactory) -> None:
    root = make_repo(
        {
            "clusters/usw-1.yaml": cluster("usw-1"),
            "apps/web/app.yaml": app(
                "web",
                "source: {manifests: m/}\nplacement: {clusters: [usw-1]}\n"
                "overrides:\n- {name: ha, replicas: 2}",
            ),
            "apps/web/m/d.yaml": (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: [1]\n"
            ),
        }
    )
    repo = load_repo(root)
    with pytest.raises(RenderError) as err:
        render_target(repo, repo.apps["web"], repo.clusters["usw-1"])
    assert str(err.value) == (
        "app web, cluster usw-1: apps/web/app.yaml:9: override ha: cannot apply to "
        "Deployment.apps/d: spec is not a mapping"
    )


def test_a_patch_that_removes_an_objects_name_is_an_error(make_repo: RepoFactory) -> None:
    patch = (
        "- name: oops\n  patches:\n  - target: {kind: Service}\n    merge: {metadata: {name: null}}"
    )
    with pytest.raises(RenderError, match="not a valid object after rendering"):
        _render(make_repo, patch)


def test_a_json_patch_failing_on_a_secret_never_quotes_its_values(
    make_repo: RepoFactory,
) -> None:
    root = make_repo(
        {
            "clusters/usw-1.yaml": cluster("usw-1", "{provider: AWS}", "{zone: a}"),
            "apps/web/app.yaml": app(
                "web",
                "namespace: demo\nsource: {manifests: m/}\nplacement: {clusters: [usw-1]}\n"
                "overrides:\n- name: rotate\n  patches:\n  - target: {kind: Secret}\n"
                "    json: [{op: replace, path: /data/missing, value: eA==}]",
            ),
            "apps/web/m/secret.yaml": (
                "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\n"
                "stringData: {password: hunter2-do-not-print}\n"
            ),
        }
    )
    repo = load_repo(root)
    with pytest.raises(RenderError) as err:
        render_target(repo, repo.apps["web"], repo.clusters["usw-1"])
    message = str(err.value)
    assert "cannot apply to Secret/demo/db: the path (or its parent) does not exist" in message
    assert "hunter2" not in message
