"""Resolve every remote chart of a loaded config repo: the chart lock of one revision.

Runs between loading and rendering (``validate``, ``render``, ``diff``, ``apply``, ``plan`` and
the daemon all call it the same way), so the render stage only ever sees local paths. A chart
that cannot be had is a located error for its app alone; every other app still renders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import structlog

from reconciler.charts.model import ChartLock, ChartSource, Pin, ResolvedChart
from reconciler.charts.resolver import ChartResolver
from reconciler.config.model import App, Repo
from reconciler.errors import ChartError

_log = structlog.get_logger("reconciler.charts")


def chart_source(app: App) -> ChartSource | None:
    """What a remote-chart app asks for; None for a chart in the config repo (or no chart)."""
    helm = app.source.helm
    if helm is None or helm.version is None:
        return None
    if helm.chart.startswith("oci://"):
        return ChartSource("oci", helm.chart, helm.chart.rsplit("/", 1)[-1], helm.version)
    if helm.repo is not None:
        return ChartSource("repo", helm.repo, helm.chart, helm.version)
    return None


def lock_charts(
    repo: Repo,
    resolver: ChartResolver,
    pins: Mapping[str, Pin] | None = None,
    apps: Iterable[str] | None = None,
) -> ChartLock:
    """Resolve the remote chart of every app (of ``apps``), reusing ``pins`` where given."""
    wanted = set(apps) if apps is not None else None
    charts: dict[str, ResolvedChart] = {}
    errors: dict[str, str] = {}
    for app in repo.apps.values():
        source = chart_source(app)
        if source is None or (wanted is not None and app.name not in wanted):
            continue
        pin = (pins or {}).get(app.name)
        where = f"{app.file}:{app.chart_line}"
        try:
            charts[app.name] = resolver.resolve(source, pin)
        except ChartError as err:
            errors[app.name] = f"{where}: {err}"
        except Exception as err:  # a bug below; still this app's error alone, not every app's
            _log.error("chart resolver failed", app=app.name, chart=str(source), exc_info=True)
            errors[app.name] = (
                f"{where}: chart {source} {source.version}: internal error "
                f"({type(err).__name__}: {err})"
            )
    return ChartLock(charts, errors)
