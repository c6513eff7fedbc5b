"""Rendering one app for one cluster: sources, templates, namespace, labels, order, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import RepoFactory
from repo_snippets import app, cluster

from reconciler import APP_LABEL
from reconciler.config.load import load_repo
from reconciler.config.model import Repo
from reconciler.errors import ConfigError, RenderError
from reconciler.render import Capabilities, RenderCache, render_all, render_target
from reconciler.toolchain import KUBERNETES_VERSION, Toolchain

CLUSTERS = {
    "clusters/usw-1.yaml": cluster(
        "usw-1", "{provider: AWS}", "{domain: usw1.example.com, replicas: '4'}"
    ),
    "clusters/bj-1.yaml": cluster(
        "bj-1", "{region: cn-beijing}", "{domain: bj1.example.com, replicas: '2'}"
    ),
    "clusters/bj-2.yaml": cluster("bj-2", "{region: cn-beijing}", "{domain: bj2.example.com}"),
}

MIXED = """
apiVersion: v1
kind: ConfigMap
metadata: {name: z-config}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
---
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {kind: Widget, plural: widgets}
  versions: [{name: v1, served: true, storage: true}]
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: global-widget}
---
apiVersion: example.com/v1
kind: Gadget
metadata: {name: namespaced-gadget}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a-config, namespace: elsewhere}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: ${cluster.vars.replicas}
"""


def _repo(make_repo: RepoFactory, spec: str, files: dict[str, str] | None = None) -> Repo:
    return load_repo(make_repo({**CLUSTERS, "apps/x/app.yaml": app("x", spec), **(files or {})}))


def _render(repo: Repo, on: str = "usw-1", tools: Toolchain | None = None) -> list[dict[str, Any]]:
    return render_target(repo, repo.apps["x"], repo.clusters[on], tools).objects


def _names(objects: list[dict[str, Any]]) -> list[str]:
    return [
        f"{o['kind']}/{o['metadata'].get('namespace', '-')}/{o['metadata']['name']}"
        for o in objects
    ]


MANIFEST_APP = "namespace: demo\nsource: {manifests: m/}\nplacement: {clusters: [usw-1, bj-1]}\n"


def test_objects_come_in_apply_order_with_namespace_only_where_namespaced(
    make_repo: RepoFactory,
) -> None:
    repo = _repo(make_repo, MANIFEST_APP, {"apps/x/m/all.yaml": MIXED})
    assert _names(_render(repo)) == [
        "CustomResourceDefinition/-/widgets.example.com",
        "Namespace/-/demo",
        "ConfigMap/demo/z-config",
        "ConfigMap/elsewhere/a-config",  # an explicit namespace is kept
        "ClusterRole/-/reader",
        "Deployment/demo/web",
        "Gadget/demo/namespaced-gadget",  # unknown custom kinds default to namespaced
        "Widget/-/global-widget",  # the CRD in the render says Cluster scope
    ]


def test_every_object_carries_the_app_label(make_repo: RepoFactory) -> None:
    repo = _repo(make_repo, MANIFEST_APP, {"apps/x/m/all.yaml": MIXED})
    assert all(o["metadata"]["labels"][APP_LABEL] == "x" for o in _render(repo))


def test_rendering_is_deterministic(make_repo: RepoFactory) -> None:
    repo = _repo(make_repo, MANIFEST_APP, {"apps/x/m/all.yaml": MIXED})
    assert _render(repo) == _render(repo)


def test_templates_render_per_cluster_and_unquoted_numbers_stay_numbers(
    make_repo: RepoFactory,
) -> None:
    repo = _repo(make_repo, MANIFEST_APP, {"apps/x/m/all.yaml": MIXED})
    deployment = next(o for o in _render(repo, "bj-1") if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2


def test_an_unknown_variable_names_manifest_line_app_and_cluster(make_repo: RepoFactory) -> None:
    ingress = (
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\nspec:\n  rules:\n "
        " - host: ${cluster.vars.replicas}.example.com\n"
    )
    repo = _repo(
        make_repo,
        "namespace: demo\nsource: {manifests: m/}\nplacement: {clusters: [bj-2]}\n",
        {"apps/x/m/ingress.yaml": ingress},
    )
    with pytest.raises(RenderError) as err:
        _render(repo, "bj-2")
    assert str(err.value) == (
        "app x, cluster bj-2: apps/x/m/ingress.yaml:6: unknown variable ${cluster.vars.replicas} "
        "(cluster bj-2 has no var 'replicas')"
    )
    assert (err.value.app, err.value.cluster) == ("x", "bj-2")


def test_duplicate_objects_in_a_render_are_an_error(make_repo: RepoFactory) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: same}\n"
    repo = _repo(make_repo, MANIFEST_APP, {"apps/x/m/a.yaml": cm, "apps/x/m/b.yaml": cm})
    with pytest.raises(RenderError, match="duplicate object ConfigMap/demo/same"):
        _render(repo)


def test_render_all_isolates_a_failing_target(make_repo: RepoFactory) -> None:
    cm = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {n: "
        "'${cluster.vars.replicas}'}\n"
    )
    repo = _repo(
        make_repo, "source: {manifests: m/}\nplacement: {selector: {}}\n", {"apps/x/m/cm.yaml": cm}
    )
    results = render_all(repo)
    assert [(r.cluster, r.rendered is not None, r.error is not None) for r in results] == [
        ("bj-1", True, False),
        ("bj-2", False, True),
        ("usw-1", True, False),
    ]


def test_render_all_can_be_narrowed_to_apps_and_clusters(make_repo: RepoFactory) -> None:
    repo = _repo(make_repo, MANIFEST_APP, {"apps/x/m/all.yaml": MIXED})
    assert [(r.app, r.cluster) for r in render_all(repo, clusters=["bj-1"])] == [("x", "bj-1")]
    assert render_all(repo, apps=["other"]) == []


def test_paused_clusters_are_not_rendered(make_repo: RepoFactory) -> None:
    files = {
        "clusters/bj-2.yaml": cluster("bj-2", "{region: cn-beijing}", paused=True),
        "apps/x/m/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n",
    }
    repo = _repo(make_repo, "source: {manifests: m/}\nplacement: {selector: {}}\n", files)
    assert [r.cluster for r in render_all(repo)] == ["bj-1", "usw-1"]


# ---- Helm, with the real binary -------------------------------------------------------------

CHART = {
    "apps/x/chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "apps/x/chart/values.yaml": (
        "replicas: 1\nimage: nginx:1.27\nhost: default.example.com\ntier: none\nextra: keep\n"
    ),
    "apps/x/chart/templates/deploy.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n"
        "  annotations: {host: {{ .Values.host | quote }}, tier: {{ .Values.tier | quote }}, "
        "extra: {{ .Values.extra | quote }}, ns: {{ .Release.Namespace | quote }}}\n"
        "spec:\n  replicas: {{ .Values.replicas }}\n  template:\n    spec:\n"
        "      containers: [{name: web, image: {{ .Values.image | quote }}}]\n"
    ),
    "apps/x/chart/crds/gizmo.yaml": (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata: {name: gizmos.example.com}\nspec:\n  group: example.com\n  scope: Namespaced\n"
        "  names: {kind: Gizmo, plural: gizmos}\n  versions: [{name: v1, served: true, storage: "
        "true}]\n"
    ),
    "apps/x/chart/templates/tests/test-pod.yaml": (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  annotations: {helm.sh/hook: test}\n"
        "spec: {containers: [{name: t, image: busybox}]}\n"
    ),
    "apps/x/values-prod.yaml": "replicas: 2\ntier: prod\n",
}
HELM_APP = """
namespace: web
source:
  helm:
    chart: chart/
    releaseName: front
    valuesFiles: [values-prod.yaml]
    values: {tier: gold}
