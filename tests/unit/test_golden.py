"""Golden renders of sample-repo, one file per cluster. Regenerate: UPDATE_GOLDEN=1 pytest ..."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import SAMPLE_REPO

from reconciler.cli.render import render_yaml
from reconciler.config.load import load_repo
from reconciler.render import render_all
from reconciler.toolchain import Toolchain

GOLDEN = Path(__file__).parent / "golden" / "sample-repo"
CLUSTERS = ["beijing-1", "beijing-2", "us-west-1"]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_sample_repo_renders_exactly_as_the_golden_file(cluster: str, tools: Toolchain) -> None:
    repo = load_repo(SAMPLE_REPO)
    results = render_all(repo, clusters=[cluster], tools=tools)
    assert [str(r.error) for r in results if r.error] == []
    assert [r.app for r in results] == ["guestbook", "hello-world", "redis"]
    text = render_yaml(results)
    golden = GOLDEN / f"{cluster}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.is_file(), f"{golden} missing: run with UPDATE_GOLDEN=1 to create it"
    assert text == golden.read_text(), (
        f"render changed; if intended, rerun with UPDATE_GOLDEN=1 and review {golden}"
    )


def test_golden_files_hold_no_unrendered_templates() -> None:
    for cluster in CLUSTERS:
        assert "${" not in (GOLDEN / f"{cluster}.yaml").read_text()


def test_golden_us_west_1_has_five_hello_world_replicas_and_its_own_host() -> None:
    text = (GOLDEN / "us-west-1.yaml").read_text()
    hello = text.split("# app: hello-world, cluster: us-west-1\n")[1].split("# app: ")[0]
    assert "  replicas: 5\n" in hello
    assert "host: hello.usw1.example.com" in hello
