"""Charts from real chart sources on loopback: a Helm repository (HTTP, HTTPS + basic auth) and
the CNCF distribution registry (OCI), through the resolver and its content-addressed cache."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from reconciler.charts.cache import ChartCache
from reconciler.charts.credentials import ChartCredentials
from reconciler.charts.model import ChartSource, Pin
from reconciler.charts.resolver import ChartResolver
from reconciler.cli.main import cli
from reconciler.errors import ChartError
from tests.chartservers import (
    HelmRepoServer,
    Registry,
    helm_repo,
    make_test_ca,
    oci_registry,
    package,
    write_chart,
)
from tests.configrepo import write, write_clusters

VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "2.0.0")


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """demo-<v>.tgz for every version, packaged once by the pinned helm."""
    work = tmp_path_factory.mktemp("charts")
    out = work / "packages"
    return {v: package(write_chart(work, "demo", v), out, work / "helm") for v in VERSIONS}


@pytest.fixture
def repo(tmp_path: Path, packaged: dict[str, Path]) -> Iterator[HelmRepoServer]:
    with helm_repo(tmp_path / "served") as server:
        for archive in packaged.values():
            (server.root / archive.name).write_bytes(archive.read_bytes())
        server.index(tmp_path / "helm")
        yield server


def source(url: str, version: str) -> ChartSource:
    return ChartSource("repo", url, "demo", version)


def test_a_range_resolves_to_the_highest_version_it_allows(
    tmp_path: Path, repo: HelmRepoServer, packaged: dict[str, Path]
) -> None:
    resolver = ChartResolver(ChartCache(tmp_path / "cache"))
    chart = resolver.resolve(source(repo.url, "^1.0"))
    assert chart.version == "1.2.0"
    assert chart.digest == "sha256:" + hashlib.sha256(packaged["1.2.0"].read_bytes()).hexdigest()
    assert yaml.safe_load((chart.path / "Chart.yaml").read_text())["version"] == "1.2.0"
    assert chart.note is None
    assert repo.requests == ["/index.yaml", "/demo-1.2.0.tgz"]
    # Another app asking for the same chart in the same revision: no request at all.
    assert resolver.resolve(source(repo.url, ">=1.1 <2")).path == chart.path
    assert len(repo.requests) == 2


def test_a_cached_chart_is_served_without_network(tmp_path: Path, repo: HelmRepoServer) -> None:
    cache = ChartCache(tmp_path / "cache")
    first = ChartResolver(cache).resolve(source(repo.url, "1.1.0"))
    asked = len(repo.requests)
    again = ChartResolver(cache)
    assert again.resolve(source(repo.url, "1.1.0")) == first  # exact: the cache answers
    assert again.requests == 0 and len(repo.requests) == asked
    repo.stop()
    # A range needs the source; unreachable, the best cached version still renders.
    offline = ChartResolver(cache, timeout=5).resolve(source(repo.url, "^1"))
    assert (offline.version, offline.path) == ("1.1.0", first.path)
    assert offline.note is not None and "using the cached chart" in offline.note
    pinned = ChartResolver(cache).resolve(source(repo.url, "^1"), Pin("1.1.0", first.digest))
    assert (pinned.version, pinned.digest, pinned.path) == ("1.1.0", first.digest, first.path)
    with pytest.raises(ChartError, match=r"127\.0\.0\.1.*index\.yaml: .*[Cc]onnection refused"):
        ChartResolver(cache, timeout=5).resolve(source(repo.url, "2.0.0"))


def test_a_digest_mismatch_is_refused(
    tmp_path: Path, repo: HelmRepoServer, packaged: dict[str, Path]
) -> None:
    (repo.root / "demo-1.0.0.tgz").write_bytes(packaged["1.1.0"].read_bytes())  # swapped content
    cache = ChartCache(tmp_path / "cache")
    with pytest.raises(
        ChartError, match=r"demo 1\.0\.0: digest mismatch: the source lists sha256:"
    ):
        ChartResolver(cache).resolve(source(repo.url, "1.0.0"))
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_a_missing_version_or_chart_says_what_there_is(
    tmp_path: Path, repo: HelmRepoServer
) -> None:
    resolver = ChartResolver(ChartCache(tmp_path / "cache"))
    with pytest.raises(ChartError) as err:
        resolver.resolve(source(repo.url, "~3.1"))
    assert str(err.value) == (
        f"chart {repo.url} demo ~3.1: no version matches (newest: 2.0.0, 1.2.0, 1.1.0, 1.0.0)"
    )
    with pytest.raises(ChartError, match="the repository has no chart 'other'"):
        resolver.resolve(ChartSource("repo", repo.url, "other", "1.0.0"))
    with pytest.raises(ChartError, match=r"nothing/index\.yaml: HTTP 404 \(not found\)"):
        resolver.resolve(ChartSource("repo", repo.url + "nothing/", "demo", "1.0.0"))


def test_https_with_basic_auth_and_a_custom_ca(tmp_path: Path, packaged: dict[str, Path]) -> None:
    ca, serving = make_test_ca(tmp_path / "pki")
    with helm_repo(tmp_path / "served", tls=serving, basic_auth=("deploy", "s3cret")) as repo:
        (repo.root / packaged["1.0.0"].name).write_bytes(packaged["1.0.0"].read_bytes())
        repo.index(tmp_path / "helm")
        cache = ChartCache(tmp_path / "cache")
        with pytest.raises(ChartError, match=r"TLS certificate not trusted.*set caFile"):
            ChartResolver(cache).resolve(source(repo.url, "1.0.0"))
        creds_file = tmp_path / "credentials.yaml"
        (tmp_path / "password").write_text("s3cret\n")
        creds_file.write_text(f"{repo.url}:\n  caFile: {ca.cert}\n")
        with pytest.raises(ChartError, match=r"HTTP 401 \(credentials missing or refused"):
            ChartResolver(cache, ChartCredentials.load(creds_file)).resolve(source(repo.url, "1"))
        creds_file.write_text(
            f"{repo.url}:\n  caFile: {ca.cert}\n  username: deploy\n"
            f"  passwordFile: {tmp_path / 'password'}\n"
        )
        resolver = ChartResolver(cache, ChartCredentials.load(creds_file))
        assert resolver.resolve(source(repo.url, "1")).version == "1.0.0"


# ---- OCI --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, packaged: dict[str, Path]
) -> Iterator[tuple[Registry, ChartCredentials]]:
    """The distribution registry (TLS from a test CA) holding demo 1.0.0 ... 2.0.0."""
    work = tmp_path_factory.mktemp("registry")
    ca, serving = make_test_ca(work / "pki")
    with oci_registry(work / "registry", ca, serving) as reg:
        for archive in packaged.values():
            reg.push(archive, "team", work / "helm")
        creds = work / "credentials.yaml"
        creds.write_text(f"oci://{reg.host}/:\n  caFile: {ca.cert}\n")
        yield reg, ChartCredentials.load(creds)


def oci(reg: Registry, version: str) -> ChartSource:
    return ChartSource("oci", f"oci://{reg.host}/team/demo", "demo", version)


def test_an_oci_chart_resolves_a_range_over_the_tags(
    tmp_path: Path, registry: tuple[Registry, ChartCredentials], packaged: dict[str, Path]
) -> None:
    reg, creds = registry
    cache = ChartCache(tmp_path / "cache")
    chart = ChartResolver(cache, creds).resolve(oci(reg, "~1.1"))
    assert chart.version == "1.1.0"
    assert chart.digest == "sha256:" + hashlib.sha256(packaged["1.1.0"].read_bytes()).hexdigest()
    assert (chart.path / "templates" / "configmap.yaml").is_file()
    exact = ChartResolver(cache, creds)
    assert exact.resolve(oci(reg, "1.1.0")).path == chart.path
    assert exact.requests == 0
    latest = ChartResolver(cache, creds).resolve(oci(reg, ">=1"))
    assert latest.version == "2.0.0"


def test_a_missing_oci_version_is_an_error_naming_it(
    tmp_path: Path, registry: tuple[Registry, ChartCredentials]
) -> None:
    reg, creds = registry
    resolver = ChartResolver(ChartCache(tmp_path / "cache"), creds)
    with pytest.raises(ChartError) as err:
        resolver.resolve(oci(reg, "1.0.1"))
    assert str(err.value) == (
        f"chart oci://{reg.host}/team/demo 1.0.1: no version 1.0.1 in the registry (no such tag)"
    )
    with pytest.raises(
        ChartError, match=r"demo \^3: no version matches \(newest: 2\.0\.0, 1\.2\.0"
    ):
        resolver.resolve(oci(reg, "^3"))
    with pytest.raises(ChartError, match="repository not found"):
        resolver.resolve(ChartSource("oci", f"oci://{reg.host}/team/nothing", "nothing", "^1"))


def test_a_registry_with_token_auth_takes_the_configured_credentials(
    tmp_path: Path, packaged: dict[str, Path]
) -> None:
    ca, serving = make_test_ca(tmp_path / "pki")
    with oci_registry(tmp_path / "registry", ca, serving, token_auth=("ci", "pa55")) as reg:
        reg.login("ci", "pa55", tmp_path / "helm")
        reg.push(packaged["1.2.0"], "private", tmp_path / "helm")
        chart = ChartSource("oci", f"oci://{reg.host}/private/demo", "demo", "^1")
        creds = tmp_path / "credentials.yaml"
        creds.write_text(f"oci://{reg.host}/private/:\n  caFile: {ca.cert}\n")
        cache = ChartCache(tmp_path / "cache")
        with pytest.raises(
            ChartError, match=r"token service: HTTP 401 \(credentials missing or refused"
        ):
            ChartResolver(cache, ChartCredentials.load(creds)).resolve(chart)
        (tmp_path / "password").write_text("pa55\n")
        creds.write_text(
            f"oci://{reg.host}/private/:\n  caFile: {ca.cert}\n  username: ci\n"
            f"  passwordFile: {tmp_path / 'password'}\n"
        )
        resolved = ChartResolver(cache, ChartCredentials.load(creds)).resolve(chart)
        assert resolved.version == "1.2.0"
        assert (resolved.path / "Chart.yaml").is_file()


# ---- through the CLI: validate, render, plan ----------------------------------------------------


def remote_chart_repo(root: Path, helm_source: dict[str, Any]) -> Path:
    write_clusters(root, {"edge-1": {"env": "prod"}, "edge-2": {"env": "prod"}})
    write(
        root / "apps" / "web" / "app.yaml",
        {
            "apiVersion": "reconciler.io/v1alpha1",
            "kind": "App",
            "metadata": {"name": "web"},
            "spec": {
                "namespace": "web",
                "source": {"helm": helm_source},
                "placement": {"selector": {"matchLabels": {"env": "prod"}}},
                "overrides": [{"name": "hi", "target": {"clusters": ["edge-2"]},
                               "values": {"greeting": "hi ${cluster.name}"}}],
            },
        },
    )  # fmt: skip
    return root


def run_cli(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def configmaps(output: str) -> dict[str, dict[str, Any]]:
    """cluster -> the chart's ConfigMap data, from `render` YAML output."""
    docs = [d for d in yaml.safe_load_all(output) if d]
    clusters = [line.rsplit(" ", 1)[1] for line in output.splitlines() if line.startswith("# app")]
    return {name: doc["data"] for name, doc in zip(clusters, docs, strict=True)}


