"""Several replicas: whether this replica's head is behind an app's rollout.

Each replica fetches on its own, so the one that takes over driving an app (its driver died, the
app moved) may not have fetched the commit the previous driver decided the app's rollout on.
Deciding at its older head would supersede the newer rollout with an older commit, rolling the
clusters back until its next fetch. So it waits: the app stays pending until its head is not
behind (``rollout.begin.may_supersede``), which it learns from its own Git (``ancestry``: whether
a commit is in another's history; None when not fetched here) and from its fetches: a fetch
started after it learned of that revision that still returns its head says the branch really is
there (taken back by a force-push). Main thread only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from structlog.typing import FilteringBoundLogger

from reconciler.rollout.begin import may_supersede

Ancestry = Callable[[str, str], bool | None]  # (older, newer): older in newer's history?


class HeadLag:
    """See the module docstring: the fetches this replica made, what it learned when."""

    def __init__(self, ancestry: Ancestry, log: FilteringBoundLogger) -> None:
        self._ancestry = ancestry
        self.log = log
        self._started = 0  # fetches started so far (one at a time)
        self._fetched: tuple[str, int] | None = None  # the newest fetch: its head, its number
        self._learned: dict[str, int] = {}  # revision -> fetches started when it was learned
        self._answers: dict[tuple[str, str], bool | None] = {}
        self._told: set[tuple[str, str, str]] = set()

    def fetch_started(self) -> None:
        self._started += 1

    def fetched(self, head: str) -> None:
        """The fetch started last returned ``head``."""
        self._fetched = (head, self._started)
        self.learn((head,))
        # Commits not known before may have arrived with it.
        self._answers = {k: v for k, v in self._answers.items() if v is not None}

    def learn(self, revisions: Iterable[str]) -> None:
        """Revisions this replica read of (another driver's decisions, its own heads)."""
        for revision in revisions:
            self._learned.setdefault(revision, self._started)

    def keep(self, revisions: Iterable[str]) -> None:
        """Forget all but these revisions (and the newest fetch's) as commits go by."""
        kept = set(revisions) | ({self._fetched[0]} if self._fetched else set())
        self._learned = {r: n for r, n in self._learned.items() if r in kept}
        self._answers = {k: v for k, v in self._answers.items() if k[1] in kept}
        self._told = {t for t in self._told if t[2] in kept}

    def behind(self, app: str, head: str, decided: str | None) -> bool:
        """Whether ``app``, whose rollout was decided last at ``decided``, waits for this
        replica's head to move past ``head`` before it decides (said once at info)."""
        if decided is None or decided == head:
            return False
        self.learn((decided,))
        fetched = self._fetched  # a fetch started since it learned of ``decided`` says ``head``
        refetched = fetched is not None and (
            fetched[0] == head and fetched[1] > self._learned[decided]
        )
        behind = None if refetched else self._behind(head, decided)
        if may_supersede(behind, refetched):
            return False
        if (app, head, decided) not in self._told:
            self._told.add((app, head, decided))
            self.log.info(
                "rollout waits for this replica's next fetch: its head is behind the rollout",
                app=app,
                revision=head[:12],
                decided=decided[:12],
                known=behind is not None,
            )
        return True

    def _behind(self, head: str, decided: str) -> bool | None:
        """Whether ``head`` is in ``decided``'s history (None: not known here), asked once."""
        key = (head, decided)
        if key not in self._answers:
            self._answers[key] = self._ancestry(head, decided)
        return self._answers[key]
