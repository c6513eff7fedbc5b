"""Loading a repo as far as it goes, and what its broken parts hold in the daemon."""

from __future__ import annotations

import shutil

from conftest import RepoFactory
from repo_snippets import app, cluster, group, settings

from reconciler.config.load import load_partial
from reconciler.config.model import PartialRepo
from reconciler.daemon.blast import Holds, holds

CLUSTERS = {f"clusters/{n}.yaml": cluster(n, labels=f"{{region: {r}}}")
            for n, r in (("a", "north"), ("b", "north"), ("c", "south"))}  # fmt: skip
NORTH = {"groups/north.yaml": group("north", "{matchLabels: {region: north}}")}
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"


def web(name: str, placement: str = "{clusters: [a, b, c]}") -> dict[str, str]:
    spec = f"namespace: {name}\nsource: {{manifests: manifests/}}\nplacement: {placement}\n"
    return {f"apps/{name}/app.yaml": app(name, spec), f"apps/{name}/manifests/cm.yaml": CM}


def load(make_repo: RepoFactory, files: dict[str, str]) -> PartialRepo:
    return load_partial(make_repo(files))


def test_a_typo_in_one_app_leaves_out_that_app_only(make_repo: RepoFactory) -> None:
    files = {**CLUSTERS, **web("good"), **web("typo")}
    files["apps/typo/app.yaml"] = files["apps/typo/app.yaml"].replace("placement:", "placment:")

    partial = load(make_repo, files)

    assert list(partial.repo.apps) == ["good"]
    assert list(partial.repo.clusters) == ["a", "b", "c"]
    (broken,) = partial.broken
    assert (broken.kind, broken.file, broken.names) == ("App", "apps/typo", ("typo",))
    assert [str(p) for p in broken.problems] == [
        "apps/typo/app.yaml:8: spec.placment: unknown field 'placment' (did you mean 'placement'?)"
    ]
    assert partial.repo_problems == ()
    assert holds(partial, None) == Holds(apps={"typo": str(broken.problems[0])})


def test_a_broken_manifest_is_its_apps_problem(make_repo: RepoFactory) -> None:
    files = {**CLUSTERS, **web("good"), **web("bad")}
    files["apps/bad/manifests/cm.yaml"] = "kind: ConfigMap\ndata: [unclosed\n"

    partial = load(make_repo, files)

    assert list(partial.repo.apps) == ["good"]
    assert [(b.file, b.names) for b in partial.broken] == [("apps/bad", ("bad",))]
    assert str(partial.broken[0].problems[0]).startswith(
        "apps/bad/manifests/cm.yaml:3: invalid YAML"
    )


def test_a_broken_cluster_file_holds_that_cluster(make_repo: RepoFactory) -> None:
    files = {**CLUSTERS, **web("good")}
    files["clusters/b.yaml"] = files["clusters/b.yaml"].replace("labels:", "lables:")

    partial = load(make_repo, files)

    assert list(partial.repo.clusters) == ["a", "c"]
    assert list(partial.repo.apps) == ["good"]  # its reference to b is not "unknown"
    found = holds(partial, None)
    assert (found.everything, dict(found.apps), list(found.clusters)) == (None, {}, ["b"])
    assert found.reason(("good", "b")) == found.clusters["b"]
    assert found.reason(("good", "a")) is None


def test_a_cluster_file_that_does_not_parse_is_known_from_the_previous_revision(
    make_repo: RepoFactory,
) -> None:
    previous = load(make_repo, {**CLUSTERS, **web("good")}).repo
    files = {**CLUSTERS, **web("good"), "clusters/b.yaml": "kind: Cluster\nmetadata: [\n"}
    partial = load_partial(make_repo(files))

    assert holds(partial, previous).clusters.keys() == {"b"}
    everything = holds(partial, None).everything
    assert everything is not None and everything.startswith("cannot tell what clusters/b.yaml")


def test_a_broken_group_holds_the_apps_that_name_it(make_repo: RepoFactory) -> None:
    files = {**CLUSTERS, **NORTH, **web("by-group", "{groups: [north]}"), **web("by-name")}
    files["groups/north.yaml"] = files["groups/north.yaml"].replace("matchLabels", "matchLabel")

    partial = load(make_repo, files)

    assert sorted(partial.repo.apps) == ["by-name"]  # where by-group goes is not known
    found = holds(partial, None)
    assert list(found.apps) == ["by-group"] and not found.clusters and not found.everything


def test_an_unreadable_new_app_holds_apps_that_disappear(make_repo: RepoFactory) -> None:
    previous = load(make_repo, {**CLUSTERS, **web("old"), **web("kept")}).repo
    files = {**CLUSTERS, **web("kept"), "apps/renamed/app.yaml": "kind: App\nmetadata: [\n"}
    root = make_repo(files)
    shutil.rmtree(root / "apps" / "old")
    partial = load_partial(root)

    (broken,) = partial.broken
    assert broken.names == ()
    assert list(holds(partial, previous).apps) == ["old"]  # maybe it moved: not pruned


def test_settings_and_an_empty_repo_are_repo_wide(make_repo: RepoFactory) -> None:
    bad = load(make_repo, {**CLUSTERS, **web("x"), "reconciler.yaml": settings("allowEmty: 1")})
    assert bad.repo_problems and not bad.broken
    assert holds(bad, None).everything is not None

    empty = load(make_repo, {**CLUSTERS, "reconciler.yaml": settings()})
    assert empty.problems == [] and empty.repo.settings.allow_empty

    guard = settings("pruneGuard: {maxObjects: 50, maxPercent: 60}")
    tuned = load(make_repo, {**CLUSTERS, **web("x"), "reconciler.yaml": guard}).repo.settings
    assert (tuned.max_prune_objects, tuned.max_prune_percent) == (50, 60.0)


def test_a_duplicate_app_name_holds_that_name(make_repo: RepoFactory) -> None:
    files = {**CLUSTERS, **web("web"), **web("other")}
    files["apps/other/app.yaml"] = files["apps/other/app.yaml"].replace("name: other", "name: web")

    partial = load(make_repo, files)

    assert list(partial.repo.apps) == []
    assert list(holds(partial, None).apps) == ["web"]
