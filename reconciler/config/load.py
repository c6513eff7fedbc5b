"""Load and validate a config repo (DESIGN.md §3) into a frozen ``Repo``.

Validation runs in two passes per document: pydantic checks shape and types (unknown fields are
errors), then semantic checks (names, references, selectors, files, manifests, templates). Every
problem is collected with file:line and field path; ``load_repo`` raises one ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from reconciler.config.apps import AppLoader
from reconciler.config.checks import (
    CLUSTER_NAME,
    DNS_LABEL,
    duplicate,
    labels_problems,
    name_problem,
    selector_problems,
    validate,
)
from reconciler.config.files import APP_FILES, RepoFiles
from reconciler.config.model import App, Cluster, ClusterGroup, Repo
from reconciler.config.schema import ClusterDoc, GroupDoc
from reconciler.config.schema import Doc as _Doc
from reconciler.errors import ConfigError, Problem
from reconciler.yamlsrc import Document


def load_repo(root: Path) -> Repo:
    """Load and validate the config repo at ``root``; raise ConfigError with every problem."""
    return _Loader(Path(root)).load()


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = RepoFiles(root)

    def load(self) -> Repo:
        if not self.root.is_dir():
            raise ConfigError([Problem(str(self.root), None, "", "config repo is not a directory")])
        clusters = self._load_clusters()
        groups = self._load_groups()
        apps = self._load_apps(clusters, groups)
        if self.files.problems:
            raise ConfigError(list(dict.fromkeys(self.files.problems)))
        return Repo(
            root=self.root,
            clusters=dict(sorted(clusters.items())),
            groups=dict(sorted(groups.items())),
            apps=dict(sorted(apps.items())),
        )

    def _documents(
        self, subdir: str, kind: str, model: type[_Doc]
    ) -> Iterator[tuple[str, Document, _Doc, int]]:
        """Each schema-valid ``kind`` document under ``subdir``: its file, the document, the
        parsed model and the line of its name."""
        files = self.files
        for path in files.kind_files(subdir):
            file = files.rel(path)
            for doc in files.documents(path, kind):
                parsed = validate(files, model, doc, file, kind)
                if parsed is not None:
                    yield file, doc, parsed, doc.line_of(("metadata", "name"))

    def _load_clusters(self) -> dict[str, Cluster]:
        files = self.files
        clusters: dict[str, Cluster] = {}
        for file, doc, parsed, line in self._documents("clusters", "Cluster", ClusterDoc):
            assert isinstance(parsed, ClusterDoc)
            name = parsed.metadata.name
            labels_problems(files, file, doc, ("metadata", "labels"), parsed.metadata.labels)
            name_problem(files, file, doc, name, CLUSTER_NAME)
            if duplicate(files, "cluster", name, clusters, file, line):
                continue
            spec = parsed.spec
            clusters[name] = Cluster(
                name=name,
                labels=dict(parsed.metadata.labels),
                context=spec.context or name,
                vars=dict(spec.vars),
                paused=spec.paused,
                file=file,
                line=line,
            )
        return clusters

    def _load_groups(self) -> dict[str, ClusterGroup]:
        files = self.files
        groups: dict[str, ClusterGroup] = {}
        for file, doc, parsed, line in self._documents("groups", "ClusterGroup", GroupDoc):
            assert isinstance(parsed, GroupDoc)
            name = parsed.metadata.name
            selector_problems(files, file, doc, ("spec", "selector"), parsed.spec.selector)
            name_problem(files, file, doc, name, DNS_LABEL)
            if duplicate(files, "group", name, groups, file, line):
                continue
            groups[name] = ClusterGroup(name, parsed.spec.selector, file, line)
        return groups

    def _load_apps(
        self, clusters: dict[str, Cluster], groups: dict[str, ClusterGroup]
    ) -> dict[str, App]:
        files = self.files
        apps: dict[str, App] = {}
        base = self.root / "apps"
        if not base.is_dir() or not files.contained(base):
            return apps
        # Label or var keys defined by at least one cluster (template typo check).
        known = {
            scope: frozenset(k for c in clusters.values() for k in getattr(c, scope))
            for scope in ("labels", "vars")
        }
        for app_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            if not files.contained(app_dir):
                continue
            path = next((app_dir / n for n in APP_FILES if (app_dir / n).is_file()), None)
            if path is None:
                files.problem(files.rel(app_dir), None, "", "app directory has no app.yaml")
                continue
            docs = files.documents(path, "App")
            file = files.rel(path)
            if len(docs) > 1:
                files.problem(file, docs[1].line, "", "app.yaml must hold exactly one App")
            if not docs:
                continue
            app = AppLoader(files, file, docs[0], app_dir, clusters, groups, known).load()
            if app is None:
                continue
            if duplicate(files, "app", app.name, apps, file, app.line):
                continue
            apps[app.name] = app
        return apps
