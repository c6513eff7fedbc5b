"""The daemon's HTTP side: probes, metrics, a read-only fleet page and its JSON API.

``app`` (Starlette routes) reads through ``snapshot`` (one cached read of the store), shaped by
``model`` (pure: the matrix, grouping, filters); ``server`` runs it with uvicorn on a thread,
with the client deadlines of ``deadline``; ``static/`` holds the page's own files.
"""
