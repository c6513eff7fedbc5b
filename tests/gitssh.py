"""A real Git SSH server on loopback (asyncssh running ``git-upload-pack``) that accepts one
client key: for testing SSH fetches with pinned host keys without leaving the machine or
starting a system sshd."""

from __future__ import annotations

import asyncio
import os
import shlex
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import asyncssh


@dataclass(frozen=True)
class SshServer:
    port: int
    known_hosts_line: str  # "[127.0.0.1]:PORT ssh-ed25519 AAAA..."


def write_key(path: Path) -> str:
    """Write a new ed25519 private key (0600) to ``path``; return its public key line."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(path))
    path.chmod(0o600)
    return key.export_public_key().decode().strip()


async def _pump(reader: asyncio.StreamReader, write: asyncssh.SSHWriter[bytes]) -> None:
    while data := await reader.read(65536):
        write.write(data)


async def _feed(read: asyncssh.SSHReader[bytes], writer: asyncio.StreamWriter) -> None:
    try:
        while data := await read.read(65536):
            writer.write(data)
            await writer.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        writer.close()


def _handler(root: Path) -> Callable[[asyncssh.SSHServerProcess[bytes]], Awaitable[None]]:
    async def handle(process: asyncssh.SSHServerProcess[bytes]) -> None:
        # git sends: git-upload-pack '/path/repo.git'
        words = shlex.split(process.command or "")
        if len(words) != 2 or words[0] != "git-upload-pack":
            process.stderr.write(b"only git-upload-pack is served\n")
            process.exit(1)
            return
        repo = (root / words[1].lstrip("/")).resolve()
        if not repo.is_relative_to(root.resolve()):
            process.stderr.write(b"no such repository\n")
            process.exit(1)
            return
        env: dict[str, str] = {}
        if process.env.get("GIT_PROTOCOL"):
            env["GIT_PROTOCOL"] = str(process.env["GIT_PROTOCOL"])
        proc = await asyncio.create_subprocess_exec(
            "git-upload-pack",
            str(repo),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**_base_env(), **env},
        )
        assert proc.stdin and proc.stdout and proc.stderr
        feeding = asyncio.ensure_future(_feed(process.stdin, proc.stdin))
        await asyncio.gather(_pump(proc.stdout, process.stdout), _pump(proc.stderr, process.stderr))
        code = await proc.wait()
        feeding.cancel()
        with suppress(asyncio.CancelledError):
            await feeding
        process.exit(code)

    return handle


def _base_env() -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}


@contextmanager
def serve(root: Path, client_public_key: str) -> Iterator[SshServer]:
    """Serve the repositories under ``root`` (path in the URL = path under root) to the holder
    of ``client_public_key``; stop the server and its loop on exit."""
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> asyncssh.SSHAcceptor:
        return await asyncssh.create_server(
            asyncssh.SSHServer,
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(client_public_key + "\n"),
            process_factory=_handler(root),
            encoding=None,
            allow_scp=False,
            sftp_factory=None,
            agent_forwarding=False,
            x11_forwarding=False,
        )

    acceptor = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    port = acceptor.get_port()
    public = host_key.export_public_key().decode().strip()
    try:
        yield SshServer(port=port, known_hosts_line=f"[127.0.0.1]:{port} {public}")
    finally:

        async def stop() -> None:
            acceptor.close()
            await acceptor.wait_closed()

        done: Future[None] = asyncio.run_coroutine_threadsafe(stop(), loop)
        done.result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
