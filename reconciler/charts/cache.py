"""The content-addressed chart cache on disk.

::

    <root>/sha256/<hex>.tgz        a chart archive whose sha256 is <hex> (checked before writing)
    <root>/sha256/<hex>/<chart>/   the same archive unpacked: what ``helm template`` renders
    <root>/refs/<key>.json         source + chart name -> {version: digest}, as last resolved

An archive is stored only after its digest matched, and everything lands by an atomic rename,
so a reader never sees half a chart and two processes sharing the directory never clash (the
second rename of the same content loses harmlessly). One chart version is downloaded once and
shared by every cluster, app and revision; renders read the unpacked directory.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import yaml

from reconciler.errors import ChartError

MAX_UNPACKED_BYTES = 200 * 1024 * 1024  # helm's own limit for a chart is 100 MiB


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

    # ---- content ----------------------------------------------------------------------------

    def chart_dir(self, digest: str) -> Path | None:
        """The unpacked chart of ``digest`` if it is cached."""
        unpacked = self.root / "sha256" / _hex(digest)
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
        base.mkdir(parents=True, exist_ok=True)
        unpacked = base / hex_digest
        if not unpacked.is_dir():
            tmp = Path(tempfile.mkdtemp(prefix=f".{hex_digest[:12]}-", dir=base))
            try:
                _unpack(archive, tmp, name, version)
                try:
                    tmp.rename(unpacked)
                except OSError:
                    if not unpacked.is_dir():  # not a concurrent writer of the same content
                        raise
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
        versions = self.known_versions(source, chart)
        if versions.get(version) == digest:
            return
        versions[version] = digest
        path = self._refs_file(source, chart)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"source": source, "chart": chart, "versions": dict(sorted(versions.items()))}
        _write_atomically(path, json.dumps(body, indent=1).encode())


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    if got != (name, version):
        raise ChartError(f"the archive holds chart {got[0]} {got[1]}, not {name} {version}")
