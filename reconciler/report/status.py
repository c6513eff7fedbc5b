"""Every target's sync and health state: a table (with the notes of targets that need
attention) and the status document (JSON, and the web API's data)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.text import Text

from reconciler.errors import without_target
from reconciler.health import Health
from reconciler.presentation import CLUSTERS, format_time, once_per_message
from reconciler.report.formats import HEALTH_STYLE, NO_TARGET, STATE_STYLE, printed, table
from reconciler.report.source import source_json
from reconciler.rollout.codec import normalized
from reconciler.store.rows import (
    HealthRow,
    Pin,
    RevisionRow,
    RolloutRow,
    SourceStatus,
    State,
    StatusRow,
)

_QUIET_STATES = {State.SYNCED, State.PAUSED}


def _sorted_status(rows: Iterable[StatusRow]) -> list[StatusRow]:
    return sorted(rows, key=lambda r: (r.app, r.cluster))


def status_table(
    rows: Sequence[StatusRow],
    color: bool,
    health: Mapping[tuple[str, str], HealthRow] | None = None,
    replicas: Mapping[tuple[str, str], str] | None = None,
    every_message: bool = False,
) -> str:
    """One line per target (app × cluster), sync and health side by side, like ``vela status``:
    ``web  beijing-1  Synced  Healthy  3/3  1a2b3c4d5e6f``; then one line per target that needs
    attention, with its message or its health's reason, the same one said once for all its
    clusters (with ``every_message``, the messages of targets in sync too: what the last pass
    did). With ``replicas`` (status read from the
    management cluster), a last column says which replica published each target."""
    if not rows:
        return "No status recorded yet.\n"
    judged = health or {}
    ordered = _sorted_status(rows)
    headers = ["APP", "CLUSTER", "SYNC", "HEALTH", "READY", "REVISION"]
    if replicas is not None:
        headers.append("REPLICA")
    plain: list[list[str]] = []
    for r in ordered:
        found = judged.get((r.app, r.cluster))
        plain.append(
            [
                r.app,
                r.cluster,
                str(r.state),
                str(found.health.health) if found is not None else NO_TARGET,
                found.health.ready_text if found is not None else NO_TARGET,
                (r.revision or NO_TARGET)[:12],
                *([replicas.get((r.app, r.cluster), NO_TARGET)] if replicas is not None else []),
            ]
        )

    def style(r: StatusRow, line: list[Text]) -> None:
        line[2] = _state_text(r.state)
        found = judged.get((r.app, r.cluster))
        line[3].stylize(HEALTH_STYLE.get(found.health.health, "") if found is not None else "dim")

    said: list[tuple[str, str]] = []  # (template, cluster): the same note once for all clusters
    for r in ordered:
        if r.message and (every_message or r.state not in _QUIET_STATES):
            message = without_target(r.message, r.app, r.cluster)
            said.append((f"{r.app} on {CLUSTERS}: {r.state}: {message}", r.cluster))
        found = judged.get((r.app, r.cluster))
        if found is not None and found.health.health is not Health.HEALTHY:
            said.append((f"{r.app} on {CLUSTERS}: {found.health}", r.cluster))
    notes = once_per_message(said)
    text = table(headers, ordered, plain, color, style)
    return text + ("\n" + "\n".join(notes) + "\n" if notes else "")


def _health_json(row: HealthRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        **row.health.to_json(),
        "revision": row.revision,
        "assessed_at": format_time(row.assessed_at),
        "since": format_time(row.since),
    }


def _state_text(state: State | None) -> Text:
    if state is None:
        return Text(NO_TARGET, style="dim")
    return Text(str(state), style=STATE_STYLE.get(state, ""))


def invalid_targets(rows: Iterable[StatusRow]) -> int:
    """How many targets do not run the newest config because it does not load or render for
    them (InvalidConfig): a valid revision can still fail to render on some targets."""
    return sum(1 for r in rows if r.state is State.INVALID_CONFIG)


def status_document(
    rows: Sequence[StatusRow],
    source: SourceStatus | None = None,
    revision: RevisionRow | None = None,
    daemon_running: bool | None = None,
    health: Mapping[tuple[str, str], HealthRow] | None = None,
    rollouts: Sequence[RolloutRow] = (),
    pins: Sequence[Pin] = (),
    replicas: Mapping[tuple[str, str], str] | None = None,
) -> dict[str, Any]:
    """``{"source": …, "revision": …, "targets": [...], "rollouts": [...], "pins": [...]}``:
    how fetching the repo goes, the newest revision seen (null before the first fetch), the
    rows by app and cluster, each with its ``health`` (null until judged), each app's newest
    rollout and the pins; with ``replicas``, each target also names the replica that published
    it. :func:`status_json` prints it; the web API serves the same."""
    health = health or {}
    targets = [
        {
            "app": r.app,
            "cluster": r.cluster,
            "state": str(r.state),
            "message": r.message,
            "revision": r.revision,
            "updated_at": format_time(r.updated_at),
            "last_synced_at": format_time(r.last_synced_at) or None,
            "health": _health_json(health.get((r.app, r.cluster))),
            **({"replica": replicas.get((r.app, r.cluster))} if replicas is not None else {}),
        }
        for r in _sorted_status(rows)
    ]
    newest = None
    if revision is not None:
        newest = {
            "sha": revision.sha,
            "seen_at": format_time(revision.seen_at),
            "valid": revision.valid,
            "error": revision.error,
            "invalid_targets": invalid_targets(rows),
            "total_targets": len(rows),
        }
    return {
        "daemon_running": daemon_running,
        "source": source_json(source),
        "revision": newest,
        "targets": targets,
        "rollouts": [normalized(r.data) for r in sorted(rollouts, key=lambda r: r.app)],
        "pins": [
            {
                "app": p.app,
                "cluster": p.cluster,
                "revision": p.revision,
                "user": p.user,
                "at": format_time(p.at),
            }
            for p in sorted(pins, key=lambda p: (p.app, p.cluster))
        ],
    }


status_json = printed(status_document)
