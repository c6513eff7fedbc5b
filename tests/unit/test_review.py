"""`reconciler plan`: base vs head from real git commits, offline, in every output format."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import reconciler.review.plan as review_module
from reconciler.cli.main import cli
from reconciler.errors import RenderError
from reconciler.review.json import to_json
from reconciler.review.markdown import to_markdown
from reconciler.review.model import (
    AppReview,
    AppStatus,
    ClusterReview,
    ClusterStatus,
    LiveTarget,
    ObjectAction,
    Review,
    Revision,
)
from reconciler.review.plan import _strip_root, plan
from reconciler.review.text import to_text
from reconciler.source import export_rev
from tests.configrepo import configmap, deployment, secret, write_app, write_clusters

BASE_SECRET = "base-password-0xA1"
HEAD_SECRET = "head-password-0xB2"
BASE_LABELS = {
    "beijing-1": {"region": "cn-beijing"},
    "beijing-2": {"region": "cn-beijing", "provider": "AWS"},
    "us-west-1": {"region": "us-west", "provider": "AWS"},
}
# us-west-1 moves into the selector of app web (a placement change by a Cluster label edit).
HEAD_LABELS = {**BASE_LABELS, "us-west-1": {"region": "cn-beijing", "provider": "AWS"}}


@pytest.fixture(autouse=True)
def isolated_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the user's git config out; give commits a fixed identity and date."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name, value in {
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
        "GIT_AUTHOR_DATE": "2026-11-22T14:03:41+02:00",
        "GIT_COMMITTER_DATE": "2026-11-22T14:03:41+02:00",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def new_repo(tmp_path: Path, clusters: dict[str, dict[str, str]] | None = BASE_LABELS) -> Path:
    """An empty Git work tree ``config`` on branch main, with the base clusters (``None``:
    without)."""
    root = tmp_path / "config"
    root.mkdir()
    git(root, "init", "--quiet", "--initial-branch=main")
    if clusters is not None:
        write_clusters(root, clusters)
    return root


def commit(root: Path, message: str) -> str:
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD")


def web_app(root: Path, image: str, aws_replicas: int) -> None:
    write_app(
        root,
        "web",
        [deployment("web", replicas=2, image=image)],
        namespace="web",
        placement={"selector": {"matchLabels": {"region": "cn-beijing"}}},
        overrides=[
            {
                "name": "bigger-on-aws",
                "target": {"selector": {"matchLabels": {"provider": "AWS"}}},
                "replicas": aws_replicas,
            }
        ],
    )


def creds_app(root: Path, password: str) -> None:
    write_app(
        root,
        "creds",
        [secret("db", password)],
        namespace="creds",
        placement={"clusters": ["beijing-1"]},
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Base (HEAD~1) and head (HEAD): a label edit, an override edit, an image bump, an app
    removed and a Secret changed."""
    root = new_repo(tmp_path)
    web_app(root, "crccheck/hello-world:1.0", aws_replicas=4)
    write_app(root, "old", [configmap("settings", {"a": "b"})], namespace="old")
    creds_app(root, BASE_SECRET)
    commit(root, "base")

    write_clusters(root, HEAD_LABELS)
    web_app(root, "crccheck/hello-world:1.1", aws_replicas=6)
    subprocess.run(["rm", "-r", str(root / "apps" / "old")], check=True)
    creds_app(root, HEAD_SECRET)
    commit(root, "head")
    return root


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["plan", *(str(a) for a in args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def app_of(review: Review, name: str) -> AppReview:
    return next(a for a in review.apps if a.app == name)


def cluster_of(app: AppReview, name: str) -> ClusterReview:
    return next(c for c in app.clusters if c.cluster == name)


def test_a_cluster_label_edit_moves_an_app_and_the_plan_says_why(repo: Path) -> None:
    review = plan(repo, "HEAD~1", "HEAD")
    web = app_of(review, "web")
    gained = cluster_of(web, "us-west-1")
    assert gained.status is ClusterStatus.GAINED
    assert gained.reasons == ["matches selector: region=cn-beijing"]
    assert gained.causes == ["labels of cluster us-west-1 changed: region: us-west → cn-beijing"]
    assert gained.before[0].startswith("does not match selector: region=cn-beijing")
    assert [o.action for o in gained.objects] == [ObjectAction.CREATED]
    assert "cluster us-west-1 labels: region: us-west → cn-beijing" in review.inventory
    markdown = to_markdown(review)
    assert "**gained** cluster `us-west-1`" in markdown
    assert "**because** labels of cluster us-west-1 changed: region: us-west → cn-beijing" in (
        markdown
    )


def test_a_gained_cluster_lists_the_overrides_that_apply_there(repo: Path) -> None:
    gained = cluster_of(app_of(plan(repo, "HEAD~1", "HEAD"), "web"), "us-west-1")
    [override] = gained.overrides
    assert (override.name, override.status) == ("bigger-on-aws", "applies")
    assert override.where.startswith("apps/web/app.yaml:")
    assert override.changes == ("Deployment.apps/web/web spec.replicas: 2 -> 6",)


def test_an_override_edit_is_named_as_the_cause_where_it_applies(repo: Path) -> None:
    web = app_of(plan(repo, "HEAD~1", "HEAD"), "web")
    [override] = cluster_of(web, "beijing-2").overrides
    assert (override.name, override.status, override.reason) == (
        "bigger-on-aws",
        "changed",
        "its definition changed",
    )
    assert override.changes == ("Deployment.apps/web/web spec.replicas: 2 -> 6",)
    assert override.before == ("Deployment.apps/web/web spec.replicas: 2 -> 4",)
    assert cluster_of(web, "beijing-1").overrides == []  # not an AWS cluster
    assert web.spec_changes == ["overrides[name=bigger-on-aws].replicas changed"]


def test_an_override_that_starts_applying_after_a_label_edit_says_which_label(
    tmp_path: Path,
) -> None:
    root = new_repo(tmp_path)
    web_app(root, "crccheck/hello-world:1.0", aws_replicas=4)
    commit(root, "base")
    write_clusters(root, {**BASE_LABELS, "beijing-1": {"region": "cn-beijing", "provider": "AWS"}})
    commit(root, "beijing-1 runs on AWS now")

    [override] = cluster_of(app_of(plan(root, "HEAD~1", "HEAD"), "web"), "beijing-1").overrides
    assert override.status == "now applies"
    assert override.reason == (
        "its target now selects this cluster: labels of cluster beijing-1 changed: +provider=AWS"
    )


def test_an_image_bump_is_a_unified_yaml_diff_on_every_cluster(repo: Path) -> None:
    web = app_of(plan(repo, "HEAD~1", "HEAD"), "web")
    [change] = cluster_of(web, "beijing-1").objects
    assert (str(change.ref), change.action) == ("Deployment.apps/web/web", ObjectAction.CHANGED)
    assert "-      - image: crccheck/hello-world:1.0\n+      - image: crccheck/hello-world:1.1" in (
        change.diff
    )
    assert change.diff.startswith("@@ ")
    assert cluster_of(web, "beijing-1").status is ClusterStatus.CHANGED


def test_a_removed_app_loses_every_cluster_and_deletes_its_objects(repo: Path) -> None:
    review = plan(repo, "HEAD~1", "HEAD")
    old = app_of(review, "old")
    assert old.status is AppStatus.REMOVED
    assert [(c.cluster, c.status) for c in old.clusters] == [
        ("beijing-1", ClusterStatus.LOST),
        ("beijing-2", ClusterStatus.LOST),
        ("us-west-1", ClusterStatus.LOST),
    ]
    for c in old.clusters:
        [gone] = c.objects
        assert (str(gone.ref), gone.action) == ("ConfigMap/old/settings", ObjectAction.DELETED)
        assert "-  a: b" in gone.diff


def test_the_summary_counts_apps_clusters_and_objects(repo: Path) -> None:
    _, out, _ = run(repo, "--base", "HEAD~1", "--head", "HEAD", "-o", "text")
    assert (
        "apps: 0 added, 1 removed, 2 changed, 0 unchanged; clusters: 1 gained, 3 lost; "
        "objects: 1 created, 3 deleted, 3 changed"
    ) in out


@pytest.mark.parametrize("output", ["markdown", "json", "text"])
def test_a_secret_change_is_shown_but_its_values_never_appear(repo: Path, output: str) -> None:
    code, out, err = run(repo, "--base", "HEAD~1", "--head", "HEAD", "-o", output)
    assert code == 1, err
    assert "Secret/creds/db" in out
    assert "(masked, changed)" in out
    for value in (BASE_SECRET, HEAD_SECRET):
        assert value not in out and value not in err


def test_a_new_secret_is_created_with_masked_values(tmp_path: Path) -> None:
    root = new_repo(tmp_path)
    commit(root, "inventory only")
    creds_app(root, HEAD_SECRET)
    commit(root, "add creds")
    review = plan(root, "HEAD~1", "HEAD")
    [created] = cluster_of(app_of(review, "creds"), "beijing-1").objects
    assert "+  password: (masked)" in created.diff
    for text in (to_markdown(review), to_json(review), to_text(review)):
        assert HEAD_SECRET not in text


def test_an_override_on_a_secret_reads_as_in_explain_with_its_value_masked(
    tmp_path: Path,
) -> None:
    root = new_repo(tmp_path)
    creds_app(root, BASE_SECRET)
    commit(root, "base")
    write_app(
        root,
        "creds",
        [secret("db", BASE_SECRET)],
        namespace="creds",
        placement={"clusters": ["beijing-1"]},
        overrides=[
            {
                "name": "per-cluster-password",
                "patches": [
                    {
                        "target": {"kind": "Secret"},
                        "merge": {"stringData": {"password": HEAD_SECRET}},
                    }
                ],
            }
        ],
    )
    commit(root, "head")

    review = plan(root, "HEAD~1", "HEAD")
    [override] = cluster_of(app_of(review, "creds"), "beijing-1").overrides
    assert override.changes == ("Secret/creds/db stringData.password: (masked)",)
    for text in (to_markdown(review), to_json(review), to_text(review)):
        assert HEAD_SECRET not in text and BASE_SECRET not in text


def test_an_invalid_head_prints_the_blocking_section_first_and_exits_2(repo: Path) -> None:
    app_yaml = repo / "apps" / "web" / "app.yaml"
    app_yaml.write_text(app_yaml.read_text().replace("region: cn-beijing", "region: [cn]"))
    commit(repo, "broken")

    code, out, err = run(repo, "--base", "HEAD~1", "--head", "HEAD", "-o", "markdown")
    assert code == 2, err
    lines = out.splitlines()
    assert lines[0] == "<!-- reconciler-plan -->"
    assert lines[3].startswith("### :x: Blocking: head does not validate (1 problem)")
    problem = lines[5]
    assert problem.startswith("- `apps/web/app.yaml:")
    assert "spec.placement.selector.matchLabels.region" in problem
    assert "head is invalid" in out


def test_a_target_that_does_not_render_in_head_is_blocking(tmp_path: Path) -> None:
    root = new_repo(tmp_path)
    write_app(root, "web", [configmap("c", {"k": "v"})], namespace="web")
    commit(root, "base")
    write_app(
        root,
        "web",
        [configmap("c", {"k": "v"})],
        namespace="web",
        overrides=[{"name": "bad", "patches": [{"json": [{"op": "remove", "path": "/nope"}]}]}],
    )
    commit(root, "a patch that cannot apply")

    code, out, _ = run(root, "--base", "HEAD~1", "-o", "text")
    assert code == 2
    lines = out.splitlines()
    assert lines[1] == "BLOCKING: head does not validate (3 problems)"
    assert lines[2].startswith("  app web, clusters beijing-1, beijing-2, us-west-1: ")
    assert "override bad" in lines[2]


def test_a_render_error_on_many_clusters_is_said_once_for_people_and_per_cluster_in_json(
    tmp_path: Path,
) -> None:
    root = new_repo(tmp_path)
    write_app(root, "web", [configmap("c", {"k": "v"})], namespace="web", overrides=[BAD_PATCH])
    commit(root, "base: web does not render")
    worse = {**BAD_PATCH, "name": "worse"}
    write_app(root, "web", [configmap("c", {"k": "w"})], namespace="web", overrides=[worse])
    commit(root, "head: web still does not render, another override")
    review = plan(root, "HEAD~1", "HEAD")
    clusters = "clusters beijing-1, beijing-2, us-west-1"

    text = to_text(review)
    [blocking] = [x for x in text.splitlines() if "override worse" in x and "error" not in x]
    assert blocking.startswith(f"  app web, {clusters}: apps/web/app.yaml:")
    [note] = [x for x in text.splitlines() if x.startswith("note: ")]
    assert note.startswith(f"note: base {review.base.short} does not render: app web, {clusters}: ")
    assert f"  {clusters}: changed" in text.splitlines()
    [error] = [x for x in text.splitlines() if x.startswith("    error: ")]
    assert error.startswith("    error: apps/web/app.yaml:") and "override worse" in error
    assert "cluster beijing-2" not in text  # nothing said once per cluster

    markdown = to_markdown(review)
    [blocking] = [x for x in markdown.splitlines() if x.startswith("- app `web` on ")]
    assert blocking.startswith("- app `web` on clusters `beijing-1`, `beijing-2`, `us-west-1`: ")
    [note] = [x for x in markdown.splitlines() if x.startswith("> **Note:**")]
    assert f"does not render: app web, {clusters}: " in note

    data = _json(review)  # machine-readable: one entry per cluster, as released
    assert [x.split(":")[0] for x in data["blocking"]] == [
        f"app web, cluster {c}" for c in ("beijing-1", "beijing-2", "us-west-1")
    ]
    assert [x.split(": ")[1] for x in data["notes"]] == [
        f"app web, cluster {c}" for c in ("beijing-1", "beijing-2", "us-west-1")
    ]


BAD_PATCH = {"name": "bad", "patches": [{"json": [{"op": "remove", "path": "/nope"}]}]}


def test_a_render_error_already_in_base_is_blocking_but_no_change(tmp_path: Path) -> None:
    root = new_repo(tmp_path)
    write_app(root, "web", [configmap("c", {"k": "v"})], namespace="web", overrides=[BAD_PATCH])
    write_app(root, "api", [configmap("c", {"k": "1"})], namespace="api")
    commit(root, "base: web does not render")
    write_app(root, "api", [configmap("c", {"k": "2"})], namespace="api")
    head = commit(root, "head: only api changes")

    review = plan(root, "HEAD~1", head)

    web = app_of(review, "web")
    assert web.status is AppStatus.UNCHANGED, web
    assert all(c.error and c.error_in_base for c in web.clusters)
    assert cluster_of(web, "beijing-1").note == (
        "base fails here with the same error: nothing changes"
    )
    assert app_of(review, "api").status is AppStatus.CHANGED
    assert review.has_errors  # head still does not render: blocking


def test_clusters_gained_for_the_same_reason_are_said_once(tmp_path: Path) -> None:
    root = new_repo(tmp_path)
    cm = [configmap("c", {"k": "v"})]
    write_app(root, "web", cm, namespace="web", placement={"clusters": ["beijing-1"]})
    commit(root, "base")
    everywhere = {"clusters": ["beijing-1", "beijing-2", "us-west-1"]}
    write_app(root, "web", cm, namespace="web", placement=everywhere)
    review = plan(root, "HEAD~1", commit(root, "head: web on every cluster"))

    text = to_text(review).splitlines()
    assert "  clusters beijing-2, us-west-1: gained" in text
    [placement] = [x for x in text if x.startswith("    placement: ")]
    assert placement.startswith(
        "    placement: gained clusters beijing-2, us-west-1: listed in placement.clusters — "
        "because the placement of app web changed"
    )
    assert sum(1 for x in text if x.strip() == "ConfigMap/web/c created") == 1
    markdown = to_markdown(review).splitlines()
    [gained] = [x for x in markdown if x.startswith("- **gained**")]
    assert gained.startswith("- **gained** clusters `beijing-2`, `us-west-1`: listed in ")


def test_a_lost_cluster_where_base_does_not_render_says_what_is_not_known(
    tmp_path: Path,
) -> None:
    root = new_repo(tmp_path)
    only_us = {**BAD_PATCH, "target": {"clusters": ["us-west-1"]}}
    write_app(root, "web", [configmap("c", {"k": "v"})], namespace="web", overrides=[only_us])
    commit(root, "base: web does not render on us-west-1")
    write_app(
        root,
        "web",
        [configmap("c", {"k": "v"})],
        namespace="web",
        placement={"clusters": ["beijing-1", "beijing-2"]},
        overrides=[only_us],
    )
    head = commit(root, "head: web leaves us-west-1")

    lost = cluster_of(app_of(plan(root, "HEAD~1", head), "web"), "us-west-1")

    assert lost.status is ClusterStatus.LOST
    assert lost.note == "base does not render here: what leaves the cluster is not listed"


def test_exit_code_is_1_for_changes_and_0_when_base_and_head_are_the_same(repo: Path) -> None:
    code, _, _ = run(repo, "--base", "HEAD~1", "--head", "HEAD")
    assert code == 1
    code, out, _ = run(repo, "--base", "HEAD", "--head", "main", "-o", "markdown")
    assert code == 0
    assert "No changes." in out


def test_an_unknown_revision_is_one_line_and_exit_2(repo: Path) -> None:
    code, out, err = run(repo, "--base", "no-such-branch")
    assert code == 2
    assert out == ""
    assert err == f"error: {repo}: unknown revision 'no-such-branch'\n"


def test_the_same_input_gives_byte_identical_markdown(repo: Path) -> None:
    first = run(repo, "--base", "HEAD~1", "--head", "HEAD", "-o", "markdown")
    second = run(repo, "--base", "HEAD~1", "--head", "HEAD", "-o", "markdown")
    assert first == second
    assert "/tmp" not in first[1] and "reconciler-plan-" not in first[1]


def test_markdown_over_the_size_cap_drops_diffs_and_says_so(repo: Path) -> None:
    review = plan(repo, "HEAD~1", "HEAD")
    full = to_markdown(review)
    assert "Truncated" not in full
    capped = to_markdown(review, max_chars=len(full) - 200)
    assert len(capped) <= len(full) - 200
    assert "> **Truncated** to stay under" in capped
    assert "_Diffs omitted to stay under the size cap._" in capped
    tiny = to_markdown(review, max_chars=2000)
    assert len(tiny) <= 2000
    assert "without details" in tiny
    assert tiny.count("<details>") == tiny.count("</details>")
    assert tiny.count("```") % 2 == 0


def test_markdown_has_one_collapsible_section_per_changed_app(repo: Path) -> None:
    markdown = to_markdown(plan(repo, "HEAD~1", "HEAD"))
    summaries = [line for line in markdown.splitlines() if line.startswith("<details>")]
    assert [s.split("<b>")[1].split("</b>")[0] for s in summaries] == ["creds", "old", "web"]
    assert "<details><summary><b>old</b> · removed · 3 clusters lost · 3 objects deleted" in (
        markdown
    )


def test_a_base_that_does_not_load_is_a_note_and_everything_counts_as_added(
    tmp_path: Path,
) -> None:
    root = new_repo(tmp_path, None)
    (root / "clusters").mkdir()
    (root / "clusters" / "broken.yaml").write_text("kind: Cluster\nmetadata: [\n")
    (root / "reconciler.yaml").write_text(
        "apiVersion: reconciler.io/v1alpha1\nkind: Settings\nspec: {allowEmpty: true}\n"
    )
    commit(root, "broken base")
    (root / "clusters" / "broken.yaml").unlink()
    write_clusters(root, BASE_LABELS)
    write_app(root, "web", [configmap("c", {"k": "v"})], namespace="web")
    commit(root, "fixed")

    review = plan(root, "HEAD~1", "HEAD")
    assert review.blocking == []
    [note] = review.notes
    assert note.startswith(f"base {review.base.short} does not load (")
    assert "clusters/broken.yaml:" in note
    assert "everything in head counts as added" in note
    [web] = review.apps
    assert web.status is AppStatus.ADDED
    assert {c.status for c in web.clusters} == {ClusterStatus.GAINED}
    code, out, _ = run(root, "--base", "HEAD~1", "-o", "markdown")
    assert code == 1
    assert "> **Note:** base" in out


def test_the_plan_reads_commits_never_the_checkout(repo: Path) -> None:
    (repo / "apps" / "web" / "app.yaml").write_text("not: [valid\n")  # uncommitted
    before = git(repo, "status", "--porcelain")
    code, out, _ = run(repo, "--base", "HEAD~1", "--head", "HEAD", "-o", "json")
    assert code == 1
    assert json.loads(out)["blocking"] == []
    assert git(repo, "status", "--porcelain") == before


def test_a_config_repo_in_a_subfolder_of_the_work_tree_is_planned(tmp_path: Path) -> None:
    top = tmp_path / "project"
    root = top / "deploy"
    root.mkdir(parents=True)
    git(top, "init", "--quiet")
    write_clusters(root, BASE_LABELS)
    write_app(root, "web", [configmap("c", {"k": "v1"})], namespace="web")
    commit(top, "base")
    write_app(root, "web", [configmap("c", {"k": "v2"})], namespace="web")
    commit(top, "head")

    review = plan(root, "HEAD~1", "HEAD")
    [web] = review.apps
    assert web.status is AppStatus.CHANGED
    assert {str(o.ref) for c in web.clusters for o in c.objects} == {"ConfigMap/web/c"}


def test_only_the_config_folder_of_a_monorepo_is_exported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    top = tmp_path / "project"
    root = top / "deploy"
    root.mkdir(parents=True)
    git(top, "init", "--quiet")
    (top / "src").mkdir()
    (top / "src" / "service.py").write_text("print('not config')\n")
    write_clusters(root, BASE_LABELS)
    write_app(root, "web", [configmap("c", {"k": "v1"})], namespace="web")
    commit(top, "base")
    write_app(root, "web", [configmap("c", {"k": "v2"})], namespace="web")
    commit(top, "head")
    exported: list[list[str]] = []

    def spy(repo_path: Path, rev: str, dest: Path, **kw: Any) -> Path:
        out = export_rev(repo_path, rev, dest, **kw)
        exported.append(sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")))
        return out

    monkeypatch.setattr(review_module, "export_rev", spy)
    review = plan(root, "HEAD~1", "HEAD")

    assert [a.status for a in review.apps] == [AppStatus.CHANGED]
    expected = [
        "apps/web/app.yaml",
        "apps/web/manifests/all.yaml",
        *(f"clusters/{c}.yaml" for c in sorted(BASE_LABELS)),
    ]
    assert exported == [expected, expected]


def test_a_config_folder_missing_in_base_or_head_is_named(tmp_path: Path) -> None:
    top = tmp_path / "project"
    top.mkdir()
    git(top, "init", "--quiet")
    (top / "README").write_text("a monorepo\n")
    commit(top, "before the config repo")
    root = top / "deploy"
    write_clusters(root, BASE_LABELS)
    write_app(root, "web", [configmap("c", {"k": "v1"})], namespace="web")
    commit(top, "add deploy/")
    subprocess.run(["git", "mv", "deploy", "deploy-old"], cwd=top, check=True)
    commit(top, "move it away")
    root.mkdir()

    added = plan(root, "HEAD~2", "HEAD~1")
    short = added.base.short
    assert added.notes[0].startswith(
        f"base {short} does not load (1 problem, first: deploy: no such folder in {short})"
    )
    assert [a.status for a in added.apps] == [AppStatus.ADDED]
    gone = plan(root, "HEAD~1", "HEAD")
    assert gone.blocking == [f"deploy: no such folder in {gone.head.short}"]
    assert gone.has_errors


def test_a_paused_cluster_keeps_the_app_and_changes_nothing_there(tmp_path: Path) -> None:
    root = new_repo(tmp_path)
    write_app(root, "web", [configmap("c", {"k": "v1"})], namespace="web")
    commit(root, "base")
    cluster_file = root / "clusters" / "beijing-2.yaml"
    cluster_file.write_text(cluster_file.read_text().replace("spec:\n", "spec:\n  paused: true\n"))
    write_app(root, "web", [configmap("c", {"k": "v2"})], namespace="web")
    commit(root, "pause beijing-2 and change c")

    review = plan(root, "HEAD~1", "HEAD")
    paused = cluster_of(app_of(review, "web"), "beijing-2")
    assert paused.status is ClusterStatus.PAUSED
    assert paused.objects == []
    assert "cluster beijing-2 paused" in review.inventory


def _json(review: Review) -> Any:
    return json.loads(to_json(review))


def test_json_holds_the_whole_plan(repo: Path) -> None:
    data = _json(plan(repo, "HEAD~1", "HEAD"))
    assert data["has_changes"] is True and data["has_errors"] is False
    assert data["live"] is None
    web = next(a for a in data["apps"] if a["app"] == "web")
    gained = next(c for c in web["clusters"] if c["cluster"] == "us-west-1")
    assert gained["status"] == "gained"
    assert gained["objects"][0]["object"] == "Deployment.apps/web/web"
    assert gained["objects"][0]["action"] == "created"


def test_temp_paths_are_stripped_the_same_way_whatever_the_hash_seed(tmp_path: Path) -> None:
    """A symlinked TMPDIR whose real path contains the link path: the result must not depend on
    the order in which a set of the two forms iterates (it changes with PYTHONHASHSEED and with
    the names; 24 names make every order show up under any seed)."""
    base = tmp_path.resolve()
    for i in range(24):
        link = base / f"tmp{i}"
        real = base / "real" / str(link).lstrip("/")  # the real path contains the link path
        (real / "head").mkdir(parents=True)
        link.symlink_to(real)
        root = link / "head"
        assert str(root) in str(root.resolve())
        text = f"helm template {real}/head/apps/web/chart failed; see {root}/apps/x"
        assert _strip_root(text, root) == "helm template apps/web/chart failed; see apps/x"


def _broken_review(apps: int, clusters: int, distinct: bool) -> Review:
    """Head renders nowhere: every (app, cluster) has a ~1.5 KB error, like a failing chart."""
    review = Review(Revision("main", "a" * 40), Revision("HEAD", "b" * 40))
    for a in range(apps):
        app = AppReview(f"app-{a}", AppStatus.CHANGED)
        for c in range(clusters):
            cluster = f"beijing-{c}"
            detail = f" (on {cluster})" if distinct else ""
            message = f"helm template apps/app-{a}/chart: {'x' * 1500}{detail}"
            error = str(RenderError(message, app=app.app, cluster=cluster))
            review.blocking.append(error)
            app.clusters.append(ClusterReview(cluster, ClusterStatus.CHANGED, error=error))
        review.apps.append(app)
    return review


def test_markdown_groups_one_error_shared_by_many_clusters() -> None:
    markdown = to_markdown(_broken_review(apps=3, clusters=100, distinct=False), max_chars=60_000)
    assert len(markdown) <= 60_000
    assert "### :x: Blocking: head does not validate (300 problems)" in markdown
    lines = [x for x in markdown.splitlines() if x.startswith("- app `app-")]
    assert len(lines) == 3
    assert lines[0].startswith(
        "- app `app-0` on 100 clusters (`beijing-0`, `beijing-1`, `beijing-10`, `beijing-11`, "
        "`beijing-12` and 95 more): `helm template apps/app-0/chart: xxx"
    )
    assert "Truncated" not in markdown.split("**Summary:**")[0]


@pytest.mark.parametrize("max_chars", [60_000, 20_000, 2_000])
def test_markdown_counts_the_blocking_section_against_the_size_cap(max_chars: int) -> None:
    markdown = to_markdown(_broken_review(apps=3, clusters=100, distinct=True), max_chars)
    assert len(markdown) <= max_chars
    assert markdown.index("### :x: Blocking") < markdown.index("**Summary:**")
    assert "blocking problems not listed" in markdown
    assert "> **Truncated** to stay under" in markdown
    listed = sum(1 for x in markdown.splitlines() if x.startswith("- app `app-"))
    more = next(x for x in markdown.splitlines() if x.startswith("- … "))
    assert more == f"- … {300 - listed} more problems (size cap: `-o text` lists them all)"
    assert markdown.count("<details>") == markdown.count("</details>")
    assert markdown.count("```") % 2 == 0


@pytest.mark.parametrize("max_chars", [60_000, 2_000])
def test_every_part_of_the_markdown_counts_against_the_size_cap(max_chars: int) -> None:
    review = _broken_review(apps=2, clusters=50, distinct=True)
    review.notes = [
        f"base {'b' * 12} does not render: app a, cluster c{i}: {'y' * 900}" for i in range(200)
    ]
    review.inventory = [f"cluster edge-{i} labels: zone: {'z' * 300} → b" for i in range(500)]
    review.apps += [AppReview(f"same-{i:04}", AppStatus.UNCHANGED) for i in range(3000)]
    review.live = [
        LiveTarget(f"app-{i}", f"edge-{i:04}", error=f"cluster edge-{i:04}: {'e' * 400}")
        for i in range(2000)
    ]
    markdown = to_markdown(review, max_chars)
    assert len(markdown) <= max_chars
    assert "> **Truncated** to stay under" in markdown
    assert "notes not listed" in markdown and "inventory changes not listed" in markdown
    assert "more targets (size cap)" in markdown
    assert re.search(r"^Unchanged apps: `same-0000`.* and \d+ more$", markdown, re.MULTILINE)
    assert markdown.count("<details>") == markdown.count("</details>")
    assert markdown.count("```") % 2 == 0


def test_the_plan_shows_the_rollout_a_change_starts(tmp_path: Path) -> None:
    root = new_repo(tmp_path)
    strategy = {
        "canary": {"clusters": ["beijing-1"], "minHealthyTime": "1m"},
        "stages": [
            {
                "name": "prod-eu",
                "target": {"clusters": ["beijing-2"]},
                "approval": "manual",
            }
        ],
    }

    def app(image: str, clusters: list[str]) -> None:
        write_app(
            root,
            "web",
            [deployment("web", image=image)],
            namespace="web",
            placement={"clusters": clusters},
            rollout=strategy,
        )

    app("crccheck/hello-world:1.0", ["beijing-1", "beijing-2"])
    commit(root, "base")
    app("crccheck/hello-world:1.1", ["beijing-1", "beijing-2", "us-west-1"])
    commit(root, "head")
    review = plan(root, "HEAD~1", "HEAD")
    text = to_text(review)
    assert (
        "  rollout: canary beijing-1, then prod-eu beijing-2 waits for manual approval after "
        "canary beijing-1\n"
        "    1. canary: beijing-1 — soak 1m; healthy within 10m; halts on a failure\n"
        "    2. prod-eu: beijing-2 — waits for manual approval; healthy within 10m; halts on a "
        "failure\n"
        "    at once (not running the app yet): us-west-1\n"
    ) in text
    markdown = to_markdown(review)
    assert (
        "**Rollout:** canary beijing-1, then prod-eu beijing-2 waits for manual approval "
        "after canary beijing-1"
    ) in markdown
    data = json.loads(to_json(review))["apps"][0]["rollout"]
    assert [s["name"] for s in data["stages"]] == ["canary", "prod-eu"]
    assert data["at_once"] == ["us-west-1"]


def test_a_branch_is_planned_from_its_merge_base_as_a_pull_request_is(repo: Path) -> None:
    """pr-1 branched off before main removed app ``old`` and changed ``web``: its plan shows
    only its own change, whether written --base main --head pr-1 or main...pr-1."""
    git(repo, "checkout", "--quiet", "-b", "pr-1", "HEAD~1")
    write_app(repo, "extra", [configmap("extra", {"k": "v"})], namespace="extra")
    commit(repo, "pr-1: add extra")
    git(repo, "checkout", "--quiet", "main")
    review = plan(repo, "main", "pr-1")
    changed = [a.app for a in review.apps if a.status is not AppStatus.UNCHANGED]
    assert changed == ["extra"]
    code, both, _ = run(repo, "--base", "main", "--head", "pr-1", "-o", "json")
    code_dots, dots, _ = run(repo, "--base", "main...pr-1", "-o", "json")
    assert (code, code_dots) == (1, 1) and both == dots
    assert '"extra"' in both