def test_render_and_validate_take_a_chart_from_a_helm_repository_and_then_the_cache(
    tmp_path: Path, repo: HelmRepoServer
) -> None:
    root = remote_chart_repo(
        tmp_path / "config", {"repo": repo.url, "chart": "demo", "version": ">=1.1 <2"}
    )
    cache = tmp_path / "chart-cache"
    result = run_cli("render", root, "--chart-cache", cache)
    assert result.exit_code == 0, result.output
    data = configmaps(result.stdout)
    assert data["edge-1"] == {"chartVersion": "1.2.0", "greeting": "hello", "marker": ""}
    assert data["edge-2"]["greeting"] == "hi edge-2"
    assert repo.requests == ["/index.yaml", "/demo-1.2.0.tgz"]  # one download for both clusters
    assert run_cli("validate", root, "--chart-cache", cache).exit_code == 0
    repo.stop()
    offline = run_cli("render", root, "--chart-cache", cache)
    assert offline.exit_code == 0, offline.output
    assert configmaps(offline.stdout)["edge-1"]["chartVersion"] == "1.2.0"
    assert "note: app web: chart" in offline.stderr and "using the cached chart" in offline.stderr
    failed = run_cli("validate", root, "--chart-cache", tmp_path / "empty-cache")
    assert failed.exit_code == 2
    app_yaml = (root / "apps" / "web" / "app.yaml").read_text().splitlines()
    at = next(i for i, text in enumerate(app_yaml, 1) if text.strip().startswith("version:"))
    line = (
        f"error: app web, clusters edge-1, edge-2: apps/web/app.yaml:{at}: chart {repo.url} "
        f"demo >=1.1 <2: "
        f"{repo.url}index.yaml: Connection refused (and no cached version matches)"
    )
    assert line in failed.stderr.splitlines(), failed.stderr


