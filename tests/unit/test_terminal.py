"""Terminal conventions: colours only on a terminal and never with NO_COLOR (commands and the
daemon's console logs), progress only on a terminal. Commands run on real pseudo-terminals."""

from __future__ import annotations

import io
import os
import pty
import select
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from reconciler.cli.logsetup import configure_logging
from reconciler.cli.terminal import StatusLine, color
from reconciler.fields import FieldChange
from reconciler.store.db import Store
from reconciler.store.rows import State, StatusRow
from tests.terminal import ANSI, run_cli

NOW = datetime.now(UTC)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A synced and a failing target (the table colours their states) and one open drift."""
    directory = tmp_path / "state"
    with Store.open(directory) as store:
        store.record_revision("a" * 40, NOW, True, None)
        store.set_status(StatusRow("web", "beijing-1", State.SYNCED, "", "a" * 40, NOW, NOW))
        store.set_status(StatusRow("api", "beijing-1", State.FAILED, "boom", "a" * 40, NOW))
        store.record_drift(
            "web",
            "beijing-1",
            "ConfigMap/web/web",
            "modified",
            [FieldChange("data.value", "1", "2", "kubectl-edit", NOW)],
            "a" * 40,
            NOW - timedelta(minutes=10),
        )
    return directory


COMMANDS = [
    ("status",),
    ("drift",),
    ("wait", "--app", "web", "--for", "synced", "--timeout", "1s"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_colour_on_a_terminal_none_with_no_color_or_when_piped(
    state: Path, command: tuple[str, ...]
) -> None:
    args = (*command, "--state-dir", str(state))
    colored = run_cli(*args, env={"NO_COLOR": None, "TERM": "xterm"})
    assert ANSI.search(colored.stdout), colored
    plain = run_cli(*args, env={"NO_COLOR": "1"})
    assert plain.stdout.strip() and not ANSI.search(plain.stdout + plain.stderr), plain
    assert plain.returncode == colored.returncode
    if command[0] == "status":  # not a terminal: one command is enough (each run costs ~2 s)
        piped = run_cli(*args, env={"NO_COLOR": None}, stdout_tty=False, stderr_tty=False)
        assert piped.stdout.strip() and not ANSI.search(piped.stdout + piped.stderr), piped
        assert piped.returncode == plain.returncode


def test_no_color_is_any_non_empty_value(monkeypatch: pytest.MonkeyPatch) -> None:
    main, _ = pty.openpty()
    with os.fdopen(main, "w") as terminal:
        monkeypatch.setenv("NO_COLOR", "")
        assert color(terminal)
        monkeypatch.setenv("NO_COLOR", "0")
        assert not color(terminal)
    assert not color(io.StringIO())


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("no_color", "ansi"), [(None, True), ("1", False)])
def test_the_daemons_console_logs_follow_no_color(
    monkeypatch: pytest.MonkeyPatch, no_color: str | None, ansi: bool
) -> None:
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    out = Terminal()
    try:
        configure_logging(out)
        log = structlog.get_logger("test")
        log.warning("drift detected", app="web", object="Deployment.apps/web/web")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("pass failed")
    finally:
        structlog.reset_defaults()
    text = out.getvalue()
    plain = ANSI.sub("", text)
    assert "drift detected" in plain and "ValueError: boom" in plain
    assert bool(ANSI.search(text)) is ansi


def test_json_logs_are_the_same_whatever_no_color_says(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = []
    for value in ("1", ""):
        monkeypatch.setenv("NO_COLOR", value)
        out = io.StringIO()
        try:
            configure_logging(out)
            structlog.get_logger("test").info("listening", port=1)
        finally:
            structlog.reset_defaults()
        lines.append(out.getvalue().replace(out.getvalue().split('"timestamp": ')[1][:30], ""))
    assert lines[0] == lines[1] and '"event": "listening"' in lines[0]


def _read_all(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunks.append(os.read(fd, 4096))
        except OSError:  # EIO: the other side is closed and everything was read
            break
    os.close(fd)
    return b"".join(chunks).decode()


def test_a_status_line_on_a_terminal_is_rewritten_in_place_and_cleared() -> None:
    main, secondary = pty.openpty()
    with os.fdopen(secondary, "w") as terminal:
        now = ["building kube-apiserver"]
        clock = iter([0.0, 0.0, 42.0, 43.0])
        with StatusLine(lambda: now[0], terminal, interval=60, clock=lambda: next(clock)) as line:
            now[0] = "building kwok"
            line.refresh()
    written = _read_all(main)
    assert written.startswith("\r[  0s] building kube-apiserver")
    assert "\r[ 42s] building kwok" in written
    assert written.endswith("\r" + " " * len("[ 42s] building kwok") + "\r")
    assert not ANSI.search(written)


def test_a_status_line_writes_nothing_when_not_a_terminal() -> None:
    out = io.StringIO()
    with StatusLine(lambda: "building", out, interval=0.01) as line:
        line.refresh()
    assert out.getvalue() == ""


def test_dev_provision_shows_progress_on_a_terminal_only() -> None:
    on_terminal = run_cli("dev", "provision", stdout_tty=False)
    assert on_terminal.returncode == 0, on_terminal
    assert "] checking pinned binaries" in on_terminal.stderr
    piped = run_cli("dev", "provision", stdout_tty=False, stderr_tty=False)
    assert piped.returncode == 0 and piped.stderr == "", piped
    assert piped.stdout == on_terminal.stdout
