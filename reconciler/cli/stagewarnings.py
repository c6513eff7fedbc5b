"""Rollout plan warnings for ``validate`` (a stage matching no placed cluster, or only clusters
an earlier stage took), located at the stage in app.yaml or reconciler.yaml."""

from __future__ import annotations

import re

from reconciler.config.model import App, Repo
from reconciler.config.schema import CANARY
from reconciler.rollout.strategy import plan_for, strategy_of
from reconciler.yamlsrc import Document, YamlError, load_documents

_STAGE = re.compile(r"^stage (\S+?):? ")  # how rollout.stages words a stage's warning


def rollout_warnings(repo: Repo, app: App) -> list[str]:
    """The warnings of the app's rollout plan, each as ``file:line: app A: rollout ...``."""
    plan = plan_for(repo, app)
    spec = strategy_of(repo, app)
    if plan is None or spec is None or not plan.warnings:
        return []
    own = app.rollout is not None
    file = app.file if own else (repo.settings.file or "reconciler.yaml")
    doc = _document(repo, file, app.line if own else None)
    names = [s.name for s in spec.stages]
    out = []
    for warning in plan.warnings:
        match = _STAGE.match(warning)
        stage = match.group(1) if match else None
        path: tuple[str | int, ...] = ("spec", "rollout")
        if stage == CANARY and spec.canary is not None:
            path += ("canary",)
        elif stage in names:
            path += ("stages", names.index(stage))
        line = doc.line_of(path) if doc is not None else (app.line if own else 1)
        origin = "" if own else " (the repo-wide strategy)"
        out.append(f"{file}:{line}: app {app.name}: rollout{origin}: {warning}")
    return out


def _document(repo: Repo, file: str, line: int | None) -> Document | None:
    """The document of ``file`` starting at ``line`` (the first one when None)."""
    try:
        docs = load_documents((repo.root / file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YamlError):
        return None
    return next((d for d in docs if line is None or d.line == line), docs[0] if docs else None)
