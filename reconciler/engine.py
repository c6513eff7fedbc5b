"""One reconcile pass over a rendered revision: every cluster concurrently and in isolation.

Per cluster: check it answers, then plan (and apply, unless only diffing) each app placed on it,
and prune apps that were placed there before but no longer are (found through the inventories
on the cluster itself, so no local state is needed). A render error for an app never prunes
anything for it. One unreachable or failing cluster never blocks or fails the others.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.config.model import App, Repo
from reconciler.config.schema import SyncPolicy
from reconciler.errors import ClusterUnreachable, ReconcilerError
from reconciler.health import NO_RULES, HealthRule, TargetHealth, target_health
from reconciler.kube.client import ClusterClient
from reconciler.kube.pool import Clients
from reconciler.objects import ObjectRef
from reconciler.progress import PassProgress
from reconciler.render import TargetResult
from reconciler.sync.apply import apply_plan
from reconciler.sync.inventory import list_inventories
from reconciler.sync.isolated import run_isolated
from reconciler.sync.model import DEFAULT_INSTANCE, ApplyResult, Claims, TargetPlan, live_after
from reconciler.sync.observe import check_target
from reconciler.sync.plan import NO_CLAIMS, plan_target

_INSTANCE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")

# An app removed from the repo (or from a cluster) is pruned with these rules.
_DEPARTED_POLICY = SyncPolicy(allow_empty=True)


@dataclass
class TargetOutcome:
    """What happened to one app on one cluster."""

    app: str
    cluster: str
    plan: TargetPlan | None = None
    result: ApplyResult | None = None
    error: ReconcilerError | None = None
    unreachable: bool = False
    departed: bool = False  # no longer placed here: everything it had is pruned
    health: TargetHealth | None = None  # judged on what the pass read and wrote

    @property
    def ok(self) -> bool:
        return self.error is None and (self.result is None or self.result.ok)


def check_instance(instance: str) -> None:
    """An instance name becomes part of ConfigMap names and label values: a DNS label."""
    if not _INSTANCE_NAME.fullmatch(instance):
        raise ReconcilerError(
            f"instance name {instance!r} is not valid: use up to 63 lowercase letters, digits "
            "and '-', starting and ending with a letter or digit"
        )


def reconcile(
    repo: Repo,
    rendered: Iterable[TargetResult],
    clients: Clients,
    revision: str,
    *,
    apply: bool,
    clusters: Iterable[str] | None = None,
    prune_departed: bool = True,
    instance: str = DEFAULT_INSTANCE,
    revisions: Mapping[tuple[str, str], str | None] | None = None,
    heal: bool = False,
    progress: PassProgress | None = None,
) -> list[TargetOutcome]:
    """Plan (and apply) every rendered target; returns one outcome per (app, cluster).

    ``clusters`` limits the pass (default: every cluster that is not paused). With
    ``prune_departed``, apps whose inventory is on a cluster they are no longer placed on are
    planned as empty (and pruned when applying) — only when the whole repo was rendered.
    ``instance`` names this reconciler's inventories, so two instances (or two config repos)
    sharing a cluster never prune each other's apps. ``revisions`` names, per (app, cluster),
    the revision a target's objects come from when it is not ``revision`` (a rollout or a pin
    keeps some targets on an older one); inventories record it. ``heal`` corrects drift this
    once on apps whose ``sync.selfHeal`` is false (a user's one-shot heal). ``progress`` counts
    targets and objects as they are done (for a status line on a terminal).
    """
    check_instance(instance)
    by_cluster: dict[str, list[TargetResult]] = {}
    for target in rendered:
        by_cluster.setdefault(target.cluster, []).append(target)
    names = list(clusters) if clusters is not None else list(repo.clusters)
    names = [n for n in names if n in repo.clusters and not repo.clusters[n].paused]
    for name in names:
        by_cluster.setdefault(name, [])
    if progress is not None:
        progress.add(targets=sum(len(targets) for targets in by_cluster.values()))

    def work(name: str) -> list[TargetOutcome]:
        return _reconcile_cluster(
            repo,
            name,
            by_cluster[name],
            clients,
            _Pass(revision, apply, prune_departed, instance, dict(revisions or {}), heal, progress),
        )

    outcomes: list[TargetOutcome] = []
    for outcome in run_isolated(sorted(by_cluster), work):
        if outcome.value is not None:
            outcomes += outcome.value
        else:  # the cluster failed before any app was tried
            assert outcome.error is not None
            unreachable = isinstance(outcome.error, ClusterUnreachable)
            for target in by_cluster[outcome.key]:
                outcomes.append(
                    TargetOutcome(
                        target.app, outcome.key, error=outcome.error, unreachable=unreachable
                    )
                )
    return sorted(outcomes, key=lambda o: (o.app, o.cluster))


@dataclass(frozen=True)
class _Pass:
    revision: str
    apply: bool
    prune_departed: bool
    instance: str
    revisions: Mapping[tuple[str, str], str | None] = field(default_factory=dict)
    heal: bool = False
    progress: PassProgress | None = None

    def revision_of(self, app: str, cluster: str) -> str:
        return self.revisions.get((app, cluster)) or self.revision


def _reconcile_cluster(
    repo: Repo, name: str, targets: list[TargetResult], clients: Clients, run: _Pass
) -> list[TargetOutcome]:
    cluster = clients.get(name, repo.clusters[name].context)
    cluster.ping()
    outcomes = []
    placed = {t.app for t in targets}
    claims = cluster_claims(targets, whole=run.prune_departed)
    for target in sorted(targets, key=lambda t: t.app):
        if target.error is not None or target.rendered is None:
            outcomes.append(TargetOutcome(target.app, name, error=target.error))
            continue
        policy = repo.apps[target.app].sync
        if run.heal and run.apply and not policy.self_heal:
            policy = policy.model_copy(update={"self_heal": True})  # this once
        rules = repo.apps[target.app].health
        objects = target.rendered.objects
        outcomes.append(_one(cluster, target.app, objects, policy, run, rules, claims))
    if run.prune_departed:
        for app_name in list_inventories(cluster, run.instance):
            if app_name in placed:
                continue
            departed: App | None = repo.apps.get(app_name)
            policy = (
                _DEPARTED_POLICY
                if departed is None
                else departed.sync.model_copy(update={"allow_empty": True})
            )
            if run.progress is not None:
                run.progress.add(targets=1)
            outcome = _one(cluster, app_name, [], policy, run, claims=claims)
            outcome.departed = True
            outcomes.append(outcome)
    return outcomes


def cluster_claims(targets: list[TargetResult], *, whole: bool) -> Claims:
    """What each app placed on one cluster wants there in this pass (an object moving from one
    app to another in one revision is handed over, see Claims). ``whole``: every app of the
    repo was rendered, so an app not placed here wants nothing here."""
    wants: dict[ObjectRef, set[str]] = {}
    names: dict[tuple[str, str, str], set[str]] = {}
    for target in targets:
        if target.error is not None or target.rendered is None:
            continue
        for obj in target.rendered.objects:
            ref = ObjectRef.of(obj)
            wants.setdefault(ref, set()).add(target.app)
            if ref.namespace:  # a custom kind the render did not know is cluster-scoped
                names.setdefault((ref.group, ref.kind, ref.name), set()).add(target.app)
    return Claims(
        {ref: frozenset(apps) for ref, apps in wants.items()},
        frozenset(t.app for t in targets if t.error is None and t.rendered is not None),
        frozenset(t.app for t in targets if t.error is not None or t.rendered is None),
        whole,
        {key: frozenset(apps) for key, apps in names.items()},
    )


def _one(
    cluster: ClusterClient,
    app: str,
    objects: list[dict[str, object]],
    policy: SyncPolicy,
    run: _Pass,
    rules: tuple[HealthRule, ...] = NO_RULES,
    claims: Claims = NO_CLAIMS,
) -> TargetOutcome:
    outcome = TargetOutcome(app, cluster.name)
    try:
        revision = run.revision_of(app, cluster.name)
        outcome.plan = plan_target(cluster, app, objects, policy, revision, run.instance, claims)
        if run.apply:
            outcome.result = apply_plan(cluster, outcome.plan, policy, run.progress)
    except ReconcilerError as err:
        outcome.error = err
        outcome.unreachable = isinstance(err, ClusterUnreachable)
        return outcome
    finally:
        if run.progress is not None:
            run.progress.done(targets=1)
    outcome.health = target_health(live_after(outcome.plan, outcome.result), rules)
    return outcome


def check_health(
    repo: Repo, targets: Iterable[TargetResult], clients: Clients, cluster: str
) -> dict[str, TargetHealth]:
    """Re-judge the health of some targets on one cluster from a fresh read of their objects
    (reads only: no dry-run, no write). A target whose read fails is left out: the next pass
    reports the cluster's trouble."""
    client = clients.get(cluster, repo.clusters[cluster].context)
    judged: dict[str, TargetHealth] = {}
    for target in targets:
        if target.rendered is None or target.app not in repo.apps:
            continue
        try:
            judged[target.app] = check_target(
                client, target.rendered.objects, repo.apps[target.app].health
            )
        except ReconcilerError:
            continue
    return judged
