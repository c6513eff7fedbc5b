"""`diff` and `apply` say a render error shared by several clusters once, naming them (text and
Markdown); their JSON keeps one entry per target."""

from __future__ import annotations

from reconciler.engine import TargetOutcome
from reconciler.errors import RenderError
from reconciler.fields import FieldChange
from reconciler.objects import ObjectRef
from reconciler.outcomes import apply_text, diff_data, diff_markdown, diff_text
from reconciler.sync.model import Action, Change, TargetPlan

CONFIG = ObjectRef("", "ConfigMap", "demo", "web")
EDGES = [f"edge-{i}" for i in range(7)]


def _outcomes() -> list[TargetOutcome]:
    """``api`` renders nowhere (helm missing, the same on 7 clusters); ``web`` changes on one."""
    plain = Change(CONFIG, Action.UPDATE, {}, "v1", [FieldChange("data.a", "1", "2")])
    plan = TargetPlan("web", "edge-0", "abc", [plain], {}, None, {})
    broken = [
        TargetOutcome("api", c, error=RenderError("helm not found", app="api", cluster=c))
        for c in EDGES
    ]
    return [*broken, TargetOutcome("web", "edge-0", plan=plan)]


SAID_ONCE = (
    "app api, 7 clusters (edge-0, edge-1, edge-2, edge-3, edge-4 and 2 more): helm not found"
)


def test_diff_text_says_a_render_error_once_for_every_cluster_it_is_on() -> None:
    lines = diff_text(_outcomes(), color=False).splitlines()
    assert f"error: {SAID_ONCE}" in lines
    assert sum(1 for x in lines if "helm not found" in x) == 1
    assert "cluster edge-0" in lines and "    ~ ConfigMap/demo/web update" in lines
    assert "cluster edge-3" not in lines  # nothing else to say there
    assert lines[-1] == "2 apps on 7 clusters: 1 change, 7 errors"


def test_apply_text_says_a_render_error_once_and_counts_every_target() -> None:
    lines = apply_text([o for o in _outcomes() if o.error], color=False).splitlines()
    assert f"error: {SAID_ONCE}" in lines
    assert sum(1 for x in lines if "helm not found" in x) == 1
    assert lines[-1].endswith("; 7 errors")


def test_diff_markdown_has_one_section_for_a_render_error_on_many_clusters() -> None:
    text = diff_markdown(_outcomes())
    assert text.count("helm not found") == 1
    assert "<summary><b>api</b> on <b>7 clusters (edge-0, edge-1, edge-2, edge-3, edge-4 " in text
    assert f"**error:** `{SAID_ONCE}`" in text
    assert text.count("<details>") == 2


def test_diff_json_keeps_one_entry_per_target() -> None:
    data = diff_data(_outcomes())
    errors = [d["error"] for d in data if d["error"]]
    assert errors == [f"app api, cluster {c}: helm not found" for c in EDGES]
