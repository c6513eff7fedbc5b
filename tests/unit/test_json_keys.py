"""Every JSON document the CLI and the web API print has snake_case keys, and ``-o yaml``
carries the same document as ``-o json``.

The documents are built from fixtures: a state dir with every kind of row (status, health,
drift, health changes, rollouts — one stored with the camelCase keys of earlier versions —,
pins, the source), the sample repo, and pure outcomes of diff, apply, plan and wait.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import SAMPLE_REPO
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from reconciler import outcomes
from reconciler.cli.main import cli
from reconciler.cli.wait import _document
from reconciler.engine import TargetOutcome
from reconciler.fields import Drift, FieldChange
from reconciler.health import Health, ObjectHealth, TargetHealth
from reconciler.objects import ObjectRef
from reconciler.review.json import to_data
from reconciler.review.model import (
    AppReview,
    AppStatus,
    ClusterReview,
    ClusterStatus,
    LiveChange,
    LiveTarget,
    ObjectAction,
    ObjectDiff,
    OverrideDiff,
    Review,
    Revision,
)
from reconciler.rollout.codec import state_to_data
from reconciler.rollout.machine import start
from reconciler.rollout.model import PlannedStage, RolloutPlan
from reconciler.store.db import Store
from reconciler.store.rows import RolloutRow, State, StatusRow
from reconciler.sync.model import Action, ApplyResult, Change, TargetPlan
from reconciler.waiting import Goal, Outcome, TargetProgress, Verdict
from reconciler.web.app import create_app
from reconciler.web.model import ClusterInfo, Fleet
from reconciler.web.snapshot import SnapshotCache

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SHA = "1bf2028cdf11aa0000000000000000000000beef"
SNAKE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
DEPLOY = ObjectRef("apps", "Deployment", "demo", "web")

# Maps keyed by data, not by a schema (label names, tool names, states counted, apps and
# clusters of the page's matrix, object names), by where they are: their keys are not checked.
DATA_KEYED = (
    "labels",
    "tools",
    "binaries",
    "label_keys",
    "states",
    "phases",
    "counts",
    "summary.health",
    "cells",
    "cells.*",
    "cells.*.*.health",
    "object_health",
)
# Field values are the objects' own (Kubernetes camelCase): their keys are not ours.
VALUES = ("desired", "live", "before", "after", "head", "git")


def bad_keys(node: Any, path: str = "$", schema: str = "") -> list[str]:
    """Every key of ``node`` (recursively) that is not snake_case, with where it is.
    ``schema`` is the path with list indexes and data keys left out (``cells.*``)."""
    found: list[str] = []
    if isinstance(node, list):
        for i, item in enumerate(node):
            found += bad_keys(item, f"{path}[{i}]", schema)
    elif isinstance(node, dict):
        data = any(schema == rule or schema.endswith("." + rule) for rule in DATA_KEYED)
        for key, value in node.items():
            if not data and not SNAKE.fullmatch(str(key)):
                found.append(f"{path}.{key}")
            if schema.endswith("fields") and key in VALUES:
                continue
            found += bad_keys(value, f"{path}.{key}", f"{schema}.{'*' if data else key}")
    return found


def test_the_walk_fails_on_camel_case_and_skips_data() -> None:
    assert bad_keys({"a": {"hasChanges": 1}, "labels": {"topology.k8s.io/zone": "x"}}) == [
        "$.a.hasChanges"
    ]
    fields = {"fields": [{"path": "spec", "live": {"matchLabels": {}}, "selfHeal": 1}]}
    assert bad_keys(fields) == ["$.fields[0].selfHeal"]
    assert bad_keys({"live": {"targets": [{"atOnce": 1}]}}) == ["$.live.targets[0].atOnce"]


# ---- fixtures ----------------------------------------------------------------------------------


PLAN = RolloutPlan((PlannedStage("canary", ("beijing-1",), 1, approval=True),))


def _camel(data: Any) -> Any:
    """A rollout state as rows stored by earlier versions had it (camelCase keys)."""
    if isinstance(data, list):
        return [_camel(d) for d in data]
    if isinstance(data, dict):
        return {re.sub(r"_([a-z])", lambda m: m[1].upper(), k): _camel(v) for k, v in data.items()}
    return data


@pytest.fixture
def state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    health = TargetHealth(
        Health.PROGRESSING,
        "Deployment.apps/demo/web 1/3 available",
        1,
        3,
        (ObjectHealth(Health.PROGRESSING, "1/3 available", 1, 3, ref=DEPLOY),),
    )
    with Store.open(state) as store:
        store.record_revision(SHA, NOW, True, None)
        store.record_fetch_success("/srv/repo", "main", SHA, NOW)
        store.set_status(StatusRow("web", "beijing-1", State.SYNCED, "created 2", SHA, NOW, NOW))
        store.set_status(StatusRow("api", "beijing-1", State.FAILED, "boom", SHA, NOW))
        store.set_health("web", "beijing-1", health, SHA, NOW)
        store.record_applied("web", "beijing-1", SHA, [str(DEPLOY)], NOW)
        store.record_drift(
            "web",
            "beijing-1",
            str(DEPLOY),
            "modified",
            [FieldChange("spec.selector", {"matchLabels": {"a": "b"}}, {}, "kubectl-edit", NOW)],
            SHA,
            NOW,
        )
        for app, data in (
            ("web", state_to_data(start("web", SHA, PLAN, {"beijing-1": None}, 0.0))),
            ("api", _camel(state_to_data(start("api", SHA, PLAN, {"beijing-1": None}, 0.0)))),
        ):
            store.save_rollout(RolloutRow(app, SHA, "Progressing", data, NOW, NOW))
        store.pin("web", ["beijing-1"], SHA, "ana", NOW)
    return state


def _cli(*args: str) -> Any:
    """The document ``args -o json`` prints; ``-o yaml`` must print the same one."""
    runner = CliRunner()
    as_json = runner.invoke(cli, [*args, "-o", "json"])
    assert as_json.exit_code in (0, 1), as_json.output
    as_yaml = runner.invoke(cli, [*args, "-o", "yaml"])
    assert as_yaml.exit_code == as_json.exit_code, as_yaml.output
    document = json.loads(as_json.stdout)
    assert yaml.safe_load(as_yaml.stdout) == document
    return document


def cli_documents(state: Path) -> dict[str, Any]:
    sd = ("--state-dir", str(state))
    repo = str(SAMPLE_REPO)
    return {
        "status": _cli("status", *sd),
        "drift": _cli("drift", *sd),
        "drift --health": _cli("drift", "--health", *sd),
        "rollout status": _cli("rollout", "status", *sd),
        "version": _cli("version"),
        "dev provision": _cli("dev", "provision"),
        "validate": _cli("validate", repo),
        "explain": _cli("explain", repo, "--app", "hello-world", "--cluster", "us-west-1"),
    }


def _outcomes() -> list[TargetOutcome]:
    change = Change(
        DEPLOY,
        Action.UPDATE,
        fields=[FieldChange("spec.template", {"restartPolicy": "Always"}, {}, "kubectl", NOW)],
        drift=Drift.MODIFIED,
        after_crd=True,
        managers=["kubectl"],
    )
    plan = TargetPlan("web", "beijing-1", SHA, [change], {}, None, {})
    result = ApplyResult("web", "beijing-1", SHA, configured=[DEPLOY], corrected=[DEPLOY])
    result.skipped.append((ObjectRef("", "ConfigMap", "demo", "x"), "conflict"))
    return [TargetOutcome("web", "beijing-1", plan=plan, result=result)]


def _review() -> Review:
    cluster = ClusterReview(
        "beijing-1",
        ClusterStatus.CHANGED,
        reasons=["matches"],
        overrides=[OverrideDiff("ha", "app.yaml:3", "changed", "why", ("a",), ("b",))],
        objects=[ObjectDiff(DEPLOY, ObjectAction.CHANGED, "-a\n+b")],
    )
    app = AppReview("web", AppStatus.CHANGED, ["spec.x"], [cluster], PLAN, ("us-west-1",))
    live = LiveTarget(
        "web",
        "beijing-1",
        [LiveChange(DEPLOY, Action.UPDATE, "modified", "", ("kubectl",), (), self_heal=False)],
    )
    return Review(Revision("main", SHA), Revision("pr", SHA), apps=[app], live=[live])


def pure_documents() -> dict[str, Any]:
    progress = TargetProgress(
        "beijing-1", State.SYNCED, Health.HEALTHY, "3/3", SHA, "", Outcome.REACHED
    )
    verdict = Verdict(Outcome.REACHED, (progress,))
    return {
        "diff": outcomes.diff_data(_outcomes()),
        "apply": outcomes.apply_data(_outcomes()),
        "apply --heal": outcomes.apply_data(_outcomes(), heal=True),
        "plan": json.loads(json.dumps(to_data(_review()), default=str)),
        "wait": _document("web", Goal.HEALTHY, None, "reached", verdict),
    }


@pytest.fixture
def web(state: Path) -> Iterator[TestClient]:
    fleet = Fleet(
        (ClusterInfo("beijing-1", {"topology.kubernetes.io/region": "cn"}),),
        "1",
        objects=lambda app, cluster: (str(DEPLOY),),
    )
    with Store.open_readonly(state) as store:
        cache = SnapshotCache(store, lambda: fleet, daemon_running=None, max_age=0)
        app = create_app(cache, CollectorRegistry(), ready=lambda: True, healthy=lambda: True)
        with TestClient(app) as client:
            yield client


def web_documents(web: TestClient) -> dict[str, Any]:
    paths = ("/api/status", "/api/drift", "/api/page", "/api/targets/web/beijing-1")
    documents = {}
    for path in paths:
        response = web.get(path)
        assert response.status_code == 200, path
        documents[path] = response.json()
    return documents


# ---- the test ----------------------------------------------------------------------------------


def test_every_json_document_has_snake_case_keys(state: Path, web: TestClient) -> None:
    documents = {**cli_documents(state), **pure_documents(), **web_documents(web)}
    bad = {name: keys for name, document in documents.items() if (keys := bad_keys(document))}
    assert bad == {}
    # The fixtures reach the places camelCase used to leak from.
    assert documents["plan"]["has_changes"] is True
    assert documents["plan"]["apps"][0]["rollout"]["stages"][0]["max_concurrent"] == 1
    assert documents["diff"][0]["changes"][0]["after_crd"] is True
    rollouts = {r["app"]: r for r in documents["status"]["rollouts"]}
    assert rollouts["api"]["started_at"] == rollouts["web"]["started_at"] == 0.0
    assert documents["rollout status"]["rollouts"][0]["waiting_for"]
