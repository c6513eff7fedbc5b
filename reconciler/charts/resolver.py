"""Resolve a chart reference to an exact version, a digest and a cached, verified directory.

Network only when the cache cannot answer: an exact version cached before, or a version pinned
for a revision, is served without a request. A version range asks the source for its versions
(once per resolver: one per loaded revision); when the source cannot be reached, or refuses,
the highest cached version the range allows is used, and the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reconciler.charts import helmrepo
from reconciler.charts.cache import ChartCache
from reconciler.charts.credentials import ChartCredentials
from reconciler.charts.index import IndexEntry
from reconciler.charts.model import ChartSource, Pin, ResolvedChart
from reconciler.charts.oci import OciClient, parse_reference, version_of
from reconciler.charts.versions import Constraint, ConstraintError, parse_constraint, parse_version
from reconciler.errors import ChartError


@dataclass
class ChartResolver:
    cache: ChartCache
    credentials: ChartCredentials = field(default_factory=ChartCredentials)
    timeout: float = 30.0
    requests: int = 0  # index, tag-list, manifest and archive fetches, for tests and benchmarks
    _indexes: dict[str, dict[str, list[IndexEntry]]] = field(default_factory=dict, repr=False)
    _tags: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _clients: dict[str, OciClient] = field(default_factory=dict, repr=False)
    _failures: dict[str, ChartError] = field(default_factory=dict, repr=False)

    def resolve(self, source: ChartSource, pin: Pin | None = None) -> ResolvedChart:
        """The exact chart for ``source``; raises ChartError naming the chart and what failed."""
        try:
            return self._resolve(source, pin)
        except ChartError as err:
            raise ChartError(f"chart {source} {source.version}: {err}") from err

    def _resolve(self, source: ChartSource, pin: Pin | None) -> ResolvedChart:
        try:
            constraint = parse_constraint(source.version)
        except ConstraintError as err:
            raise ChartError(str(err)) from err
        if pin is not None:
            return self._pinned(source, pin)
        exact = constraint.exact
        if exact is not None:
            for version, digest in self.cache.known_versions(source.url, source.chart).items():
                cached = self.cache.chart_dir(digest)
                if cached is not None and parse_version(version) == exact:
                    return ResolvedChart(source, version, digest, cached)
        try:
            version, digest = self._lookup(source, constraint)
        except _NoMatch:
            raise  # the source answered: a version it no longer lists is not served from cache
        except ChartError as err:
            fallback = self._cached_best(source, constraint)
            if fallback is None:
                raise ChartError(f"{err} (and no cached version matches)") from err
            return ResolvedChart(*fallback, note=f"using the cached chart: {err}")
        return ResolvedChart(source, version, digest, self._download(source, version, digest))

    def _pinned(self, source: ChartSource, pin: Pin) -> ResolvedChart:
        cached = self.cache.chart_dir(pin.digest)
        if cached is not None:
            return ResolvedChart(source, pin.version, pin.digest, cached)
        _, digest = self._lookup(source, parse_constraint(f"={pin.version}"), exact=pin.version)
        if digest != pin.digest:
            raise ChartError(
                f"{pin.version} changed since it was recorded for this revision "
                f"({pin.digest}, now {digest}); refusing it"
            )
        return ResolvedChart(
            source, pin.version, digest, self._download(source, pin.version, digest)
        )

    def _cached_best(
        self, source: ChartSource, constraint: Constraint
    ) -> tuple[ChartSource, str, str, Path] | None:
        known = self.cache.known_versions(source.url, source.chart)
        usable = {v: d for v, d in known.items() if self.cache.chart_dir(d) is not None}
        version = constraint.best(usable)
        if version is None:
            return None
        path = self.cache.chart_dir(usable[version])
        assert path is not None
        return source, version, usable[version], path

    # ---- asking the source --------------------------------------------------------------------

    def _lookup(
        self, source: ChartSource, constraint: Constraint, exact: str | None = None
    ) -> tuple[str, str]:
        """(version, digest) of the best match at the source; ChartError when there is none."""
        key = f"{source.kind} {source.url}"
        if key in self._failures:  # one unreachable source is asked once per resolver
            raise self._failures[key]
        try:
            if source.kind == "repo":
                return self._lookup_repo(source, constraint)
            return self._lookup_oci(source, constraint, exact)
        except ChartError as err:
            if not isinstance(err, _NoMatch):
                self._failures[key] = err
            raise

    def _lookup_repo(self, source: ChartSource, constraint: Constraint) -> tuple[str, str]:
        if source.url not in self._indexes:
            self.requests += 1
            self._indexes[source.url] = helmrepo.fetch_index(
                source.url, self.credentials, self.timeout
            )
        entries = self._indexes[source.url].get(source.chart)
        if not entries:
            raise _NoMatch(f"the repository has no chart {source.chart!r}")
        by_version = {e.version: e for e in entries}
        version = constraint.best(by_version)
        if version is None:
            raise _NoMatch(_no_version(source, list(by_version)))
        digest = by_version[version].digest
        if digest is None:
            raise ChartError(
                f"index.yaml gives no digest for {version}; refusing an unverifiable chart"
            )
        return version, digest

    def _lookup_oci(
        self, source: ChartSource, constraint: Constraint, exact: str | None
    ) -> tuple[str, str]:
        client = self._client(source)
        exact_version = exact or (source.version.lstrip("=").strip() if constraint.exact else None)
        if exact_version is not None:
            version = exact_version
        else:
            if source.url not in self._tags:
                self.requests += 1
                self._tags[source.url] = [version_of(t) for t in client.tags()]
            found = constraint.best(self._tags[source.url])
            if found is None:
                raise _NoMatch(_no_version(source, self._tags[source.url]))
            version = found
        self.requests += 1
        digest = client.chart_digest(version)
        if digest is None:
            raise _NoMatch(f"no version {version} in the registry (no such tag)")
        return version, digest

    def _client(self, source: ChartSource) -> OciClient:
        if source.url not in self._clients:
            ref = parse_reference(source.url)
            if ref is None:
                raise ChartError("not an oci://host/path/name reference")
            entry = self.credentials.for_url(source.url)
            self._clients[source.url] = OciClient(ref, entry, self.timeout)
        return self._clients[source.url]

    def _download(self, source: ChartSource, version: str, digest: str) -> Path:
        cached = self.cache.chart_dir(digest)
        if cached is None:
            self.requests += 1
            if source.kind == "repo":
                entry = next(
                    e for e in self._indexes[source.url][source.chart] if e.version == version
                )
                archive = helmrepo.fetch_archive(source.url, entry, self.credentials, self.timeout)
            else:
                archive = self._client(source).blob(digest)
            cached = self.cache.put(archive, digest, source.chart, version)
        self.cache.remember(source.url, source.chart, version, digest)
        return cached


class _NoMatch(ChartError):
    """The source answered, and has no version the app allows (never served from the cache)."""


def _no_version(source: ChartSource, versions: list[str]) -> str:
    parsed = sorted(
        (v for v in (parse_version(t) for t in versions) if v is not None), reverse=True
    )
    newest = ", ".join(str(v) for v in parsed[:5]) or "none"
    return f"no version matches (newest: {newest})"
