"""How far one bad commit reaches: which targets a broken file holds on their revision.

    .venv/bin/python bench/blast_radius.py

Takes sample-repo/ plus one app that names no group (3 clusters, 4 apps, 12 targets), breaks it in
one way per case (typos, bad YAML, missing files, dangling references, in app, cluster, group
and settings files), loads the broken copy as far as it goes (``load_partial``), renders it,
and asks the daemon's blast radius (``daemon.blast.holds``, with the good revision as the
previous one) plus the render errors which targets stay on their revision. Prints one line per
case and the totals: how many cases hold only the broken app's own targets, one cluster, the
apps of one group, or everything. Before per-target revisions every case held everything.
Not a timed test.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from reconciler.config.load import load_partial
from reconciler.daemon.blast import holds
from reconciler.placement import targets
from reconciler.render import RenderCache, render_all

SAMPLE = Path(__file__).resolve().parents[1] / "sample-repo"


def edit(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / rel
        text = path.read_text()
        assert old in text, (rel, old)
        path.write_text(text.replace(old, new, 1))

    return change


def write(rel: str, text: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)

    return change


def remove(rel: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return change


HW, GB, RD = "apps/hello-world", "apps/guestbook", "apps/redis"
CASES: list[tuple[str, Callable[[Path], None]]] = [
    ("app.yaml: unknown field", edit(f"{HW}/app.yaml", "placement:", "placment:")),
    ("app.yaml: bad YAML", edit(f"{HW}/app.yaml", "kind: App", "kind: [App")),
    ("app.yaml: emptied", write(f"{HW}/app.yaml", "# nothing\n")),
    ("app.yaml: unknown cluster", edit(f"{HW}/app.yaml", "groups: [beijing]",
                                       "groups: [beijing]\n    clusters: [nowhere]")),
    ("app.yaml: unknown group", edit(f"{HW}/app.yaml", "groups: [beijing]", "groups: [beijng]")),
    ("app.yaml: bad replicas type", edit(f"{HW}/app.yaml", "replicas: 5", "replicas: five")),
    ("app.yaml: bad namespace", edit(f"{HW}/app.yaml", "namespace: demo", "namespace: Demo_1")),
    ("manifest: bad YAML", edit(f"{HW}/manifests/service.yaml", "kind: Service",
                                "kind: [Service")),
    ("manifest: unknown variable", write(f"{HW}/manifests/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
        "data: {a: '${cluster.vars.nope}'}\n")),
    ("manifest dir: removed", remove(f"{HW}/manifests")),
    ("chart: values file missing", remove(f"{GB}/values-prod.yaml")),
    ("chart: Chart.yaml missing", remove(f"{GB}/chart/Chart.yaml")),
    ("chart: template error", write(f"{GB}/chart/templates/broken.yaml", "{{ .Values.x.y.z }}\n")),
    ("kustomize: missing resource", edit(f"{RD}/base/kustomization.yaml", "deployment.yaml",
                                         "deploymnt.yaml")),
    ("kustomize: bad YAML", write(f"{RD}/overlays/prod/kustomization.yaml", "resources: [\n")),
    ("two apps, one name", edit(f"{RD}/app.yaml", "name: redis", "name: guestbook")),
    ("app folder without app.yaml", write("apps/new-app/manifests/cm.yaml", "kind: ConfigMap\n")),
    ("cluster: unknown field", edit("clusters/beijing-2.yaml", "labels:", "lables:")),
    ("cluster: bad label value", edit("clusters/us-west-1.yaml", "provider: AWS",
                                      "provider: 'A W S'")),
    ("cluster: bad YAML", write("clusters/beijing-1.yaml", "kind: Cluster\nmetadata: [\n")),
    ("cluster: emptied", write("clusters/beijing-1.yaml", "")),
    ("cluster: duplicate name", write("clusters/zz.yaml", (SAMPLE / "clusters/beijing-1.yaml")
                                      .read_text())),
    ("new cluster file: bad YAML", write("clusters/edge-9.yaml", "kind: [\n")),
    ("group: bad operator", edit("groups/beijing.yaml", "matchLabels", "matchLabel")),
    ("group: bad YAML", write("groups/beijing.yaml", "kind: [\n")),
    ("reconciler.yaml: unknown field", write("reconciler.yaml",
        "apiVersion: reconciler.io/v1alpha1\nkind: Settings\nspec: {allowEmty: true}\n")),
    ("git rm -r apps", remove("apps")),
    ("git rm -r clusters", remove("clusters")),
]  # fmt: skip


STANDALONE = """\
apiVersion: reconciler.io/v1alpha1
kind: App
metadata: {name: standalone}
spec:
  namespace: standalone
  source: {manifests: manifests/}
  placement: {clusters: [beijing-1, beijing-2, us-west-1]}
"""


def base(root: Path) -> None:
    shutil.copytree(SAMPLE, root)
    write("apps/standalone/app.yaml", STANDALONE)(root)
    write(
        "apps/standalone/manifests/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\n",
    )(root)


def main() -> int:
    with tempfile.TemporaryDirectory() as good:
        base(Path(good) / "repo")
        previous = load_partial(Path(good) / "repo").repo
    all_targets = {(a.name, c.name) for a in previous.apps.values() for c in targets(previous, a)}
    tally: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, change in CASES:
            root = Path(tmp) / name.replace(" ", "_").replace(":", "").replace("/", "_")
            base(root)
            change(root)
            partial = load_partial(root)
            held = holds(partial, previous)
            if held.everything is not None:
                kept = set(all_targets)
            else:
                kept = {k for k in all_targets if held.reason(k) is not None}
                rendered = render_all(partial.repo, cache=RenderCache())
                kept |= {(t.app, t.cluster) for t in rendered if t.error is not None}
            apps = {a for a, _ in kept}
            clusters = {c for _, c in kept}
            if held.everything is not None or kept == all_targets:
                reach = "everything"
            elif not kept:
                reach = "one app"  # a new app: nothing of the others is held
            elif len(apps) == 1:
                reach = "one app"
            elif len(clusters) == 1:
                reach = "one cluster"
            else:
                reach = "some apps"
            tally[reach] = tally.get(reach, 0) + 1
            print(f"{name:32} {reach:12} holds {len(kept)}/{len(all_targets)} targets")
    print()
    print(f"{len(CASES)} bad commits: " + ", ".join(f"{n} {k}" for k, n in sorted(tally.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