placement: {selector: {}}
overrides:
- name: aws-bigger
  target: {selector: {matchLabels: {provider: AWS}}}
  values: {replicas: 5}
- name: host-per-cluster
  target: {groups: []}
  values: {host: 'web.${cluster.vars.domain}'}
"""


def _deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "Deployment")


def test_helm_renders_with_values_files_values_and_override_values_in_that_order(
    make_repo: RepoFactory, tools: Toolchain
) -> None:
    repo = _repo(make_repo, HELM_APP, CHART)
    objects = _render(repo, "usw-1", tools)
    deployment = _deployment(objects)
    assert deployment["metadata"]["name"] == "front"
    assert deployment["spec"]["replicas"] == 5  # override beats values-prod.yaml
    assert deployment["metadata"]["annotations"] == {
        "host": "web.usw1.example.com",  # templated override value
        "tier": "gold",  # inline values beat values files
        "extra": "keep",  # chart default survives the deep merge
        "ns": "web",  # the app namespace is the release namespace
    }
    assert deployment["metadata"]["labels"][APP_LABEL] == "x"
    assert _deployment(_render(repo, "bj-1", tools))["spec"]["replicas"] == 2


def test_helm_output_includes_crds_but_not_test_hooks(
    make_repo: RepoFactory, tools: Toolchain
) -> None:
    repo = _repo(make_repo, HELM_APP, CHART)
    assert _names(_render(repo, "usw-1", tools)) == [
        "CustomResourceDefinition/-/gizmos.example.com",
        "Deployment/web/front",
    ]


def test_helm_value_changes_are_recorded_against_chart_defaults(
    make_repo: RepoFactory, tools: Toolchain
) -> None:
    repo = _repo(make_repo, HELM_APP, CHART)
    effects = render_target(repo, repo.apps["x"], repo.clusters["usw-1"], tools).overrides_applied
    assert [[str(c) for c in e.changes] for e in effects] == [
        ["helm values replicas: 2 -> 5"],
        ['helm values host: "default.example.com" -> "web.usw1.example.com"'],
    ]


def test_targets_with_identical_chart_and_values_share_one_helm_render(
    make_repo: RepoFactory, tools: Toolchain
) -> None:
    spec = HELM_APP.replace("'web.${cluster.vars.domain}'", "same.example.com")
    repo = _repo(make_repo, spec, CHART)
    cache = RenderCache()
    results = render_all(repo, tools=tools, cache=cache)
    assert [r.error for r in results] == [None, None, None]
    assert cache.runs == 2  # bj-1 and bj-2 share one; usw-1 has replicas 5
    first, second = (r.rendered for r in results[:2])
    assert first is not None and second is not None
    assert first.objects == second.objects and first.objects[0] is not second.objects[0]


def test_a_failing_chart_names_the_chart_and_helm_error(
    make_repo: RepoFactory, tools: Toolchain
) -> None:
    broken = {**CHART, "apps/x/chart/templates/bad.yaml": "{{ .Values.nope.deeper }}\n"}
    repo = _repo(make_repo, HELM_APP, broken)
    with pytest.raises(
        RenderError,
        match=r"app x, cluster usw-1: helm template apps/x/chart failed: Error: .*nil pointer",
    ):
        _render(repo, "usw-1", tools)


def test_a_missing_tool_binary_is_a_clear_render_error(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    repo = _repo(make_repo, HELM_APP, CHART)
    missing = Toolchain(helm=str(tmp_path / "no-helm"), kustomize="kustomize")
    with pytest.raises(
        RenderError,
        match="no-helm not found \\(run `reconciler dev provision` to build the pinned helm, "
        "or set RECONCILER_HELM to one\\)",
    ):
        _render(repo, "usw-1", missing)


def test_toolchain_prefers_explicit_environment_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_HELM", "/opt/helm")
    monkeypatch.setenv("RECONCILER_KUSTOMIZE", "/opt/kustomize")
    assert Toolchain.default() == Toolchain(helm="/opt/helm", kustomize="/opt/kustomize")


def test_toolchain_falls_back_to_path_lookup_without_a_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("RECONCILER_HELM", "RECONCILER_KUSTOMIZE", "RECONCILER_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert Toolchain.default() == Toolchain(helm="helm", kustomize="kustomize")


# ---- kustomize, with the real binary --------------------------------------------------------

KUSTOMIZATION = {
    "apps/x/base/kustomization.yaml": "resources: [cm.yaml]\ncommonLabels: {team: a}\n",
    "apps/x/base/cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata:\n  domain: "
        "${cluster.vars.domain}\n"
    ),
    "apps/x/overlay/kustomization.yaml": "resources: [../base]\nnamePrefix: prod-\n",
}


def test_kustomize_builds_once_and_templates_apply_per_cluster(
    make_repo: RepoFactory, tools: Toolchain
) -> None:
    repo = _repo(
        make_repo,
        "namespace: k\nsource: {kustomize: {path: overlay}}\nplacement: {selector: {}}\n",
        KUSTOMIZATION,
    )
    cache = RenderCache()
    results = render_all(repo, tools=tools, cache=cache, clusters=["bj-1", "usw-1"])
    assert cache.runs == 1
    rendered = [r.rendered for r in results]
    assert [o.objects[0]["data"]["domain"] for o in rendered if o] == [
        "bj1.example.com",
        "usw1.example.com",
    ]
    cm = rendered[0].objects[0] if rendered[0] else {}
    assert cm["metadata"]["name"] == "prod-settings"
    assert cm["metadata"]["namespace"] == "k"
    assert cm["metadata"]["labels"] == {"team": "a", APP_LABEL: "x"}


def test_a_broken_kustomization_is_one_line_naming_the_app_and_file_with_repo_paths(
    make_repo: RepoFactory, tools: Toolchain
) -> None:
    # A folder with no kustomization in it (a missing path is a load error, see test_config).
    files = {
        **KUSTOMIZATION,
        "apps/x/overlay/kustomization.yaml": "resources: [../missing]\n",
        "apps/x/missing/notes.txt": "no kustomization here\n",
    }
    repo = _repo(
        make_repo, "source: {kustomize: {path: overlay}}\nplacement: {selector: {}}\n", files
    )
    with pytest.raises(RenderError) as err:
        _render(repo, "usw-1", tools)
    message = str(err.value)
    assert message.startswith(
        "app x, cluster usw-1: kustomize build apps/x/overlay/kustomization.yaml failed: Error: "
    )
    assert "\n" not in message
    assert str(repo.root) not in message and str(repo.root.resolve()) not in message
    assert "apps/x/missing" in message


def test_an_unknown_variable_in_kustomize_output_names_the_build(
    make_repo: RepoFactory, tools: Toolchain
) -> None:
    repo = _repo(
        make_repo,
        "source: {kustomize: {path: overlay}}\nplacement: {selector: {}}\n",
        KUSTOMIZATION,
    )
    objects_ok = _render(repo, "bj-1", tools)
    assert objects_ok
    files = {
        **KUSTOMIZATION,
        "apps/x/base/cm.yaml": KUSTOMIZATION["apps/x/base/cm.yaml"].replace("domain}", "domian}"),
    }
    repo = _repo(
        make_repo, "source: {kustomize: {path: overlay}}\nplacement: {selector: {}}\n", files
    )
    with pytest.raises(
        RenderError,
        match=(
            r"apps/x/overlay \(kustomize build output\):\d+: unknown variable "
            r"\$\{cluster.vars.domian\}"
        ),
    ):
        _render(repo, "bj-1", tools)


# ---- typing like kubectl, own config, the network --------------------------------------------

ODD_DATA = "data:\n  8080: http\n  released: 2024-01-01\n  at: 12:30\n  version: 1.20\n"
ODD_DATA_RENDERED = {"8080": "http", "released": "2024-01-01", "at": "12:30", "version": 1.2}


def test_manifest_keys_dates_and_times_render_as_kubectl_reads_them(
    make_repo: RepoFactory,
) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n" + ODD_DATA
    repo = _repo(make_repo, MANIFEST_APP, {"apps/x/m/cm.yaml": cm})
    (obj,) = _render(repo)
    assert obj["data"] == ODD_DATA_RENDERED


def test_helm_output_with_non_string_keys_and_dates_renders(
    make_repo: RepoFactory, tools: Toolchain
) -> None:
    files = {
        **CHART,
        "apps/x/chart/templates/cm.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: odd}\n" + ODD_DATA
        ),
    }
    repo = _repo(make_repo, HELM_APP, files)
    results = render_all(repo, tools=tools)
    assert [r.error for r in results] == [None, None, None]
    rendered = results[0].rendered
    assert rendered is not None
    cm = next(o for o in rendered.objects if o["kind"] == "ConfigMap")
    assert cm["data"] == ODD_DATA_RENDERED


def test_a_cluster_var_keeps_its_text_when_retyping_would_change_it(
    make_repo: RepoFactory,
) -> None:
    clusters = {
        "clusters/usw-1.yaml": cluster(
            "usw-1", "{}", "{k8s: '1.20', n: '3', on: 'true', zip: '01234'}"
        )
    }
    cm = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  k8s: ${cluster.vars.k8s}\n"
        "  n: ${cluster.vars.n}\n  on: ${cluster.vars.on}\n  zip: ${cluster.vars.zip}\n"
    )
    spec = "source: {manifests: m/}\nplacement: {clusters: [usw-1]}\n"
    repo = load_repo(
        make_repo({**clusters, "apps/x/app.yaml": app("x", spec), "apps/x/m/c.yaml": cm})
    )
    (obj,) = _render(repo)
    assert obj["data"] == {"k8s": "1.20", "n": 3, "on": True, "zip": "01234"}


def test_reconciler_objects_from_a_chart_are_rejected(
    make_repo: RepoFactory, tools: Toolchain
) -> None:
    files = {
        **CHART,
        "apps/x/chart/templates/app.yaml": (
            "apiVersion: reconciler.io/v1alpha1\nkind: App\nmetadata: {name: sneaky}\n"
            "spec: {source: {manifests: m/}}\n"
        ),
    }
    repo = _repo(make_repo, HELM_APP, files)
    with pytest.raises(
        RenderError, match=r"App\.reconciler\.io/.*sneaky: .*reconciler.s own config"
    ):
        _render(repo, "usw-1", tools)


def test_a_patch_can_not_turn_an_object_into_reconciler_config(make_repo: RepoFactory) -> None:
    spec = MANIFEST_APP + (
        "overrides:\n- name: o\n  patches:\n  - json: [{op: replace, path: /apiVersion, "
        "value: reconciler.io/v1alpha1}]\n"
    )
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    repo = _repo(make_repo, spec, {"apps/x/m/cm.yaml": cm})
    with pytest.raises(RenderError, match="reconciler's own config"):
        _render(repo)


def test_a_chart_with_remote_dependencies_not_vendored_fails_without_fetching(
    make_repo: RepoFactory, tools: Toolchain
) -> None:
    chart_yaml = (
        "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n"
        "- {name: redis, version: 1.0.0, repository: 'https://charts.example.com/'}\n"
    )
    repo = _repo(make_repo, HELM_APP, {**CHART, "apps/x/chart/Chart.yaml": chart_yaml})
    with pytest.raises(RenderError, match="missing in charts/ directory: redis"):
        _render(repo, "usw-1", tools)


ENV_DUMP = """#!/bin/sh
cat <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: env}
data:
  HTTP_PROXY: "$HTTP_PROXY"
  HTTPS_PROXY: "$HTTPS_PROXY"
  http_proxy: "$http_proxy"
  https_proxy: "$https_proxy"
  ALL_PROXY: "$ALL_PROXY"
  NO_PROXY: "$NO_PROXY"
  no_proxy: "$no_proxy"
  GIT_ALLOW_PROTOCOL: "$GIT_ALLOW_PROTOCOL"
