"""The content-addressed chart cache on disk.

::

    <root>/sha256/<hex>.tgz        a chart archive whose sha256 is <hex> (checked before writing)
    <root>/sha256/<hex>/<chart>/   the same archive unpacked: what ``helm template`` renders
    <root>/refs/<key>.json         source + chart name -> {version: digest}, as last resolved
    <root>/refs/<key>.lock         flock(2)ed while <key>.json is read, updated and replaced

An archive is stored only after its digest matched, and everything lands by an atomic rename
of files already synced to disk, so a reader never sees half a chart, not even after a crash,
and two processes sharing the directory never clash (the second rename of the same content
loses harmlessly; updates of one refs file take turns under its lock). Temporary entries a
crash left behind (``.<name>-*``) are removed when the cache is opened, once they are old
enough not to belong to a writer still at work. One chart version is downloaded once and
shared by every cluster, app and revision; renders read the unpacked directory. Any failure
of the file system is a ChartError naming the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from reconciler.charts.versions import parse_version
from reconciler.errors import ChartError

MAX_UNPACKED_BYTES = 200 * 1024 * 1024  # helm's own limit for a chart is 100 MiB
STALE_TEMPORARY_SECONDS = 30 * 60  # a temporary entry this old was left by a crashed writer


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _hex(digest: str) -> str:
    algorithm, _, value = digest.partition(":")
    if algorithm != "sha256" or len(value) != 64 or not all(c in "0123456789abcdef" for c in value):
        raise ChartError(f"unsupported chart digest {digest!r} (only sha256:<64 hex> is)")
    return value


class ChartCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for directory in (self.root / "sha256", self.root / "refs"):
            _remove_stale_temporaries(directory)

    @contextlib.contextmanager
    def _disk(self, what: str) -> Iterator[None]:
        """Turn a failure of the file system into a ChartError naming the cache and the path."""
        try:
            yield
        except OSError as err:
            where = f" ({err.filename})" if err.filename else ""
            reason = err.strerror or str(err) or type(err).__name__
            raise ChartError(f"chart cache {self.root}: cannot {what}: {reason}{where}") from err

    # ---- content ----------------------------------------------------------------------------

    def chart_dir(self, digest: str) -> Path | None:
        """The unpacked chart of ``digest`` if it is cached."""
        unpacked = self.root / "sha256" / _hex(digest)
        with self._disk("read a cached chart"):
            if not unpacked.is_dir():
                return None
            children = [p for p in unpacked.iterdir() if p.is_dir()]
        return children[0] if len(children) == 1 else None

    def put(self, archive: bytes, digest: str, name: str, version: str) -> Path:
        """Verify ``archive`` against ``digest``, store and unpack it; the chart's directory.

        The archive must hold exactly one chart named ``name`` at ``version``.
        """
        hex_digest = _hex(digest)
        actual = sha256_digest(archive)
        if actual != digest:
            raise ChartError(
                f"digest mismatch: the source lists {digest}, the download is {actual}; refusing it"
            )
        base = self.root / "sha256"
        with self._disk("store the chart"):
            base.mkdir(parents=True, exist_ok=True)
            unpacked = base / hex_digest
            if not unpacked.is_dir():
                tmp = Path(tempfile.mkdtemp(prefix=f".{hex_digest[:12]}-", dir=base))
                try:
                    _unpack(archive, tmp, name, version)
                    _sync_tree(tmp)
                    try:
                        tmp.rename(unpacked)
                    except OSError:
                        if not unpacked.is_dir():  # not a concurrent writer of the same content
                            raise
                    _sync_dir(base)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
            tgz = base / f"{hex_digest}.tgz"  # kept to verify or re-unpack; renders do not read it
            if not tgz.is_file():
                _write_atomically(tgz, archive)
        found = self.chart_dir(digest)
        if found is None:
            raise ChartError(f"the cached copy at {unpacked} is damaged")
        return found

    # ---- what a source said -----------------------------------------------------------------

    def _refs_file(self, source: str, chart: str) -> Path:
        key = hashlib.sha256(f"{source}\0{chart}".encode()).hexdigest()
        return self.root / "refs" / f"{key}.json"

    def known_versions(self, source: str, chart: str) -> dict[str, str]:
        """Version -> digest of every version of this chart that was ever cached."""
        try:
            data = json.loads(self._refs_file(source, chart).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        versions = data.get("versions") if isinstance(data, dict) else None
        if not isinstance(versions, dict):
            return {}
        return {str(k): str(v) for k, v in versions.items()}

    def remember(self, source: str, chart: str, version: str, digest: str) -> None:
        """Record that ``version`` of this chart is ``digest`` (safe among threads and processes:
        the read, update and replace of the refs file happen under its lock)."""
        if self.known_versions(source, chart).get(version) == digest:
            return
        path = self._refs_file(source, chart)
        with self._disk("record the chart version"):
            path.parent.mkdir(parents=True, exist_ok=True)
            with _locked(path.with_suffix(".lock")):
                versions = self.known_versions(source, chart)
                if versions.get(version) == digest:
                    return
                versions[version] = digest
                body = {
                    "source": source,
                    "chart": chart,
                    "versions": dict(sorted(versions.items())),
                }
                _write_atomically(path, json.dumps(body, indent=1).encode())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock(2) on ``path``: between processes, and between threads (each holds
    its own open file)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (and ``root``), before it is renamed."""
    for directory, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _sync_dir(Path(directory))


def _remove_stale_temporaries(directory: Path) -> None:
    """Best effort: temporary ``.<name>-*`` entries older than STALE_TEMPORARY_SECONDS."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return  # not created yet, or not readable: nothing to clean (errors show on use)
    cutoff = time.time() - STALE_TEMPORARY_SECONDS
    for entry in entries:
        if not entry.name.startswith(".") or "-" not in entry.name:
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            continue


def _unpack(archive: bytes, dest: Path, name: str, version: str) -> None:
    """Unpack regular files and directories only, inside ``dest``, within the size budget."""
    what = "the download"
    budget = MAX_UNPACKED_BYTES

    def only_files(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        nonlocal budget
        if not (member.isfile() or member.isdir()):
            return None  # helm ignores links and devices in chart archives as well
        budget -= member.size
        if budget < 0:
            raise ChartError(f"{what}: unpacks to more than {MAX_UNPACKED_BYTES >> 20} MiB")
        return tarfile.data_filter(member, path)

    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(dest, filter=only_files)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ChartError(f"{what}: not a readable chart archive: {err}") from err
    tops = [p for p in dest.iterdir() if p.is_dir()]
    chart_yaml = tops[0] / "Chart.yaml" if len(tops) == 1 else None
    if chart_yaml is None or not chart_yaml.is_file():
        raise ChartError(f"{what}: the archive holds no chart (one directory with Chart.yaml)")
    try:
        meta = yaml.safe_load(chart_yaml.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ChartError(f"{what}: Chart.yaml does not parse") from err
    if not isinstance(meta, dict):
        raise ChartError(f"{what}: Chart.yaml is not a mapping")
    got = (str(meta.get("name")), str(meta.get("version")))
    if got[0] != name or not _same_version(got[1], version):
        raise ChartError(f"the archive holds chart {got[0]} {got[1]}, not {name} {version}")


def _same_version(written: str, expected: str) -> bool:
    """The same text, or the same version spelled otherwise (``v1.0.0`` is ``1.0.0``)."""
    if written == expected:
        return True
    ours, theirs = parse_version(written), parse_version(expected)
    if ours is None or theirs is None:
        return False
    return ours.compare(theirs) == 0 and ours.build == theirs.build
