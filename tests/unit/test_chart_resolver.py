"""The resolver against scripted chart sources on loopback (a Helm repository, an OCI registry
over TLS): what one chart's or version's failure may fail besides, which index entry or tag a
version means, and which failures are the network's (a cached chart is used instead)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import repo_snippets as snip
import yaml
from click.testing import CliRunner
from conftest import RepoFactory

from reconciler.charts.cache import ChartCache
from reconciler.charts.credentials import ChartCredentials, SourceCredentials
from reconciler.charts.model import ChartSource, Pin
from reconciler.charts.oci import CHART_LAYER
from reconciler.charts.resolver import ChartResolver
from reconciler.cli.main import cli
from reconciler.errors import ChartError
from tests.chartservers import ScriptedServer, make_test_ca, scripted_server


def chart_archive(name: str, version: str, marker: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        files = {
            f"{name}/Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\n",
            f"{name}/values.yaml": f"marker: {marker!r}\n",
        }
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(name: str, version: str, archive: bytes | None, url: str | None = None) -> Any:
    """An index.yaml entry; ``archive`` None: one without a digest."""
    item: dict[str, Any] = {"name": name, "version": version}
    item["urls"] = [url or f"{name}-{version}.tgz"]
    if archive is not None:
        item["digest"] = sha256(archive)
    return item


def index(**charts: list[Any]) -> tuple[int, dict[str, str], bytes]:
    return 200, {}, yaml.safe_dump({"apiVersion": "v1", "entries": charts}).encode()


def paths(server: ScriptedServer) -> list[str]:
    return [path for path, _ in server.seen]


# ---- a Helm repository --------------------------------------------------------------------------


def test_a_version_without_a_digest_fails_that_chart_alone(tmp_path: Path) -> None:
    beta = chart_archive("beta", "2.0.0")
    with scripted_server() as repo:
        repo.routes["/index.yaml"] = index(
            alpha=[entry("alpha", "1.0.0", None)], beta=[entry("beta", "2.0.0", beta)]
        )
        repo.routes["/beta-2.0.0.tgz"] = (200, {}, beta)
        resolver = ChartResolver(ChartCache(tmp_path / "cache"))
        with pytest.raises(
            ChartError, match=r"alpha 1\.0\.0: index\.yaml gives no digest for 1\.0\.0"
        ):
            resolver.resolve(ChartSource("repo", repo.url, "alpha", "1.0.0"))
        assert resolver.resolve(ChartSource("repo", repo.url, "beta", "^2")).version == "2.0.0"
        assert paths(repo) == ["/index.yaml", "/beta-2.0.0.tgz"]


def test_a_repository_that_fails_fails_all_its_charts_and_is_asked_once(tmp_path: Path) -> None:
    with scripted_server() as repo:
        repo.routes["/index.yaml"] = (401, {}, b"")
        resolver = ChartResolver(ChartCache(tmp_path / "cache"))
        for chart in ("alpha", "beta"):
            with pytest.raises(ChartError, match=rf"{chart} 1\.0\.0: .*index\.yaml: HTTP 401"):
                resolver.resolve(ChartSource("repo", repo.url, chart, "1.0.0"))
        assert paths(repo) == ["/index.yaml"]


def test_a_version_listed_twice_is_the_first_entry_as_helm_takes_it(tmp_path: Path) -> None:
    first = chart_archive("beta", "2.0.0", marker="first")
    second = chart_archive("beta", "2.0.0", marker="second")
    with scripted_server() as repo:
        repo.routes["/index.yaml"] = index(
            beta=[
                entry("beta", "2.0.0", first, "old/beta-2.0.0.tgz"),
                entry("beta", "2.0.0", second, "new/beta-2.0.0.tgz"),
            ]
        )
        repo.routes["/old/beta-2.0.0.tgz"] = (200, {}, first)
        repo.routes["/new/beta-2.0.0.tgz"] = (200, {}, second)
        chart = ChartResolver(ChartCache(tmp_path / "cache")).resolve(
            ChartSource("repo", repo.url, "beta", "^2")
        )
        assert chart.digest == "sha256:" + sha256(first)
        assert "first" in (chart.path / "values.yaml").read_text()
        assert paths(repo) == ["/index.yaml", "/old/beta-2.0.0.tgz"]


def test_a_pin_is_fetched_when_the_index_now_spells_its_version_otherwise(tmp_path: Path) -> None:
    archive = chart_archive("demo", "1.0.0")
    digest = "sha256:" + sha256(archive)
    with scripted_server() as repo:
        repo.routes["/index.yaml"] = index(demo=[entry("demo", "v1.0.0", archive)])
        repo.routes["/demo-v1.0.0.tgz"] = (200, {}, archive)
        chart = ChartResolver(ChartCache(tmp_path / "cache")).resolve(
            ChartSource("repo", repo.url, "demo", "^1"), Pin("1.0.0", digest)
        )
    assert (chart.version, chart.digest) == ("1.0.0", digest)
    assert (chart.path / "Chart.yaml").is_file()


def broken_chunked_reply(handler: BaseHTTPRequestHandler) -> None:
    """A chunked body whose connection closes in the middle of its first chunk."""
    handler.wfile.write(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"100\r\n" + b"x" * 20
    )


def test_a_cut_short_download_or_a_broken_connection_falls_back_to_the_cached_chart(
    tmp_path: Path,
) -> None:
    old, new = chart_archive("demo", "1.0.0"), chart_archive("demo", "1.1.0")
    cache = ChartCache(tmp_path / "cache")
    with scripted_server() as repo:
        repo.routes["/index.yaml"] = index(
            demo=[entry("demo", "1.1.0", new), entry("demo", "1.0.0", old)]
        )
        repo.routes["/demo-1.0.0.tgz"] = (200, {}, old)
        source = ChartSource("repo", repo.url, "demo", "^1")
        cached = ChartResolver(cache).resolve(ChartSource("repo", repo.url, "demo", "1.0.0"))
        # The archive ends before its Content-Length: the network's failure, not the chart's.
        repo.routes["/demo-1.1.0.tgz"] = (200, {"Content-Length": str(len(new))}, new[:10])
        cut = ChartResolver(cache).resolve(source)
        assert (cut.version, cut.path) == ("1.0.0", cached.path)
        assert cut.note is not None
        assert f"demo-1.1.0.tgz: the download was cut short (10 of {len(new)} bytes)" in cut.note
        assert "digest mismatch" not in cut.note
        repo.routes["/index.yaml"] = broken_chunked_reply
        broken = ChartResolver(cache).resolve(source)
        assert (broken.version, broken.path) == ("1.0.0", cached.path)
        assert broken.note is not None and "index.yaml: the connection broke" in broken.note
        with pytest.raises(ChartError, match=r"the connection broke .*no cached version matches"):
            ChartResolver(cache).resolve(ChartSource("repo", repo.url, "demo", "^2"))


def test_a_cache_that_cannot_be_written_is_a_chart_error_naming_it(tmp_path: Path) -> None:
    archive = chart_archive("demo", "1.0.0")
    (tmp_path / "cache").write_text("a file, not a directory")
    with scripted_server() as repo:
        repo.routes["/index.yaml"] = index(demo=[entry("demo", "1.0.0", archive)])
        repo.routes["/demo-1.0.0.tgz"] = (200, {}, archive)
        with pytest.raises(
            ChartError,
            match=rf"demo 1\.0\.0: chart cache {tmp_path}/cache: cannot store the chart: "
            rf"Not a directory \({tmp_path}/cache/sha256\)",
        ):
            ChartResolver(ChartCache(tmp_path / "cache")).resolve(
                ChartSource("repo", repo.url, "demo", "1.0.0")
            )


def test_validate_reports_an_unusable_chart_cache_for_the_app(
    tmp_path: Path, make_repo: RepoFactory
) -> None:
    archive = chart_archive("demo", "1.0.0")
    (tmp_path / "file").write_text("a file, not a directory")
    cache = tmp_path / "file" / "cache"
    with scripted_server() as repo:
        repo.routes["/index.yaml"] = index(demo=[entry("demo", "1.0.0", archive)])
        repo.routes["/demo-1.0.0.tgz"] = (200, {}, archive)
        root = make_repo(snip.helm_app(f'{{repo: "{repo.url}", chart: demo, version: "1.0.0"}}'))
        result = CliRunner().invoke(cli, ["validate", str(root), "--chart-cache", str(cache)])
    assert result.exit_code == 2, result.output
    line = (
        f"error: app web, cluster c1: apps/web/app.yaml:6: chart {repo.url} demo 1.0.0: "
        f"chart cache {cache}: cannot store the chart: Not a directory ({cache}/sha256)"
    )
    assert line in result.stderr.splitlines(), result.output


# ---- an OCI registry ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    ca, serving = make_test_ca(tmp_path_factory.mktemp("pki"))
    yield ca.cert, serving


def manifest(archive: bytes) -> bytes:
    layer = {"mediaType": CHART_LAYER, "digest": "sha256:" + sha256(archive)}
    return json.dumps({"schemaVersion": 2, "layers": [layer]}).encode()


def push(registry: ScriptedServer, tag: str, archive: bytes) -> None:
    """``archive`` tagged ``tag`` in repository team/demo of the scripted registry."""
    registry.routes[f"/v2/team/demo/manifests/{tag}"] = (200, {}, manifest(archive))
    registry.routes[f"/v2/team/demo/blobs/sha256:{sha256(archive)}"] = (200, {}, archive)


def tag_list(*tags: str) -> tuple[int, dict[str, str], bytes]:
    return 200, {}, json.dumps({"name": "team/demo", "tags": list(tags)}).encode()


def oci_resolver(tmp_path: Path, registry: ScriptedServer, ca: Path) -> ChartResolver:
    creds = ChartCredentials((SourceCredentials(f"oci://{registry.host}/", ca_file=str(ca)),))
    return ChartResolver(ChartCache(tmp_path / "cache"), creds)


def oci(registry: ScriptedServer, version: str) -> ChartSource:
    return ChartSource("oci", f"oci://{registry.host}/team/demo", "demo", version)


def test_a_bad_manifest_fails_that_oci_version_alone(tmp_path: Path, tls: tuple[Path, Any]) -> None:
    ca, serving = tls
    with scripted_server(serving) as registry:
        registry.routes["/v2/team/demo/manifests/1.0.0"] = (200, {}, b"{not json")
        push(registry, "2.0.0", chart_archive("demo", "2.0.0"))
        resolver = oci_resolver(tmp_path, registry, ca)
        for _ in range(2):  # asked once
            with pytest.raises(ChartError, match=r"1\.0\.0: the manifest is not valid JSON"):
                resolver.resolve(oci(registry, "1.0.0"))
        assert resolver.resolve(oci(registry, "2.0.0")).version == "2.0.0"
        assert paths(registry).count("/v2/team/demo/manifests/1.0.0") == 1


def test_an_exact_oci_version_finds_its_tag_spelled_with_or_without_v(
    tmp_path: Path, tls: tuple[Path, Any]
) -> None:
    ca, serving = tls
    with scripted_server(serving) as registry:
        registry.routes["/v2/team/demo/tags/list"] = tag_list("1.0.0", "v2.0.0")
        push(registry, "1.0.0", chart_archive("demo", "1.0.0"))
        push(registry, "v2.0.0", chart_archive("demo", "v2.0.0"))
        resolver = oci_resolver(tmp_path, registry, ca)
        assert resolver.resolve(oci(registry, "v1.0.0")).version == "1.0.0"
        assert resolver.resolve(oci(registry, "=2.0.0")).version == "v2.0.0"
        with pytest.raises(ChartError, match=r"demo 1\.0\.1: no version 1\.0\.1 in the registry"):
            resolver.resolve(oci(registry, "1.0.1"))
        assert paths(registry).count("/v2/team/demo/tags/list?n=1000") == 1
