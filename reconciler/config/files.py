"""The config repo's files: layout, containment (nothing read may leave the repo), reading.

``RepoFiles`` collects every problem it meets as a located ``Problem`` instead of raising, so
one load reports them all.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.config.messages import os_error, size_text
from reconciler.errors import Problem
from reconciler.yamlsrc import Document, YamlError, format_path, load_documents
from reconciler.yamlsrc import Path as NodePath

MANIFEST_SUFFIXES = (".yaml", ".yml")  # cluster and group files
OBJECT_SUFFIXES = (".yaml", ".yml", ".json")  # manifest files (as kubectl apply -f reads them)
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
APP_FILES = ("app.yaml", "app.yml")
SETTINGS_FILES = ("reconciler.yaml", "reconciler.yml")
MAX_FILE_BYTES = 10 * 1024 * 1024  # a YAML file we parse; more is a mistake or an attack
LEAVES_REPO = "symlink leaves the config repo"


class RepoFiles:
    """Reads the files of the repo at ``root``; what can not be used lands in ``problems``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.problems: list[Problem] = []
        # (kind, name) of documents too broken to load: references to them are not reported.
        self.unloaded: set[tuple[str, str]] = set()

    def problem(self, file: str, line: int | None, path: NodePath | str, message: str) -> None:
        where = path if isinstance(path, str) else format_path(path)
        self.problems.append(Problem(file, line, where, message))

    def rel(self, path: Path | str) -> str:
        """``path`` relative to the repo root (as named, or as resolved), for messages."""
        for base in (self.root, Path(self.real_root)):
            try:
                return Path(path).relative_to(base).as_posix()
            except ValueError:
                continue
        return str(path)

    def inside(self, real: str) -> bool:
        """Whether a resolved path is in the repo."""
        return real == self.real_root or real.startswith(self.real_root.rstrip(os.sep) + os.sep)

    def contained(self, path: Path) -> bool:
        """Whether ``path`` resolves inside the repo; reports it (as a symlink) when not."""
        try:
            real = os.path.realpath(path)
        except (OSError, ValueError) as err:
            self.problem(self.rel(path), None, "", f"cannot read: {os_error(err)}")
            return False
        if not self.inside(real):
            self.problem(self.rel(path), None, "", LEAVES_REPO)
            return False
        return True

    def read(self, path: Path) -> str | None:
        """The UTF-8 text of a repo file, or None after reporting why it can not be used."""
        rel = self.rel(path)
        if not self.contained(path):
            return None
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                self.problem(rel, None, "", f"file is larger than {size_text(MAX_FILE_BYTES)}")
                return None
            data = path.read_bytes()
        except OSError as err:
            self.problem(rel, None, "", f"cannot read: {os_error(err)}")
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data[: err.start].count(b"\n") + 1
            byte = data[err.start : err.start + 1].hex()
            self.problem(
                rel, line, "", f"not UTF-8: byte 0x{byte} can not be read; save the file as UTF-8"
            )
            return None

    def documents(self, path: Path, kind: str | None = None) -> list[Document]:
        """The YAML documents of ``path`` (problems reported); ``kind``: one is required."""
        before = len(self.problems)
        rel = self.rel(path)
        text = self.read(path)
        if text is None:
            return []
        try:
            docs = load_documents(text)
        except YamlError as err:
            for issue in err.issues:
                self.problem(rel, issue.line, "", issue.message)
            docs = err.documents
        if kind is not None and not docs and len(self.problems) == before:
            # An emptied file must not quietly remove what it defined (and prune it).
            self.problem(rel, None, "", f"no {kind} document")
        return docs

    def tree(self, top: Path, *, hidden: bool = True) -> list[tuple[str, Path]]:
        """Every file under directory ``top``: (path below ``top``, path), sorted, each once.

        Symlinks are followed while they stay in the repo; one that leaves it is reported and
        skipped. A file or directory reached twice is taken once, preferably by its own name
        rather than through a symlink. ``hidden=False`` skips dot files and directories.
        """
        found: list[tuple[bool, str, Path, str]] = []  # (via a symlink, below top, path, real)
        walked: set[str] = set()
        direct = [(top, os.path.realpath(top), "")]
        linked: list[tuple[Path, str, str]] = []
        while direct or linked:
            via_link = not direct
            folder, real_folder, below = direct.pop() if direct else linked.pop(0)
            if real_folder in walked:
                continue
            walked.add(real_folder)
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as err:
                self.problem(self.rel(folder), None, "", f"cannot read: {os_error(err)}")
                continue
            for entry in entries:
                if not hidden and entry.name.startswith("."):
                    continue
                path = folder / entry.name
                sub = f"{below}/{entry.name}" if below else entry.name
                try:
                    link = entry.is_symlink()
                    real = os.path.realpath(path) if link else os.path.join(real_folder, entry.name)
                    if link and not self.inside(real):
                        self.problem(self.rel(path), None, "", LEAVES_REPO)
                    elif entry.is_dir():
                        (linked if link or via_link else direct).append((path, real, sub))
                    elif entry.is_file():
                        found.append((link or via_link, sub, path, real))
                except (OSError, ValueError) as err:
                    self.problem(self.rel(path), None, "", f"cannot read: {os_error(err)}")
        seen: set[str] = set()
        out: list[tuple[str, Path]] = []
        for _, sub, path, real in sorted(found, key=lambda f: (f[0], f[1])):
            if real not in seen:
                seen.add(real)
                out.append((sub, path))
        return sorted(out, key=lambda f: f[0])

    def kind_files(self, subdir: str) -> list[Path]:
        base = self.root / subdir
        if not base.is_dir() or not self.contained(base):
            return []
        try:
            names = sorted(p for p in base.iterdir() if p.suffix in MANIFEST_SUFFIXES)
        except OSError as err:
            self.problem(subdir, None, "", f"cannot read: {os_error(err)}")
            return []
        return [p for p in names if self.contained(p) and p.is_file()]

    def unread_entries(self, subdir: str, *, folders: bool, suffixes: tuple[str, ...]) -> None:
        """Report what in ``subdir`` looks like config but is not read: its sub-folders
        (``folders``) or its files ending in ``suffixes`` (dot names are skipped)."""
        base = self.root / subdir
        if not base.is_dir():
            return
        try:
            entries = sorted(base.iterdir())
        except OSError:
            return  # kind_files reports it
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if folders and entry.is_dir():
                self.problem(
                    self.rel(entry),
                    None,
                    "",
                    f"a folder in {subdir}/ is not read: put its files directly in {subdir}/",
                )
            elif not folders and entry.is_file() and entry.suffix in suffixes:
                self.problem(
                    self.rel(entry),
                    None,
                    "",
                    f"a file in {subdir}/ is not read: each app is a folder {subdir}/<name>/ "
                    "holding app.yaml",
                )

    def only_one(self, folder: Path, names: tuple[str, ...]) -> Path | None:
        """The one of ``names`` present in ``folder``; two present is a problem (the second
        would be silently ignored), reported on the one not read."""
        present = [folder / n for n in names if (folder / n).is_file()]
        for extra in present[1:]:
            self.problem(
                self.rel(extra),
                None,
                "",
                f"both {present[0].name} and {extra.name}: {extra.name} is not read; keep one",
            )
        return present[0] if present else None
