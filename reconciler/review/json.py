"""A plan as JSON: everything in it (object bodies never: only masked diffs)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from reconciler.objects import ObjectRef
from reconciler.presentation import fields_json
from reconciler.review.model import Review
from reconciler.review.summary import summary
from reconciler.rollout import describe
from reconciler.rollout.codec import plan_to_data


def to_json(review: Review) -> str:
    """Everything in the plan as JSON (object bodies never: only masked diffs)."""
    return json.dumps(to_data(review), indent=2, sort_keys=True, default=str, ensure_ascii=False)


def to_data(review: Review) -> dict[str, Any]:
    """Everything in the plan as a document (``plan -o json|yaml``), snake_case keys."""

    def ref(r: ObjectRef) -> dict[str, str]:
        return {"object": str(r), **asdict(r)}

    data: dict[str, Any] = {
        "base": {"rev": review.base.rev, "sha": review.base.sha},
        "head": {"rev": review.head.rev, "sha": review.head.sha},
        "blocking": review.blocking,
        # one note per target that does not render in base, as released (text groups them)
        "notes": [
            *review.notes,
            *(f"base {review.base.short} does not render: {e}" for e in review.base_errors),
        ],
        "summary": summary(review),
        "has_changes": review.has_changes,
        "has_errors": review.has_errors,
        "inventory": review.inventory,
        "apps": [
            {
                "app": a.app,
                "status": a.status.value,
                "spec_changes": a.spec_changes,
                "rollout": None
                if a.rollout is None
                else {
                    "summary": describe.summary(a.rollout),
                    **plan_to_data(a.rollout),
                    "at_once": list(a.at_once),
                },
                "clusters": [
                    {
                        "cluster": c.cluster,
                        "status": c.status.value,
                        "reasons": c.reasons,
                        "before": c.before,
                        "causes": c.causes,
                        "error": c.error,
                        "note": c.note,
                        "overrides": [asdict(o) for o in c.overrides],
                        "objects": [
                            {**ref(o.ref), "action": o.action.value, "diff": o.diff, "note": o.note}
                            for o in c.objects
                        ],
                    }
                    for c in a.clusters
                ],
            }
            for a in review.apps
        ],
        "live": None,
    }
    if review.live is not None:
        data["live"] = {
            "instance": review.live_instance,
            "targets": [
                {
                    "app": t.app,
                    "cluster": t.cluster,
                    "departed": t.departed,
                    "unreachable": t.unreachable,
                    "error": t.error,
                    "changes": [
                        {
                            **ref(c.ref),
                            "action": c.action.value,
                            "drift": c.drift,
                            "message": c.message,
                            "managers": list(c.managers),
                            "self_heal": c.self_heal,
                            "fields": fields_json(c.fields, git="head", live="live"),
                        }
                        for c in t.changes
                    ],
                }
                for t in review.live
            ],
        }
    return data