def test_render_takes_an_oci_chart_with_the_credentials_file(
    tmp_path: Path, registry: tuple[Registry, ChartCredentials]
) -> None:
    reg, _ = registry
    creds = tmp_path / "credentials.yaml"
    creds.write_text(f"oci://{reg.host}/:\n  caFile: {reg.ca}\n")
    root = remote_chart_repo(
        tmp_path / "config", {"chart": f"oci://{reg.host}/team/demo", "version": "1.0.0"}
    )
    result = run_cli(
        "render", root, "--chart-cache", tmp_path / "cache", "--chart-credentials", creds
    )
    assert result.exit_code == 0, result.output
    assert configmaps(result.stdout)["edge-2"] == {
        "chartVersion": "1.0.0",
        "greeting": "hi edge-2",
        "marker": "",
    }
    # Cached: no request, so no credentials needed. Not cached: the registry is not trusted.
    assert run_cli("render", root, "--chart-cache", tmp_path / "cache").exit_code == 0
    missing = run_cli("render", root, "--chart-cache", tmp_path / "other-cache")
    assert missing.exit_code == 2
    assert f"chart oci://{reg.host}/team/demo 1.0.0: " in missing.stderr
    assert "TLS certificate not trusted" in missing.stderr


def test_plan_shows_a_chart_version_bump(tmp_path: Path, repo: HelmRepoServer) -> None:
    root = remote_chart_repo(
        tmp_path / "config", {"repo": repo.url, "chart": "demo", "version": "~1.1"}
    )
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    app_yaml = root / "apps" / "web" / "app.yaml"
    app_yaml.write_text(app_yaml.read_text().replace("~1.1", "^1.2"))
    subprocess.run([*git, "commit", "-qam", "bump"], check=True)
    result = run_cli("plan", root, "--base", "HEAD~1", "--chart-cache", tmp_path / "cache")
    assert result.exit_code == 1, result.output
    assert f"chart {repo.url} demo: 1.1.0 → 1.2.0" in result.stdout
    assert '-  chartVersion: "1.1.0"' in result.stdout or "1.1.0" in result.stdout
