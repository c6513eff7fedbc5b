"""`reconciler diff -o markdown`: one collapsible section per target with changes or an error."""

from __future__ import annotations

from reconciler.engine import TargetOutcome
from reconciler.errors import RenderError
from reconciler.fields import FieldChange
from reconciler.objects import ObjectRef
from reconciler.outcomes import diff_markdown
from reconciler.sync.model import Action, Change, TargetPlan

CONFIG = ObjectRef("", "ConfigMap", "demo", "web")


def test_a_target_with_an_error_has_no_empty_diff_block() -> None:
    plain = Change(CONFIG, Action.UPDATE, {}, "v1", [FieldChange("data.a", "1", "2")])
    changed = TargetOutcome("web", "c1", plan=TargetPlan("web", "c1", "abc", [plain], {}, None, {}))
    error = RenderError("helm not found", app="api", cluster="c1")
    broken = TargetOutcome("api", "c1", error=error)

    text = diff_markdown([broken, changed])

    assert text.count("```diff") == 1, text
    section = text.split("<summary><b>api</b>")[1].split("</details>")[0]
    assert "**error:** `app api, cluster c1: helm not found`" in section
    assert "```" not in section
    assert "ConfigMap/demo/web" in text.split("```diff")[1]
