"""Load and validate a config repo (DESIGN.md §3) into a frozen ``Repo``.

Validation runs in two passes per document: pydantic checks shape and types (unknown fields are
errors), then semantic checks (names, references, selectors, files, manifests, templates). Every
problem is collected with file:line and field path; ``load_repo`` raises one ``ConfigError``.

``load_partial`` loads as far as it goes instead: each problem belongs to the unit whose files
it is in (an app's folder and everything its app.yaml reaches, one cluster or group file), and a
unit with a problem is left out of the repo and listed as ``Broken``; problems no unit owns (the
repo itself, ``reconciler.yaml``, no clusters or no apps) are repo-wide. The daemon moves every
unit that loaded and holds only what the broken ones affect.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

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
from reconciler.config.files import APP_FILES, OBJECT_SUFFIXES, SETTINGS_FILES, RepoFiles
from reconciler.config.model import (
    App,
    Broken,
    Cluster,
    ClusterGroup,
    PartialRepo,
    Repo,
    RepoSettings,
)
from reconciler.config.schema import ClusterDoc, GroupDoc, SettingsDoc
from reconciler.errors import ConfigError, Problem
from reconciler.yamlsrc import Document

_T = TypeVar("_T")
_D = TypeVar("_D", ClusterDoc, GroupDoc)
_U = TypeVar("_U", Cluster, ClusterGroup)
ALLOW_EMPTY_HINT = "set spec.allowEmpty: true in reconciler.yaml if that is meant"


def load_repo(root: Path) -> Repo:
    """Load and validate the config repo at ``root``; raise ConfigError with every problem."""
    partial = load_partial(root)
    if partial.broken or partial.repo_problems:
        raise ConfigError(partial.problems)
    return partial.repo


def load_partial(root: Path) -> PartialRepo:
    """Load what loads of the config repo at ``root``; see the module docstring."""
    return _Loader(Path(root)).load()


def _declared_name(doc: Document) -> str | None:
    """``metadata.name`` of a document, if it can be read at all."""
    meta = doc.value.get("metadata") if isinstance(doc.value, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = RepoFiles(root)
        self.broken: list[Broken] = []
        self.repo_problems: list[Problem] = []
        self._settings_doc: Document | None = None

    def load(self) -> PartialRepo:
        if not self.root.is_dir():
            problem = Problem(str(self.root), None, "", "config repo is not a directory")
            return PartialRepo(Repo(self.root, {}, {}, {}), repo_problems=(problem,))
        settings = self._repo_wide(self._load_settings)
        clusters = self._load_clusters()
        groups = self._load_groups()
        self._repo_wide(lambda: self._check_default_rollout(settings, clusters, groups))
        apps = self._load_apps(clusters, groups)
        self._repo_wide(lambda: self._emptiness(settings))
        # Everything took part in the checks (duplicates, references, "did you mean"), so the
        # problems are those of a whole load; what a broken unit defines is left out now.
        left_out = {(b.kind, name) for b in self.broken for name in b.names}
        group_problem = {
            name: b.problems[0] for b in self.broken if b.kind == "ClusterGroup" for name in b.names
        }
        dependents: list[tuple[str, Problem]] = []
        for app in apps.values():
            named = [*app.placement.groups]
            named += [g for o in app.overrides if o.target is not None for g in o.target.groups]
            broken_group = next((g for g in named if g in group_problem), None)
            if broken_group is not None and ("App", app.name) not in left_out:
                dependents.append((app.name, group_problem[broken_group]))
                left_out.add(("App", app.name))
        return PartialRepo(
            Repo(
                root=self.root,
                clusters={
                    k: v for k, v in sorted(clusters.items()) if ("Cluster", k) not in left_out
                },
                groups={
                    k: v for k, v in sorted(groups.items()) if ("ClusterGroup", k) not in left_out
                },
                apps={k: v for k, v in sorted(apps.items()) if ("App", k) not in left_out},
                settings=settings,
            ),
            broken=tuple(self.broken),
            repo_problems=tuple(dict.fromkeys(self.repo_problems)),
            dependents=tuple(dependents),
        )

    def _repo_wide(self, step: Callable[[], _T]) -> _T:
        """Run ``step``; the problems it reports belong to no unit."""
        before = len(self.files.problems)
        result = step()
        self.repo_problems += self.files.problems[before:]
        return result

    def _unit(self, kind: str, file: str, names: set[str], before: int) -> bool:
        """Problems since ``before`` belong to the unit in ``file``; True when it has any."""
        problems = self.files.problems[before:]
        if not problems:
            return False
        unique = tuple(dict.fromkeys(problems))
        self.broken.append(Broken(kind, file, tuple(sorted(names)), unique))
        return True

    def _load_settings(self) -> RepoSettings:
        files = self.files
        path = files.only_one(self.root, SETTINGS_FILES)
        if path is None:
            return RepoSettings()
        file = files.rel(path)
        docs = files.documents(path, "Settings")
        if len(docs) > 1:
            files.problem(file, docs[1].line, "", f"{file} must hold exactly one Settings")
        parsed = validate(files, SettingsDoc, docs[0], file, "Settings") if docs else None
        if parsed is None:
            return RepoSettings(file=file)
        self._settings_doc = docs[0]
        guard = parsed.spec.prune_guard
        return RepoSettings(
            allow_empty=parsed.spec.allow_empty,
            max_prune_objects=guard.max_objects,
            max_prune_percent=guard.max_percent,
            file=file,
            rollout=parsed.spec.rollout,
        )

    def _check_default_rollout(
        self, settings: RepoSettings, clusters: dict[str, Cluster], groups: dict[str, ClusterGroup]
    ) -> None:
        """The repo-wide strategy's stages name known clusters and groups (as an app's do)."""
        doc = self._settings_doc
        if settings.rollout is None or doc is None or settings.file is None:
            return
        checker = AppLoader(self.files, settings.file, doc, self.root, clusters, groups, {})
        checker.check_rollout(settings.rollout)

    def _emptiness(self, settings: RepoSettings) -> None:
        """No cluster files or no app folders would remove every app: an error unless meant."""
        if settings.allow_empty:
            return
        apps = self.root / "apps"
        if not self.files.kind_files("clusters"):
            self.files.problem(
                "clusters",
                None,
                "",
                f"no clusters: every app would leave every cluster; {ALLOW_EMPTY_HINT}",
            )
        if not (apps.is_dir() and any(p.is_dir() for p in apps.iterdir())):
            self.files.problem(
                "apps", None, "", f"no apps: every app would be pruned; {ALLOW_EMPTY_HINT}"
            )

    def _load_clusters(self) -> dict[str, Cluster]:
        def check(file: str, doc: Document, parsed: ClusterDoc) -> None:
            labels_problems(self.files, file, doc, ("metadata", "labels"), parsed.metadata.labels)
            name_problem(self.files, file, doc, parsed.metadata.name, CLUSTER_NAME)
            if parsed.spec.context is not None and not parsed.spec.context.strip():
                self.files.problem(
                    file,
                    doc.line_of(("spec", "context")),
                    "spec.context",
                    "empty context: leave spec.context out to use the cluster's name",
                )

        def build(parsed: ClusterDoc, file: str, line: int) -> Cluster:
            spec = parsed.spec
            return Cluster(
                name=parsed.metadata.name,
                labels=dict(parsed.metadata.labels),
                context=spec.context or parsed.metadata.name,
                vars=dict(spec.vars),
                paused=spec.paused,
                file=file,
                line=line,
                kube_version=spec.kube_version,
            )

        return self._load_files("clusters", "Cluster", ClusterDoc, check, build)

    def _load_groups(self) -> dict[str, ClusterGroup]:
        def check(file: str, doc: Document, parsed: GroupDoc) -> None:
            selector_problems(self.files, file, doc, ("spec", "selector"), parsed.spec.selector)
            name_problem(self.files, file, doc, parsed.metadata.name, DNS_LABEL)

        def build(parsed: GroupDoc, file: str, line: int) -> ClusterGroup:
            return ClusterGroup(parsed.metadata.name, parsed.spec.selector, file, line)

        return self._load_files("groups", "ClusterGroup", GroupDoc, check, build)

    def _load_files(
        self,
        folder: str,
        kind: str,
        model: type[_D],
        check: Callable[[str, Document, _D], None],
        build: Callable[[_D, str, int], _U],
    ) -> dict[str, _U]:
        """Every ``kind`` document of the files in ``folder`` (clusters/, groups/): schema,
        ``check``, duplicates, then ``build``; each file is one unit of a partial load."""
        files = self.files
        units: dict[str, _U] = {}
        noun = {"Cluster": "cluster", "ClusterGroup": "group"}[kind]
        self._repo_wide(lambda: files.unread_entries(folder, folders=True, suffixes=()))
        for path in self._repo_wide(lambda: files.kind_files(folder)):
            file = files.rel(path)
            before = len(files.problems)
            names: set[str] = set()
            docs = files.documents(path, kind)
            for doc in docs:
                declared = _declared_name(doc)
                if declared is not None:
                    names.add(declared)
                parsed = validate(files, model, doc, file, kind)
                if parsed is None:
                    continue
                name = parsed.metadata.name
                line = doc.line_of(("metadata", "name"))
                check(file, doc, parsed)
                names.add(name)
                if duplicate(files, noun, name, units, file, line):
                    continue
                if len(docs) == 1 and path.stem != name and len(files.problems) == before:
                    # The documented layout is clusters/<name>.yaml, groups/<name>.yaml (said
                    # when nothing else is wrong with the file: a wrong kind says more).
                    files.problem(
                        file,
                        line,
                        "metadata.name",
                        f"{noun} {name!r} is in {path.name}: name the file {name}{path.suffix}",
                    )
                units[name] = build(parsed, file, line)
            self._unit(kind, file, names, before)
        return units

    def _load_apps(
        self, clusters: dict[str, Cluster], groups: dict[str, ClusterGroup]
    ) -> dict[str, App]:
        files = self.files
        apps: dict[str, App] = {}
        base = self.root / "apps"
        if not base.is_dir() or not self._repo_wide(lambda: files.contained(base)):
            return apps
        # Label or var keys defined by at least one cluster (template typo check).
        known = {
            scope: frozenset(k for c in clusters.values() for k in getattr(c, scope))
            for scope in ("labels", "vars")
        }
        self._repo_wide(
            lambda: files.unread_entries("apps", folders=False, suffixes=OBJECT_SUFFIXES)
        )
        for app_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            before = len(files.problems)
            names: set[str] = set()
            app = self._load_app(app_dir, clusters, groups, known, apps, names)
            self._unit("App", files.rel(app_dir), names, before)
            if app is not None:
                apps[app.name] = app
        return apps

    def _load_app(
        self,
        app_dir: Path,
        clusters: dict[str, Cluster],
        groups: dict[str, ClusterGroup],
        known: dict[str, frozenset[str]],
        apps: dict[str, App],
        names: set[str],
    ) -> App | None:
        """One app folder; the names it declares are added to ``names``."""
        files = self.files
        if not files.contained(app_dir):
            return None
        path = files.only_one(app_dir, APP_FILES)
        if path is None:
            files.problem(files.rel(app_dir), None, "", "app directory has no app.yaml")
            return None
        docs = files.documents(path, "App")
        file = files.rel(path)
        if len(docs) > 1:
            files.problem(file, docs[1].line, "", "app.yaml must hold exactly one App")
        if not docs:
            return None
        declared = _declared_name(docs[0])
        if declared is not None:
            names.add(declared)
        app = AppLoader(files, file, docs[0], app_dir, clusters, groups, known).load()
        if app is None:
            return None
        names.add(app.name)
        if duplicate(files, "app", app.name, apps, file, app.line):
            return None
        if app.name != app_dir.name:
            # The documented layout is apps/<app>/app.yaml.
            files.problem(
                file,
                app.line,
                "metadata.name",
                f"app {app.name!r} is in folder {app_dir.name}/: name the folder {app.name}/",
            )
        return app
