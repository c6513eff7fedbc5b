"""The CLI's memory of settled objects between runs (a cache file per API server and context)."""

from __future__ import annotations

import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from reconciler.cli import settled
from reconciler.objects import ObjectRef

WEB = ObjectRef("apps", "Deployment", "demo", "web")
NODE = ObjectRef("", "Namespace", "", "demo")


@dataclass
class Client:
    """What the cache reads of a kube client: where it connects, and its memory."""

    server: str = "https://127.0.0.1:6443"
    context: str = "c1"
    settled: dict[ObjectRef, tuple[str, str]] = field(default_factory=dict)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECONCILER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_what_one_run_settled_the_next_run_knows() -> None:
    first = Client(settled={WEB: ("a", "v1"), NODE: ("b", "v2")})
    settled.save(cast(Any, first))

    second = Client()
    settled.load(cast(Any, second))

    assert second.settled == first.settled


def test_the_file_is_private(cache: Path) -> None:
    settled.save(cast(Any, Client(settled={WEB: ("a", "v1")})))
    (path,) = (cache / "settled").iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_another_server_or_context_or_an_old_file_starts_empty() -> None:
    settled.save(cast(Any, Client(settled={WEB: ("a", "v1")})))

    other_server, other_context, later = (
        Client(server="https://10.0.0.1"),
        Client(context="c2"),
        Client(),
    )
    settled.load(cast(Any, other_server))
    settled.load(cast(Any, other_context))
    settled.load(cast(Any, later), now=time.time() + settled.MAX_AGE + 60)

    assert other_server.settled == other_context.settled == later.settled == {}


def test_a_damaged_file_is_ignored(cache: Path) -> None:
    client = Client(settled={WEB: ("a", "v1")})
    settled.save(cast(Any, client))
    settled.path_of(cast(Any, client)).write_text("{not json")

    fresh = Client()
    settled.load(cast(Any, fresh))
    assert fresh.settled == {}


def test_a_client_that_keeps_no_memory_is_left_alone(cache: Path) -> None:
    @dataclass
    class Forgetful:
        context: str = "c1"

    settled.save(cast(Any, Forgetful()))
    settled.load(cast(Any, Forgetful()))
    assert not cache.exists()
