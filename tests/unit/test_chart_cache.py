"""The content-addressed chart cache, the index parser and the credentials file (no network)."""

from __future__ import annotations

import io
import os
import tarfile
import threading
import time
from pathlib import Path

import pytest

from reconciler.charts.cache import STALE_TEMPORARY_SECONDS, ChartCache, sha256_digest
from reconciler.charts.credentials import ChartCredentials
from reconciler.charts.index import IndexFormatError, parse_index
from reconciler.errors import ChartError


def chart_archive(name: str = "demo", version: str = "1.0.0", extra: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        files = {
            f"{name}/Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\n",
            f"{name}/templates/cm.yaml": "kind: ConfigMap\n",
        }
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra:
            link = tarfile.TarInfo(f"{name}/escape")
            link.type = tarfile.SYMTYPE
            link.linkname = "/etc/passwd"
            tar.addfile(link)
    return buf.getvalue()


def test_a_verified_archive_is_stored_once_and_unpacked(tmp_path: Path) -> None:
    cache = ChartCache(tmp_path)
    archive = chart_archive()
    digest = sha256_digest(archive)
    assert cache.chart_dir(digest) is None
    path = cache.put(archive, digest, "demo", "1.0.0")
    assert path == tmp_path / "sha256" / digest.removeprefix("sha256:") / "demo"
    assert (path / "Chart.yaml").is_file()
    assert cache.chart_dir(digest) == path
    assert cache.put(archive, digest, "demo", "1.0.0") == path  # idempotent
    assert (tmp_path / "sha256" / f"{digest.removeprefix('sha256:')}.tgz").read_bytes() == archive


def test_a_digest_mismatch_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    cache = ChartCache(tmp_path)
    wrong = sha256_digest(b"something else")
    with pytest.raises(ChartError, match="digest mismatch: the source lists sha256:"):
        cache.put(chart_archive(), wrong, "demo", "1.0.0")
    assert cache.chart_dir(wrong) is None
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_an_archive_must_hold_the_chart_and_version_asked_for(tmp_path: Path) -> None:
    archive = chart_archive("other", "2.0.0")
    with pytest.raises(ChartError, match=r"holds chart other 2\.0\.0, not demo 1\.0\.0"):
        ChartCache(tmp_path).put(archive, sha256_digest(archive), "demo", "1.0.0")
    with pytest.raises(ChartError, match="not a readable chart archive"):
        ChartCache(tmp_path).put(b"junk", sha256_digest(b"junk"), "demo", "1.0.0")


def test_links_in_an_archive_are_not_unpacked(tmp_path: Path) -> None:
    archive = chart_archive(extra=True)
    path = ChartCache(tmp_path).put(archive, sha256_digest(archive), "demo", "1.0.0")
    assert not os.path.lexists(path / "escape")


def test_resolved_versions_are_remembered_per_source_and_chart(tmp_path: Path) -> None:
    cache = ChartCache(tmp_path)
    cache.remember("https://charts.example/", "demo", "1.0.0", "sha256:" + "a" * 64)
    cache.remember("https://charts.example/", "demo", "1.1.0", "sha256:" + "b" * 64)
    assert ChartCache(tmp_path).known_versions("https://charts.example/", "demo") == {
        "1.0.0": "sha256:" + "a" * 64,
        "1.1.0": "sha256:" + "b" * 64,
    }
    assert cache.known_versions("https://charts.example/", "other") == {}
    with pytest.raises(ChartError, match="unsupported chart digest"):
        cache.chart_dir("md5:abc")


def test_versions_remembered_at_once_are_all_kept(tmp_path: Path) -> None:
    """Each thread opens its own cache, as processes sharing the directory do."""
    start = threading.Barrier(48)

    def remember(n: int) -> None:
        cache = ChartCache(tmp_path)
        start.wait()
        cache.remember("https://charts.example/", "demo", f"1.0.{n}", f"sha256:{n:064x}")

    threads = [threading.Thread(target=remember, args=(n,)) for n in range(48)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    known = ChartCache(tmp_path).known_versions("https://charts.example/", "demo")
    assert known == {f"1.0.{n}": f"sha256:{n:064x}" for n in range(48)}


def test_opening_the_cache_removes_what_a_crashed_writer_left(tmp_path: Path) -> None:
    archive = chart_archive()
    ChartCache(tmp_path).put(archive, sha256_digest(archive), "demo", "1.0.0")
    left = [tmp_path / "sha256" / ".0123456789ab-x1", tmp_path / "sha256" / ".abc.tgz-x2"]
    left[0].mkdir()
    (left[0] / "Chart.yaml").write_text("half\n")
    left[1].write_bytes(b"half")
    busy = tmp_path / "sha256" / ".ba9876543210-x3"  # a writer at work right now
    busy.mkdir()
    old = time.time() - STALE_TEMPORARY_SECONDS - 60
    for path in left:
        os.utime(path, (old, old))
    cache = ChartCache(tmp_path)
    assert not any(p.exists() for p in left)
    assert busy.is_dir()
    assert cache.chart_dir(sha256_digest(archive)) is not None


def test_an_index_lists_versions_with_digest_and_urls() -> None:
    index = parse_index(
        "apiVersion: v1\nentries:\n  demo:\n  - version: 1.0.0\n    digest: ABC\n"
        "    urls: [demo-1.0.0.tgz]\n  - version: 1.1.0\n    urls: []\n"
    )
    first, second = index["demo"]
    assert (first.version, first.digest) == ("1.0.0", "sha256:abc")
    assert first.download_url("https://x.example/charts") == (
        "https://x.example/charts/demo-1.0.0.tgz"
    )
    assert second.digest is None and second.download_url("https://x.example/") is None
    with pytest.raises(IndexFormatError, match="no 'entries'"):
        parse_index("<html>not found</html>")


def test_credentials_are_matched_by_the_longest_prefix_on_a_boundary(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    file = tmp_path / "creds.yaml"
    file.write_text(
        "https://charts.example.com:\n  caFile: /nonexistent/ca.pem\n"
        f"https://charts.example.com/private/:\n  username: deploy\n  passwordFile: {secret}\n"
        "oci://registry.example.com/team/:\n  tokenEnv: TEST_CHART_TOKEN\n"
    )
    creds = ChartCredentials.load(file)
    private = creds.for_url("https://charts.example.com/private/index.yaml")
    assert private is not None and private.basic() == ("deploy", "s3cret")
    public = creds.for_url("https://charts.example.com/public/index.yaml")
    assert public is not None and public.basic() is None
    assert creds.for_url("https://charts.example.com.evil.example/index.yaml") is None
    assert "s3cret" not in repr(creds)
    team = creds.for_url("oci://registry.example.com/team/app")
    assert team is not None
    with pytest.raises(ChartError, match=r"\$TEST_CHART_TOKEN is not set"):
        team.token()
    with pytest.raises(ChartError, match=r"cannot load caFile /nonexistent/ca\.pem"):
        public.ssl_context()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("https://x.example/:\n  password: hunter2\n", ":1: https://x.example/: password is not"),
        ("https://x.example/:\n  user: a\n", "unknown field 'user'"),
        ("ftp://x.example/:\n  username: a\n", "is not an https://, http:// or oci://"),
        ("- https://x.example/\n", "expected one mapping"),
        (
            "a: 1\nhttps://x.example/:\n  tokenFile: t\n  passwordFile: p\n",
            ":1: 'a' is not",
        ),
    ],
)
def test_a_bad_credentials_file_is_a_located_error(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "creds.yaml"
    file.write_text(text)
    with pytest.raises(ChartError, match=message) as err:
        ChartCredentials.load(file)
    assert "hunter2" not in str(err.value)
