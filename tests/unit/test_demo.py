"""``make demo``: the port check before anything starts, and DEMO_PORT / DEMO_DIR reaching the
daemon (the Makefile's command, then the demo's daemon command line)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.main import cli
from reconciler.devenv import demo
from reconciler.devenv.controlplane import DevEnvError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port of 127.0.0.1 this test holds (bound and listening) until it ends."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_taken_port_is_one_line_naming_the_port_and_what_to_set(held_port: int) -> None:
    with pytest.raises(DevEnvError) as raised:
        demo.check_port(held_port)
    message = str(raised.value)
    assert message == (
        f"port {held_port} on 127.0.0.1 is taken (the demo's page and /metrics): set another "
        f"with DEMO_PORT, e.g. make demo DEMO_PORT={held_port + 1}"
    )
    assert "\n" not in message


def test_a_free_port_passes_the_check() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as finder:
        finder.bind(("127.0.0.1", 0))
        port = int(finder.getsockname()[1])
    demo.check_port(port)  # released above: free again


def test_the_demo_stops_on_a_taken_port_before_starting_anything(
    held_port: int, tmp_path: Path
) -> None:
    folder = tmp_path / "demo"
    result = CliRunner().invoke(
        cli, ["dev", "demo", "--port", str(held_port), "--dir", str(folder)]
    )
    assert result.exit_code == 2, result.output
    assert f"port {held_port} on 127.0.0.1 is taken" in result.output
    assert "DEMO_PORT" in result.output
    assert not folder.exists()  # no cluster, no repo, no state: nothing was started


def test_make_demo_passes_the_port_and_the_folder_to_the_demo(tmp_path: Path) -> None:
    folder = tmp_path / "my demo dir"
    out = subprocess.run(
        ["make", "-n", "demo", "DEMO_PORT=19465", f"DEMO_DIR={folder}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f'reconciler dev demo --port 19465 --dir "{folder}" --sample sample-repo' in out
    down = subprocess.run(
        ["make", "-n", "demo-down", f"DEMO_DIR={folder}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f'reconciler dev down --dir "{folder}/devenv"' in down


def test_the_daemon_runs_on_the_demo_port_with_the_demo_folder(tmp_path: Path) -> None:
    paths = demo.Paths(tmp_path / "d")
    argv = demo.daemon_argv("/venv/bin/reconciler", paths, 19465, "/k/kubeconfig")
    assert argv[:2] == ["/venv/bin/reconciler", "run"]
    options = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert options["--listen"] == "127.0.0.1:19465"
    assert options["--repo"] == str(tmp_path / "d" / "repo")
    assert options["--state-dir"] == str(tmp_path / "d" / "state")
    assert options["--kubeconfig"] == "/k/kubeconfig"
    assert paths.devenv == tmp_path / "d" / "devenv"


def test_the_printed_commands_use_absolute_paths_and_the_port(tmp_path: Path) -> None:
    paths = demo.Paths(Path("relative/demo"))
    lines = demo.instructions("/venv/bin/reconciler", paths, 19465, "/k/kubeconfig")
    text = "\n".join(lines)
    assert str(paths.state).startswith("/") and f"--state-dir {paths.state}" in text
    assert "curl -s 127.0.0.1:19465/metrics" in text
    assert "export KUBECONFIG=/k/kubeconfig" in text
    for line in lines:
        if line.startswith("  /") or line.startswith("  curl") or line.startswith("  export"):
            continue
        assert not line.startswith("  reconciler"), line  # every command names the binary


def test_the_sample_repo_is_copied_and_committed_once(tmp_path: Path) -> None:
    sample = tmp_path / "sample"
    (sample / "apps").mkdir(parents=True)
    (sample / "apps" / "a.yaml").write_text("x: 1\n")
    paths = demo.Paths(tmp_path / "d")
    assert demo.prepare_repo(paths, sample)
    log = subprocess.run(
        ["git", "-C", str(paths.repo), "log", "--format=%s"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert log.split() == ["sample-repo"]
    (paths.repo / "apps" / "a.yaml").write_text("x: 2\n")  # the user's work is kept
    assert not demo.prepare_repo(paths, sample)
    assert (paths.repo / "apps" / "a.yaml").read_text() == "x: 2\n"


def test_kubeconfig_without_clusters_names_the_dir_and_where_the_demo_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_DEMO_DIR", str(tmp_path / "demo"))
    result = CliRunner().invoke(cli, ["dev", "kubeconfig", "--dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: no local clusters running in {tmp_path / 'none'}: run `reconciler dev up`, or "
        f"give the --dir they run in (make demo's: --dir {tmp_path / 'demo' / 'devenv'})\n"
    )
