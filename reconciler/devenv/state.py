"""The recorded local control plane (``devenv.json``): each cluster's port, PIDs and logs,
etcd's, the admin token; ``DevEnvError``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.toolchain import cache_root

STATE_FILE = "devenv.json"


class DevEnvError(ReconcilerError):
    """The local control plane could not be started or stopped."""


@dataclass
class ClusterInfo:
    name: str
    port: int
    pid: int
    log: str
    workers: dict[str, int] = field(default_factory=dict)  # kwok, controllers: binary -> PID

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@dataclass
class DevEnvState:
    directory: str
    kubeconfig: str
    ca: str
    token: str
    etcd_pid: int
    etcd_port: int
    etcd_log: str
    etcd_peer_port: int = 0
    workloads: bool = False
    clusters: list[ClusterInfo] = field(default_factory=list)

    def save(self) -> None:
        path = Path(self.directory) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.touch(mode=0o600)  # it holds the admin token
        tmp.chmod(0o600)
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, directory: Path) -> DevEnvState | None:
        path = directory / STATE_FILE
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        raw["clusters"] = [ClusterInfo(**c) for c in raw["clusters"]]
        return cls(**raw)

    def pids(self) -> list[int]:
        workers = [pid for c in self.clusters for pid in c.workers.values()]
        return workers + [c.pid for c in self.clusters] + [self.etcd_pid]


def default_dir() -> Path:
    return cache_root() / "devenv"
