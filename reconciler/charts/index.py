"""A Helm repository's ``index.yaml``: chart name -> versions with digest and download URLs.

Pure: parses text already fetched. Only what resolving and verifying needs is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import yaml


class IndexFormatError(ValueError):
    """The index is not a Helm repository index."""


@dataclass(frozen=True)
class IndexEntry:
    name: str
    version: str  # as written in the index
    digest: str | None  # "sha256:<hex>" of the .tgz, when the index carries one
    urls: tuple[str, ...]

    def download_url(self, repo_url: str) -> str | None:
        """The first URL, resolved against the repository URL when relative."""
        if not self.urls:
            return None
        return urljoin(repo_url.rstrip("/") + "/", self.urls[0])


def parse_index(text: str | bytes) -> dict[str, list[IndexEntry]]:
    """Chart name -> entries; raises IndexFormatError when the text is not an index."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # big indexes parse 10x faster
    try:
        doc: Any = yaml.load(text, Loader=loader)
    except yaml.YAMLError as err:
        raise IndexFormatError(f"index.yaml is not valid YAML: {err}".splitlines()[0]) from err
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), dict):
        raise IndexFormatError("index.yaml has no 'entries' mapping: not a Helm repository index")
    out: dict[str, list[IndexEntry]] = {}
    for name, versions in doc["entries"].items():
        if not isinstance(versions, list):
            continue
        entries = []
        for item in versions:
            if not isinstance(item, dict) or item.get("version") is None:
                continue
            urls = item.get("urls")
            digest = item.get("digest")
            entries.append(
                IndexEntry(
                    name=str(name),
                    version=str(item["version"]),
                    digest=_digest(digest) if isinstance(digest, str) else None,
                    urls=tuple(str(u) for u in urls) if isinstance(urls, list) else (),
                )
            )
        out[str(name)] = entries
    return out


def _digest(value: str) -> str:
    """Index digests are bare sha256 hex; keep them in the ``sha256:<hex>`` form OCI uses."""
    value = value.strip().lower()
    return value if ":" in value else f"sha256:{value}"
