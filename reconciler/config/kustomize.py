"""The offline kustomize scan: what an app's build reaches must be local and inside the repo."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from reconciler.config.files import KUSTOMIZATION_FILES, RepoFiles
from reconciler.config.messages import os_error
from reconciler.yamlsrc import Document, format_path
from reconciler.yamlsrc import Path as NodePath


class KustomizeScan:
    """Check every kustomization an app's build reaches, before kustomize ever runs.

    kustomize fetches remote bases (git, HTTP) and follows local paths wherever they point.
    Rendering must stay offline and inside the repo, so every path-valued field of every
    kustomization reached through resources/bases/components must be local, and every local
    path, and every file under a reached directory, must resolve inside the repo.
    """

    # Entries that may name another kustomization directory (followed) or a file.
    DIRS = ("resources", "bases", "components", "generators", "transformers", "validators")
    # Entries that name files (or hold inline YAML, which is skipped).
    FILES = ("crds", "configurations", "patchesStrategicMerge")
    # Lists of mappings whose ``path`` names a file.
    PATHS = ("patches", "patchesJson6902", "replacements")
    GENERATORS = ("configMapGenerator", "secretGenerator")

    def __init__(self, loader: RepoFiles) -> None:
        self.loader = loader
        self.scanned: set[str] = set()

    def scan(self, top: Path) -> None:
        pending = [top]
        while pending:
            folder = pending.pop()
            real = os.path.realpath(folder)
            if real in self.scanned:
                continue
            self.scanned.add(real)
            self.loader.tree(folder)
            for name in KUSTOMIZATION_FILES:
                if (folder / name).is_file():
                    pending.extend(self._file(folder, folder / name))

    def _file(self, folder: Path, path: Path) -> list[Path]:
        file = self.loader.rel(path)
        docs = self.loader.documents(path)
        value = docs[0].value if docs else None
        if not isinstance(value, dict):
            return []  # kustomize says what is wrong with it
        doc = docs[0]
        follow: list[Path] = []
        refs: list[tuple[NodePath, Any, bool]] = []
        for key in self.DIRS + self.FILES:
            for i, entry in enumerate(_as_list(value.get(key))):
                refs.append(((key, i), entry, key in self.DIRS))
        for key in self.PATHS:
            for i, item in enumerate(_as_list(value.get(key))):
                if isinstance(item, dict):
                    refs.append(((key, i, "path"), item.get("path"), False))
        for key in self.GENERATORS:
            for i, gen in enumerate(_as_list(value.get(key))):
                if not isinstance(gen, dict):
                    continue
                for j, entry in enumerate(_as_list(gen.get("files"))):
                    if isinstance(entry, str):  # "path" or "key=path"
                        entry = entry.partition("=")[2] or entry
                    refs.append(((key, i, "files", j), entry, False))
                for j, entry in enumerate(_as_list(gen.get("envs"))):
                    refs.append(((key, i, "envs", j), entry, False))
                refs.append(((key, i, "env"), gen.get("env"), False))
        openapi = value.get("openapi")
        if isinstance(openapi, dict):
            refs.append((("openapi", "path"), openapi.get("path"), False))
        for at, entry, may_be_dir in refs:
            if not isinstance(entry, str) or not entry or "\n" in entry:
                continue  # absent, or inline YAML
            target = self._local(file, doc, at, folder, entry)
            if target is not None and may_be_dir and target.is_dir():
                follow.append(target)
        return follow

    def _local(
        self, file: str, doc: Document, at: NodePath, folder: Path, entry: str
    ) -> Path | None:
        where = format_path(at)
        line = doc.line_of(at)
        if _REMOTE.match(entry):
            self.loader.problem(file, line, where, f"remote {entry!r} is not allowed: {OFFLINE}")
            return None
        try:
            real = os.path.realpath(folder / entry)
            exists = os.path.exists(real)
        except (OSError, ValueError) as err:
            self.loader.problem(file, line, where, f"unusable path {entry!r}: {os_error(err)}")
            return None
        if not self.loader.inside(real):
            self.loader.problem(file, line, where, f"path {entry!r} leaves the config repo")
            return None
        if not exists and _HOSTED.match(entry):
            self.loader.problem(file, line, where, f"remote {entry!r} is not allowed: {OFFLINE}")
            return None
        if not exists and not _INLINE.match(entry):
            # kustomize would say so too, but once per cluster and without the line.
            self.loader.problem(file, line, where, f"{entry!r} not found")
        return Path(real) if exists else None


OFFLINE = "rendering never uses the network; vendor it into the repo"
# URLs (https://, ssh://, git::...), scp-like git addresses (git@host:org/repo).
_REMOTE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*::|[a-zA-Z][a-zA-Z0-9+.-]*://|[\w.-]+@[\w.-]+:)")
# What kustomize takes for a git host when no such local path exists (github.com/org/repo).
_HOSTED = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+(:[0-9]+)?/|.*(\?|&)(ref|version|timeout)=|.*//")

# A one-line inline patch (patchesStrategicMerge takes YAML as well as file names).
_INLINE = re.compile(r"^\s*[{\[]|.*: ")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# ---- messages ------------------------------------------------------------------------------
