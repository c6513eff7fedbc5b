"""Requests an API server counted (``apiserver_request_total``), to check what a pass sent, and
the watches it holds open (``apiserver_longrunning_requests``)."""

from __future__ import annotations

import re
import ssl
import urllib.request
from collections import Counter

_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LONGRUNNING = re.compile(r"^apiserver_longrunning_requests\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _metrics(server: str, token: str, ca: str) -> str:
    request = urllib.request.Request(
        f"{server}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    context = ssl.create_default_context(cafile=ca)
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        return str(response.read().decode())


def open_watches(server: str, token: str, ca: str) -> Counter[str]:
    """resource -> WATCH requests the server holds open now."""
    found: Counter[str] = Counter()
    for line in _metrics(server, token, ca).splitlines():
        match = _LONGRUNNING.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        if labels.get("verb") == "WATCH" and labels.get("resource"):
            found[labels["resource"]] += int(float(match["value"]))
    return +found


def request_counts(server: str, token: str, ca: str) -> Counter[tuple[str, str, str]]:
    """(verb, dry_run, resource) -> requests so far, resource requests only (not /metrics)."""
    text = _metrics(server, token, ca)
    counts: Counter[tuple[str, str, str]] = Counter()
    for line in text.splitlines():
        found = _LINE.match(line)
        if found is None:
            continue
        labels = dict(_LABEL.findall(found["labels"]))
        if not labels.get("resource"):
            continue
        key = (labels.get("verb", ""), labels.get("dry_run", ""), labels["resource"])
        counts[key] += int(float(found["value"]))
    return counts


def delta(
    after: Counter[tuple[str, str, str]], before: Counter[tuple[str, str, str]]
) -> Counter[tuple[str, str, str]]:
    return Counter({k: after[k] - before[k] for k in after if after[k] != before[k]})
