"""Health of workloads: Deployment, StatefulSet, DaemonSet, ReplicaSet, Pod, Job, CronJob.

In the spirit of kstatus (sigs.k8s.io/cli-utils) and Argo CD's checks: a status written for an
older generation says nothing; a rollout is Progressing until every replica is updated and
available; only what the controller itself calls failed (a Deployment past its progress
deadline, a failed Job or Pod, a container crash looping or that cannot start without a change)
is Degraded: what the kubelet retries and often clears by itself (an image not pulled yet) is
Progressing, which a rollout gate waits on until its deadline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from reconciler.health.conditions import (
    Obj,
    condition,
    explain,
    generation_pending,
    is_true,
    number,
    spec,
    status,
)
from reconciler.health.model import Assessment, Health

_NOT_OBSERVED = Assessment(Health.PROGRESSING, "waiting for the controller to report status")


def _observed(obj: Obj) -> Assessment | None:
    """Progressing until the controller reported on the current generation."""
    if "observedGeneration" not in status(obj):
        return _NOT_OBSERVED
    return generation_pending(obj)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def deployment(obj: Obj) -> Assessment:
    desired = number(spec(obj).get("replicas"), 1)
    st = status(obj)
    available = number(st.get("availableReplicas"))
    counts = {"ready": available, "desired": desired}
    if spec(obj).get("paused"):
        return Assessment(Health.SUSPENDED, f"paused, {available}/{desired} available", **counts)
    pending = _observed(obj)
    if pending is not None:
        return Assessment(pending.health, pending.reason, **counts)
    progressing = condition(obj, "Progressing")
    if (
        progressing is not None
        and progressing.get("status") == "False"
        and progressing.get("reason") == "ProgressDeadlineExceeded"
    ):
        updated = number(st.get("updatedReplicas"))
        stuck = f", {updated}/{desired} updated" if updated < desired else ""
        text = f"{available}/{desired} available{stuck} (ProgressDeadlineExceeded)"
        return Assessment(Health.DEGRADED, text, **counts)
    updated = number(st.get("updatedReplicas"))
    if updated < desired:
        return Assessment(Health.PROGRESSING, f"{updated}/{desired} updated", **counts)
    old = number(st.get("replicas")) - updated
    if old > 0:
        text = f"{_plural(old, 'old replica')} pending termination"
        return Assessment(Health.PROGRESSING, text, **counts)
    terminating = number(st.get("terminatingReplicas"))  # Kubernetes 1.33+
    if terminating > 0:
        text = f"{_plural(terminating, 'replica')} terminating"
        return Assessment(Health.PROGRESSING, text, **counts)
    if available < updated:
        return Assessment(Health.PROGRESSING, f"{available}/{desired} available", **counts)
    return Assessment(Health.HEALTHY, f"{available}/{desired} available", **counts)


def stateful_set(obj: Obj) -> Assessment:
    desired = number(spec(obj).get("replicas"), 1)
    st = status(obj)
    ready = number(st.get("readyReplicas"))
    counts = {"ready": ready, "desired": desired}
    pending = _observed(obj)
    if pending is not None:
        return Assessment(pending.health, pending.reason, **counts)
    if ready < desired:
        return Assessment(Health.PROGRESSING, f"{ready}/{desired} ready", **counts)
    extra = number(st.get("replicas")) - desired
    if extra > 0:  # scaling down: the pods above spec.replicas are still there
        text = f"scaling down to {desired}: {_plural(extra, 'replica')} pending termination"
        return Assessment(Health.PROGRESSING, text, **counts)
    strategy = spec(obj).get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return Assessment(Health.HEALTHY, f"{ready}/{desired} ready (OnDelete updates)", **counts)
    partition = number((strategy.get("rollingUpdate") or {}).get("partition"))
    updated = number(st.get("updatedReplicas"))
    if partition > 0:
        wanted = max(desired - partition, 0)
        if updated < wanted:
            text = f"{updated}/{wanted} updated (partition {partition})"
            return Assessment(Health.PROGRESSING, text, **counts)
        text = f"{ready}/{desired} ready, {updated} updated (partition {partition})"
        return Assessment(Health.HEALTHY, text, **counts)
    update_revision = st.get("updateRevision")
    if update_revision and st.get("currentRevision") != update_revision:
        text = f"{updated}/{desired} updated to revision {update_revision}"
        return Assessment(Health.PROGRESSING, text, **counts)
    return Assessment(Health.HEALTHY, f"{ready}/{desired} ready", **counts)


def daemon_set(obj: Obj) -> Assessment:
    st = status(obj)
    desired = number(st.get("desiredNumberScheduled"))
    available = number(st.get("numberAvailable"))
    counts = {"ready": available, "desired": desired}
    pending = _observed(obj)
    if pending is not None:
        return Assessment(pending.health, pending.reason, **counts)
    scheduled = number(st.get("currentNumberScheduled"))
    if scheduled < desired:
        return Assessment(Health.PROGRESSING, f"{scheduled}/{desired} scheduled", **counts)
    on_delete = (spec(obj).get("updateStrategy") or {}).get("type") == "OnDelete"
    updated = number(st.get("updatedNumberScheduled"))
    if not on_delete and updated < desired:
        return Assessment(Health.PROGRESSING, f"{updated}/{desired} updated", **counts)
    if available < desired:
        return Assessment(Health.PROGRESSING, f"{available}/{desired} available", **counts)
    return Assessment(Health.HEALTHY, f"{available}/{desired} available", **counts)


def replica_set(obj: Obj) -> Assessment:
    desired = number(spec(obj).get("replicas"), 1)
    available = number(status(obj).get("availableReplicas"))
    counts = {"ready": available, "desired": desired}
    pending = _observed(obj)
    if pending is not None:
        return Assessment(pending.health, pending.reason, **counts)
    failure = condition(obj, "ReplicaFailure")
    if failure is not None and failure.get("status") == "True":
        return Assessment(Health.DEGRADED, f"ReplicaFailure: {explain(failure)}", **counts)
    if available < desired:
        return Assessment(Health.PROGRESSING, f"{available}/{desired} available", **counts)
    return Assessment(Health.HEALTHY, f"{available}/{desired} available", **counts)


# Waiting reasons of a container that will not start without a change (or a fix elsewhere):
# it crashed again and again, or its image name or runtime config cannot work.
_STUCK = frozenset(
    {
        "CrashLoopBackOff",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerError",
        "RunContainerError",
    }
)
# Any other waiting reason is retried by the kubelet and often clears by itself: an image pushed
# moments after the apply or a registry hiccup (ErrImagePull, ImagePullBackOff), a Secret or
# ConfigMap created just after the pod (CreateContainerConfigError), ContainerCreating. The pod is
# Progressing with that reason; a rollout gate fails it at its progress deadline if it stays.


def _containers(st: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for key in ("initContainerStatuses", "containerStatuses"):
        for item in st.get(key) or ():
            if isinstance(item, Mapping):
                yield item


def _waiting(st: Mapping[str, Any]) -> tuple[str, bool] | None:
    """``container NAME: REASON (message)`` of the first stuck container, else of the first
    waiting one; with whether it is stuck."""
    found: tuple[str, bool] | None = None
    for item in _containers(st):
        waiting = (item.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if not reason:
            continue
        why = f"container {item.get('name')}: {reason}"
        message = " ".join(str(waiting.get("message") or "").split())
        text = f"{why} ({message})" if message else why
        if reason in _STUCK:
            return text, True
        found = found or (text, False)
    return found


def pod(obj: Obj) -> Assessment:
    """Succeeded is Healthy and Failed Degraded whatever ``restartPolicy`` (a run that ended, or
    a pod evicted or past its ``activeDeadlineSeconds``, which is never restarted)."""
    st = status(obj)
    phase = str(st.get("phase") or "Pending")
    if phase == "Succeeded":
        return Assessment(Health.HEALTHY, "Succeeded")
    if phase == "Failed":
        why = " ".join(str(st.get(k) or "") for k in ("reason", "message")).strip()
        return Assessment(Health.DEGRADED, f"Failed: {why}" if why else "Failed")
    waiting = _waiting(st)
    if waiting is not None and waiting[1]:
        return Assessment(Health.DEGRADED, waiting[0])
    if phase == "Running" and is_true(obj, "Ready"):
        return Assessment(Health.HEALTHY, "Running, ready")
    scheduled = condition(obj, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        return Assessment(Health.PROGRESSING, f"not scheduled: {explain(scheduled)}")
    if waiting is not None:
        return Assessment(Health.PROGRESSING, waiting[0])
    return Assessment(Health.PROGRESSING, f"{phase}, not ready")


def job(obj: Obj) -> Assessment:
    st = status(obj)
    for kind in ("Failed", "FailureTarget"):
        cond = condition(obj, kind)
        if cond is not None and cond.get("status") == "True":
            return Assessment(Health.DEGRADED, f"failed: {explain(cond)}")
    succeeded = number(st.get("succeeded")) + _uncounted_successes(st)
    completions = spec(obj).get("completions")
    want = f"/{number(completions)}" if completions is not None else ""
    for kind in ("Complete", "SuccessCriteriaMet"):
        if is_true(obj, kind):
            return Assessment(Health.HEALTHY, f"complete, {succeeded}{want} succeeded")
    if spec(obj).get("suspend"):
        return Assessment(Health.SUSPENDED, f"suspended, {succeeded}{want} succeeded")
    active = number(st.get("active"))
    return Assessment(Health.PROGRESSING, f"{succeeded}{want} succeeded, {active} active")


def _uncounted_successes(st: Obj) -> int:
    """Pods the Job controller saw succeed but has not yet added to ``status.succeeded``.

    The controller first records them in ``uncountedTerminatedPods`` (and may already set
    ``SuccessCriteriaMet``), then moves them to the counter once their finalizers are gone.
    """
    uncounted = st.get("uncountedTerminatedPods")
    if not isinstance(uncounted, dict):
        return 0
    pods = uncounted.get("succeeded")
    return len(pods) if isinstance(pods, list) else 0


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def cron_job(obj: Obj) -> Assessment:
    """Suspended when suspended; else Healthy, its last run told in the reason.

    A CronJob has no rollout of its own: once applied it is what Git says until its next run,
    which may be hours away. A failed last run is therefore not Degraded (kstatus counts every
    CronJob current; Argo CD's Degraded for it failed promotions for a run that predated the
    sync): it would fail a rollout gate for a run of the previous revision, which the new one
    cannot redo before the next schedule. A user's health rule for CronJob can make it Degraded.
    """
    schedule = spec(obj).get("schedule", "")
    if spec(obj).get("suspend"):
        return Assessment(Health.SUSPENDED, f"suspended (schedule {schedule})")
    st = status(obj)
    active = st.get("active") or []
    if active:
        return Assessment(Health.HEALTHY, f"{_plural(len(active), 'job')} running")
    scheduled = _time(st.get("lastScheduleTime"))
    if scheduled is None:
        return Assessment(Health.HEALTHY, f"not run yet (schedule {schedule})")
    succeeded = _time(st.get("lastSuccessfulTime"))
    if succeeded is None or succeeded < scheduled:
        last = f", last success at {st['lastSuccessfulTime']}" if succeeded is not None else ""
        text = f"the run scheduled at {st['lastScheduleTime']} did not succeed{last}"
        return Assessment(Health.HEALTHY, text)
    return Assessment(Health.HEALTHY, f"last run succeeded at {st['lastSuccessfulTime']}")
