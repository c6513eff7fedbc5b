"""What health is: the six states, one object's health, one target's health (pure data)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.objects import ObjectRef


class Health(StrEnum):
    """Does it work? Separate from sync state (does live match Git?)."""

    HEALTHY = "Healthy"
    SUSPENDED = "Suspended"  # deliberately not running: a paused Deployment, a suspended CronJob
    PROGRESSING = "Progressing"  # not there yet, still expected to get there
    UNKNOWN = "Unknown"  # cannot tell: a health rule failed, or the object was not read
    MISSING = "Missing"  # desired, but not on the cluster
    DEGRADED = "Degraded"  # failed, or will not get there without help

    @property
    def severity(self) -> int:
        """Order for "the worst object decides": Degraded is the worst."""
        return _SEVERITY[self]

    @property
    def final(self) -> bool:
        """A state that stays until something changes the object (no re-check needed soon)."""
        return self in (Health.HEALTHY, Health.SUSPENDED, Health.DEGRADED)


_SEVERITY = {h: i for i, h in enumerate(Health)}


@dataclass(frozen=True)
class Assessment:
    """A health with a one-line reason; ``ready``/``desired`` count pods of workloads.

    What a rule says of one live object; an object's and a target's health say the same and more.
    """

    health: Health
    reason: str
    ready: int | None = None
    desired: int | None = None


@dataclass(frozen=True)
class ObjectHealth(Assessment):
    """One object's health with a one-line reason, e.g. ``1/3 available (...)``."""

    ref: ObjectRef = field(kw_only=True)

    @classmethod
    def of(cls, ref: ObjectRef, assessment: Assessment) -> ObjectHealth:
        a = assessment
        return cls(a.health, a.reason, a.ready, a.desired, ref=ref)

    def describe(self) -> str:
        """``Deployment.apps/demo/hello-world 1/3 available (ProgressDeadlineExceeded)``."""
        return f"{self.ref} {self.reason}".rstrip()

    def __str__(self) -> str:
        return f"{self.health}: {self.describe()}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "group": self.ref.group,
            "kind": self.ref.kind,
            "namespace": self.ref.namespace,
            "name": self.ref.name,
            "health": str(self.health),
            "reason": self.reason,
        }
        if self.desired is not None:
            out["ready"], out["desired"] = self.ready, self.desired
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ObjectHealth:
        ref = ObjectRef(raw["group"], raw["kind"], raw["namespace"], raw["name"])
        return cls(
            Health(raw["health"]), raw["reason"], raw.get("ready"), raw.get("desired"), ref=ref
        )


@dataclass(frozen=True)
class TargetHealth(Assessment):
    """One app on one cluster: the worst object's health, with that object and its reason.

    ``ready``/``desired`` sum the pods of the target's workloads (``None`` without workloads);
    ``objects`` holds every assessed object, worst first.
    """

    objects: tuple[ObjectHealth, ...] = field(default=())

    def __str__(self) -> str:
        return f"{self.health}: {self.reason}" if self.reason else str(self.health)

    @property
    def counts(self) -> dict[Health, int]:
        out: dict[Health, int] = {}
        for obj in self.objects:
            out[obj.health] = out.get(obj.health, 0) + 1
        return out

    @property
    def ready_text(self) -> str:
        """``3/3`` pods ready, else ``2/2`` objects healthy; ``-`` with nothing to count."""
        if self.desired is not None:
            return f"{self.ready}/{self.desired}"
        if self.objects:
            healthy = sum(1 for o in self.objects if o.health is Health.HEALTHY)
            return f"{healthy}/{len(self.objects)}"
        return "-"

    def to_json(self) -> dict[str, Any]:
        return {
            "health": str(self.health),
            "reason": self.reason,
            "ready": self.ready,
            "desired": self.desired,
            "objects": [o.to_json() for o in self.objects],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TargetHealth:
        return cls(
            Health(raw["health"]),
            raw.get("reason", ""),
            raw.get("ready"),
            raw.get("desired"),
            tuple(ObjectHealth.from_json(o) for o in raw.get("objects") or ()),
        )


def worst(objects: Iterable[ObjectHealth]) -> tuple[ObjectHealth, ...]:
    """Worst first; ties in apply order, so the reason shown is stable."""
    return tuple(sorted(objects, key=lambda o: (-o.health.severity, o.ref.sort_key())))