EOF
"""
DEAD = "http://127.0.0.1:9"


@pytest.mark.parametrize("tool", ["helm", "kustomize"])
def test_tools_run_with_the_network_pointed_at_a_dead_proxy(
    make_repo: RepoFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: str
) -> None:
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    fake = tmp_path / f"fake-{tool}"
    fake.write_text(ENV_DUMP)
    fake.chmod(0o755)
    if tool == "helm":
        repo = _repo(make_repo, HELM_APP, CHART)
        tools = Toolchain(helm=str(fake), kustomize="kustomize")
    else:
        spec = "source: {kustomize: {path: overlay}}\nplacement: {selector: {}}\n"
        repo = _repo(make_repo, spec, KUSTOMIZATION)
        tools = Toolchain(helm="helm", kustomize=str(fake))
    (obj,) = _render(repo, "usw-1", tools)
    assert obj["data"] == {
        "HTTP_PROXY": DEAD,
        "HTTPS_PROXY": DEAD,
        "http_proxy": DEAD,
        "https_proxy": DEAD,
        "ALL_PROXY": DEAD,
        "NO_PROXY": "",
        "no_proxy": "",
        "GIT_ALLOW_PROTOCOL": "file",
    }


# ---- what Helm is told the cluster is -------------------------------------------------------

KUBE_CHART = {
    "apps/k/chart/Chart.yaml": (
        'apiVersion: v2\nname: podinfo-like\nversion: 6.7.0\nkubeVersion: ">=1.23.0-0"\n'
    ),
    "apps/k/chart/templates/cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: caps\ndata:\n"
        "  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
        '  widgets: {{ .Capabilities.APIVersions.Has "example.com/v1/Widget" | quote }}\n'
    ),
    "apps/k/app.yaml": app(
        "k", "namespace: k\nsource: {helm: {chart: chart/}}\nplacement: {selector: {}}"
    ),
}


def _caps_repo(make_repo: RepoFactory, kube_version: str | None) -> Repo:
    spec = f"spec:\n  kubeVersion: {kube_version}\n" if kube_version else "spec:\n"
    files = {**KUBE_CHART, "clusters/c.yaml": cluster("c").replace("spec:\n", spec)}
    return load_repo(make_repo(files))


def _caps(objects: list[dict[str, Any]]) -> dict[str, str]:
    return next(o for o in objects if o["kind"] == "ConfigMap")["data"]


def test_a_chart_with_a_kube_version_constraint_renders_offline_with_the_pinned_version(
    make_repo: RepoFactory, tools: Toolchain
) -> None:
    repo = _caps_repo(make_repo, None)
    (result,) = render_all(repo, tools=tools)
    assert result.rendered is not None, result.error
    assert _caps(result.rendered.objects) == {"kube": KUBERNETES_VERSION, "widgets": "false"}


def test_an_older_spec_kube_version_is_what_helm_checks_the_chart_against(
    make_repo: RepoFactory, tools: Toolchain
) -> None:
    (result,) = render_all(_caps_repo(make_repo, "v1.20.0"), tools=tools)
    assert result.error is not None
    assert "chart requires kubeVersion: >=1.23.0-0" in str(result.error)
    (newer,) = render_all(_caps_repo(make_repo, "v1.30.2"), tools=tools)
    assert newer.rendered is not None and _caps(newer.rendered.objects)["kube"] == "v1.30.2"


def test_capabilities_from_the_cluster_are_inputs_of_the_render(
    make_repo: RepoFactory, tools: Toolchain
) -> None:
    repo = _caps_repo(make_repo, "v1.20.0")  # the cluster's own answer wins over the offline one
    caps = {"c": Capabilities("v1.31.4", ("example.com/v1", "example.com/v1/Widget"))}
    cache = RenderCache()
    (result,) = render_all(repo, tools=tools, cache=cache, capabilities=caps)
    assert result.rendered is not None, result.error
    assert _caps(result.rendered.objects) == {"kube": "v1.31.4", "widgets": "true"}
    render_all(repo, tools=tools, cache=cache, capabilities=caps)
    assert cache.runs == 1  # same chart, values and capabilities: one helm run


def test_a_cluster_kube_version_that_is_not_a_version_is_a_located_error(
    make_repo: RepoFactory,
) -> None:
    files = {"clusters/c.yaml": cluster("c").replace("spec:\n", "spec:\n  kubeVersion: latest\n")}
    with pytest.raises(ConfigError, match=r"clusters/c.yaml:\d+: spec.kubeVersion: .*'latest'"):
        load_repo(make_repo(files))
