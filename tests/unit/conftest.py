"""Shared fixtures: the desired-state stage tests (config, placement, render) and the daemon's
rig (``store``, ``rig``; test modules may define their own ``store``)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.store.db import Store
from reconciler.toolchain import Toolchain
from tests.unit.daemon_rig import Rig, make_rig

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_REPO = ROOT / "sample-repo"
FIXTURES = ROOT / "tests" / "fixtures"

RepoFactory = Callable[[dict[str, str]], Path]


@pytest.fixture
def make_repo(tmp_path: Path) -> RepoFactory:
    """Write ``{relative path: YAML text}`` (dedented) into a fresh config repo."""

    def make(files: dict[str, str]) -> Path:
        root = tmp_path / "repo"
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"))
        root.mkdir(exist_ok=True)
        return root

    return make


@pytest.fixture(scope="session")
def tools() -> Toolchain:
    """The real helm and kustomize; a missing binary fails the test with how to get it."""
    toolchain = Toolchain.default()
    for name, path in (("helm", toolchain.helm), ("kustomize", toolchain.kustomize)):
        if not Path(path).is_file():
            pytest.fail(
                f"{name} binary not found at {path!r}: run `reconciler dev provision` "
                f"or set RECONCILER_{name.upper()} to its path"
            )
    return toolchain


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "state") as opened:
        yield opened


@pytest.fixture
def rig(tmp_path: Path, store: Store) -> Rig:
    return make_rig(tmp_path, store)
