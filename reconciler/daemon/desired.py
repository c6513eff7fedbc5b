"""What each target should run: a loaded, rendered revision, with the previous good render kept
for targets whose render failed (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from reconciler.config.model import Repo
from reconciler.daemon.follow import Loaded
from reconciler.daemon.status import short
from reconciler.placement import place
from reconciler.render import TargetResult
from reconciler.store.rows import State, StatusRow

TargetKey = tuple[str, str]  # (app, cluster)


@dataclass(frozen=True)
class Desired:
    """What the clusters should run: a loaded, rendered revision (or the last good one)."""

    generation: int
    revision: str  # the revision being applied
    head: str  # the newest revision seen (differs when it is invalid)
    repo: Repo
    targets: Mapping[str, tuple[TargetResult, ...]]  # per non-paused cluster
    revisions: Mapping[TargetKey, str | None]  # where each target's objects come from
    invalid: Mapping[TargetKey, str]  # targets whose newest config did not render
    paused: frozenset[TargetKey] = frozenset()
    repo_error: str | None = None  # the head revision does not load: why

    def problem(self, key: TargetKey) -> str | None:
        return self.invalid.get(key) or self.repo_error


def build_desired(loaded: Loaded, previous: Desired | None, generation: int) -> Desired:
    """Desired state from a loaded revision; failed renders keep their previous good render."""
    repo = loaded.repo
    assert repo is not None
    kept: dict[TargetKey, tuple[TargetResult, str | None]] = {}
    if previous is not None:
        for results in previous.targets.values():
            for t in results:
                if t.rendered is not None:
                    kept[(t.app, t.cluster)] = (t, previous.revisions.get((t.app, t.cluster)))
    targets: dict[str, list[TargetResult]] = {
        name: [] for name, cluster in repo.clusters.items() if not cluster.paused
    }
    revisions: dict[TargetKey, str | None] = {}
    invalid: dict[TargetKey, str] = {}
    for target in loaded.rendered:
        key = (target.app, target.cluster)
        if target.cluster not in targets:
            continue
        if target.error is None:
            targets[target.cluster].append(target)
            revisions[key] = loaded.sha
            continue
        good = kept.get(key)
        if good is not None:
            targets[target.cluster].append(good[0])
            revisions[key] = good[1]
            invalid[key] = f"{target.error}; {short(good[1])} stays applied"
        else:
            targets[target.cluster].append(target)
            revisions[key] = loaded.last_good.get(target.app)
            invalid[key] = str(target.error)
    paused = frozenset(
        (app.name, p.cluster)
        for app in repo.apps.values()
        for p in place(repo, app)
        if p.placed and p.paused
    )
    return Desired(
        generation=generation,
        revision=loaded.sha,
        head=loaded.sha,
        repo=repo,
        targets={name: tuple(ts) for name, ts in targets.items()},
        revisions=revisions,
        invalid=invalid,
        paused=paused,
    )


# ---- status rows a decision about desired state implies (pure; ``record`` writes them) ------


def timed_out_rows(desired: Desired, cluster: str, message: str, now: datetime) -> list[StatusRow]:
    """The cluster's targets after its pass overran: failed, or still invalid (and why)."""
    rows = []
    for target in desired.targets.get(cluster, ()):
        key = (target.app, cluster)
        problem = desired.problem(key)
        rows.append(
            StatusRow(
                app=target.app,
                cluster=cluster,
                state=State.INVALID_CONFIG if problem else State.FAILED,
                message=f"{problem} (meanwhile: {message})" if problem else message,
                revision=desired.revisions.get(key),
                updated_at=now,
            )
        )
    return rows


def crashed_rows(desired: Desired, cluster: str, message: str, now: datetime) -> list[StatusRow]:
    """The cluster's targets after its pass crashed (a bug): failed with ``message``."""
    return [
        StatusRow(
            target.app,
            cluster,
            State.FAILED,
            message,
            desired.revisions.get((target.app, cluster)),
            now,
        )
        for target in desired.targets.get(cluster, ())
    ]


def paused_rows(
    desired: Desired, previous: Mapping[TargetKey, StatusRow], now: datetime
) -> list[StatusRow]:
    """Targets on paused clusters: shown paused, with the revision they last ran."""
    rows = []
    for app, cluster in sorted(desired.paused):
        old = previous.get((app, cluster))
        rows.append(
            StatusRow(
                app=app,
                cluster=cluster,
                state=State.PAUSED,
                message="cluster paused (spec.paused: true): nothing is applied or pruned",
                revision=old.revision if old is not None else None,
                updated_at=now,
            )
        )
    return rows
