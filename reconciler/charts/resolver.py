"""Resolve a chart reference to an exact version, a digest and a cached, verified directory.

Network only when the cache cannot answer: an exact version cached before, or a version pinned
for a revision, is served without a request. A version range asks the source for its versions
(once per resolver: one per loaded revision); when the source cannot be reached, or refuses,
the highest cached version the range allows is used, and the result says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from reconciler.charts import helmrepo, http
from reconciler.charts.cache import ChartCache
from reconciler.charts.credentials import ChartCredentials
from reconciler.charts.index import IndexEntry
from reconciler.charts.model import ChartSource, Pin, ResolvedChart
from reconciler.charts.oci import OciClient, parse_reference, version_of
from reconciler.charts.versions import Constraint, ConstraintError, parse_constraint, parse_version
from reconciler.errors import ChartError

T = TypeVar("T")


@dataclass(frozen=True)
class _Found:
    """The version a source offers for a lookup, its digest, and (Helm) the entry to download."""

    version: str
    digest: str
    entry: IndexEntry | None = None


@dataclass
class ChartResolver:
    cache: ChartCache
    credentials: ChartCredentials = field(default_factory=ChartCredentials)
    timeout: float = 30.0
    requests: int = 0  # index, tag-list, manifest and archive fetches, for tests and benchmarks
    _indexes: dict[str, dict[str, list[IndexEntry]]] = field(default_factory=dict, repr=False)
    _tags: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _clients: dict[str, OciClient] = field(default_factory=dict, repr=False)
    # What failed about a source as a whole (unreachable, credentials refused, no index, no tag
    # list): every chart and version of it fails the same way without asking again.
    _failures: dict[str, ChartError] = field(default_factory=dict, repr=False)
    # (OCI reference, version) -> the chart digest its manifest names, None (no such tag), or
    # what was wrong with that one manifest (which fails that version only).
    _digests: dict[tuple[str, str], str | ChartError | None] = field(
        default_factory=dict, repr=False
    )

    def resolve(self, source: ChartSource, pin: Pin | None = None) -> ResolvedChart:
        """The exact chart for ``source``; raises ChartError naming the chart and what failed."""
        try:
            return self._resolve(source, pin)
        except ChartError as err:
            raise ChartError(f"chart {source} {source.version}: {err}") from err

    def _resolve(self, source: ChartSource, pin: Pin | None) -> ResolvedChart:
        constraint = _constraint(source.version)
        if pin is not None:
            return self._pinned(source, pin)
        exact = constraint.exact
        if exact is not None:
            for version, digest in self.cache.known_versions(source.url, source.chart).items():
                cached = self.cache.chart_dir(digest)
                if cached is not None and parse_version(version) == exact:
                    return ResolvedChart(source, version, digest, cached)
        try:
            found = self._lookup(source, constraint)
        except _NoMatch:
            raise  # the source answered: a version it no longer lists is not served from cache
        except ChartError as err:
            return self._fallback(source, constraint, err)
        try:
            path = self._download(source, found)
        except http.Unreachable as err:  # the network failed, not the chart: as for the lookup
            return self._fallback(source, constraint, err)
        return ResolvedChart(source, found.version, found.digest, path)

    def _pinned(self, source: ChartSource, pin: Pin) -> ResolvedChart:
        cached = self.cache.chart_dir(pin.digest)
        if cached is not None:
            return ResolvedChart(source, pin.version, pin.digest, cached)
        found = self._lookup(source, _constraint(f"={pin.version}"), exact=pin.version)
        if found.digest != pin.digest:
            raise ChartError(
                f"{pin.version} changed since it was recorded for this revision "
                f"({pin.digest}, now {found.digest}); refusing it"
            )
        return ResolvedChart(source, pin.version, found.digest, self._download(source, found))

    def _fallback(
        self, source: ChartSource, constraint: Constraint, err: ChartError
    ) -> ResolvedChart:
        """The best cached version ``constraint`` allows, since the source could not answer."""
        known = self.cache.known_versions(source.url, source.chart)
        usable = {v: d for v, d in known.items() if self.cache.chart_dir(d) is not None}
        version = constraint.best(usable)
        if version is None:
            raise ChartError(f"{err} (and no cached version matches)") from err
        path = self.cache.chart_dir(usable[version])
        assert path is not None
        return ResolvedChart(
            source, version, usable[version], path, f"using the cached chart: {err}"
        )

    # ---- asking the source --------------------------------------------------------------------

    def _lookup(
        self, source: ChartSource, constraint: Constraint, exact: str | None = None
    ) -> _Found:
        """The best match at the source; ChartError when there is none."""
        if source.kind == "repo":
            return self._lookup_repo(source, constraint)
        return self._lookup_oci(source, constraint, exact)

    def _of_source(self, source: ChartSource, ask: Callable[[], T]) -> T:
        """``ask()``, whose failure is one of the whole source: kept, and raised for every chart
        and version of it for the rest of this resolver (one unreachable source is asked once)."""
        key = f"{source.kind} {source.url}"
        if key in self._failures:
            raise self._failures[key]
        try:
            return ask()
        except ChartError as err:
            self._failures[key] = err
            raise

    def _lookup_repo(self, source: ChartSource, constraint: Constraint) -> _Found:
        if source.url not in self._indexes:

            def fetch() -> dict[str, list[IndexEntry]]:
                self.requests += 1
                return helmrepo.fetch_index(source.url, self.credentials, self.timeout)

            self._indexes[source.url] = self._of_source(source, fetch)
        entries = self._indexes[source.url].get(source.chart)
        if not entries:
            raise _NoMatch(f"the repository has no chart {source.chart!r}")
        by_version: dict[str, IndexEntry] = {}
        for entry in entries:
            by_version.setdefault(
                entry.version, entry
            )  # a version listed twice: the first, as Helm
        version = constraint.best(by_version)
        if version is None:
            raise _NoMatch(_no_version(source, list(by_version)))
        entry = by_version[version]
        if entry.digest is None:  # about this version alone: other charts of the index still work
            raise ChartError(
                f"index.yaml gives no digest for {version}; refusing an unverifiable chart"
            )
        return _Found(version, entry.digest, entry)

    def _lookup_oci(self, source: ChartSource, constraint: Constraint, exact: str | None) -> _Found:
        client = self._of_source(source, lambda: self._client(source))
        literal = exact or (
            source.version.strip().lstrip("=").strip() if constraint.exact else None
        )
        if literal is not None:
            digest = self._chart_digest(source, client, literal)
            if digest is not None:
                return _Found(literal, digest)
            # No tag spelled so (v1.0.0 for 1.0.0, or the other way): as Helm, match the
            # version as a constraint against the tag list.
        tags = self._of_source(source, lambda: self._tag_versions(source, client))
        version = constraint.best(tags)
        if version is None:
            if literal is not None:
                raise _NoMatch(f"no version {literal} in the registry (no such tag)")
            raise _NoMatch(_no_version(source, tags))
        digest = self._chart_digest(source, client, version)
        if digest is None:
            raise _NoMatch(f"no version {version} in the registry (no such tag)")
        return _Found(version, digest)

    def _tag_versions(self, source: ChartSource, client: OciClient) -> list[str]:
        if source.url not in self._tags:
            self.requests += 1
            self._tags[source.url] = [version_of(t) for t in client.tags()]
        return self._tags[source.url]

    def _chart_digest(self, source: ChartSource, client: OciClient, version: str) -> str | None:
        """The digest of ``version``'s chart layer (None: no such tag), asked once per resolver.

        The registry unreachable or refusing the credentials fails the whole source; anything
        wrong with this one manifest fails this version only.
        """
        key = (source.url, version)
        if key not in self._digests:

            def fetch() -> str | ChartError | None:
                self.requests += 1
                try:
                    return client.chart_digest(version)
                except (http.Unreachable, http.Refused):
                    raise  # the whole source (kept by _of_source)
                except ChartError as err:
                    return err  # this manifest only

            self._digests[key] = self._of_source(source, fetch)
        found = self._digests[key]
        if isinstance(found, ChartError):
            raise found
        return found

    def _client(self, source: ChartSource) -> OciClient:
        if source.url not in self._clients:
            ref = parse_reference(source.url)
            if ref is None:
                raise ChartError("not an oci://host/path/name reference")
            entry = self.credentials.for_url(source.url)
            self._clients[source.url] = OciClient(ref, entry, self.timeout)
        return self._clients[source.url]

    def _download(self, source: ChartSource, found: _Found) -> Path:
        cached = self.cache.chart_dir(found.digest)
        if cached is None:
            self.requests += 1
            if found.entry is not None:
                archive = helmrepo.fetch_archive(
                    source.url, found.entry, self.credentials, self.timeout
                )
            else:
                archive = self._client(source).blob(found.digest)
            cached = self.cache.put(archive, found.digest, source.chart, found.version)
        self.cache.remember(source.url, source.chart, found.version, found.digest)
        return cached


class _NoMatch(ChartError):
    """The source answered, and has no version the app allows (never served from the cache)."""


def _constraint(text: str) -> Constraint:
    try:
        return parse_constraint(text)
    except ConstraintError as err:
        raise ChartError(str(err)) from err


def _no_version(source: ChartSource, versions: list[str]) -> str:
    parsed = sorted(
        (v for v in (parse_version(t) for t in versions) if v is not None), reverse=True
    )
    newest = ", ".join(str(v) for v in parsed[:5]) or "none"
    return f"no version matches (newest: {newest})"
