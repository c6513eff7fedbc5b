"""What a chart lookup is about and what it found: plain data, shared with the render stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class ChartSource:
    """A chart as an app asks for it: a Helm repository + name, or an ``oci://`` reference."""

    kind: Literal["repo", "oci"]
    url: str  # the repository URL, or the full oci:// reference
    chart: str
    version: str  # an exact version or a constraint

    def __str__(self) -> str:
        return f"{self.url} {self.chart}" if self.kind == "repo" else self.url


@dataclass(frozen=True)
class ResolvedChart:
    source: ChartSource
    version: str
    digest: str
    path: Path
    # Why the source was not asked, or could not answer (a cached version was used).
    note: str | None = None


@dataclass(frozen=True)
class Pin:
    """A version and digest recorded earlier (for a revision): render exactly that again."""

    version: str
    digest: str


@dataclass(frozen=True)
class ChartLock:
    """Every remote chart of one revision: app -> resolved chart, or app -> located error;
    ``unavailable``: the apps of ``errors`` whose source could not be asked (nothing cached)."""

    charts: dict[str, ResolvedChart] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    unavailable: frozenset[str] = frozenset()

    def pins(self) -> dict[str, Pin]:
        return {app: Pin(c.version, c.digest) for app, c in self.charts.items()}
