"""Charts from Helm repositories and OCI registries: resolve a version, fetch, verify, cache.

Fetching is I/O and lives here, apart from the pure render stage, which only ever gets the
path of a chart already in the local cache. ``versions`` and ``index`` are pure; ``http``,
``helmrepo`` and ``oci`` talk to servers; ``cache`` is the content-addressed cache on disk;
``resolver`` puts them together; ``lock`` resolves every remote chart of a config repo.
"""
