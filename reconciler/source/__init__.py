"""Config repo access: resolve a branch or revision to a commit and export that commit's tree.

``mirror`` follows a repo (GitSource: a private bare mirror, fetches, exported trees); ``local``
reads a local repo in place (``plan``); ``plumbing`` reads commits of any git dir; ``gitcmd``
runs git and is the only module that imports ``git``; ``redaction`` keeps credentials out of
everything shown.
"""

from reconciler.source.local import export_rev, merge_base, resolve_rev
from reconciler.source.mirror import GitSource
from reconciler.source.plumbing import CommitInfo
from reconciler.source.redaction import redact, strip_userinfo

__all__ = [
    "CommitInfo",
    "GitSource",
    "export_rev",
    "merge_base",
    "redact",
    "resolve_rev",
    "strip_userinfo",
]
