"""What makes a local cluster run workloads: kube-controller-manager, kube-scheduler and kwok.

The controller manager and the scheduler are the real ones (the pinned Kubernetes version).
kwok plays the kubelet of a few fake nodes: it marks them Ready, renews their leases, and moves
pods scheduled to them through their lifecycle (Running and Ready at once, Jobs' pods
Succeeded, deleted pods gone). So Deployments get ReplicaSets and Pods that become Ready,
StatefulSets and DaemonSets roll, Jobs complete, namespaces are really deleted.

A workload fails on purpose when a container's image tag is ``fail`` (``FAIL_TAG``, e.g.
``nginx:fail``): a pod that restarts on failure (``restartPolicy: Always``, as in Deployments,
StatefulSets and DaemonSets) is Running but never Ready, its container in CrashLoopBackOff; any
other pod (Jobs) ends Failed with exit code 1.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

FAIL_TAG = "fail"
NODES = 3
WORKERS = ("kube-controller-manager", "kube-scheduler", "kwok")
POD_CIDR = "10.244.0.0/16"  # apart from the apiserver's service range 10.0.0.0/24
NODE_LEASE_SECONDS = 40

_STAGE_API = "kwok.x-k8s.io/v1alpha1"
_POD = {"apiGroup": "v1", "kind": "Pod"}
_NODE = {"apiGroup": "v1", "kind": "Node"}

# jq expressions over the object, as kwok's stage selectors take them.
_NOT_DELETING = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}
_PENDING = {"key": ".status.phase", "operator": "In", "values": ["Pending"]}
_FAILING_IMAGE = f'[.spec.containers[]?.image | split("@")[0] | test(":{FAIL_TAG}$")] | any'
_FAILS = {"key": _FAILING_IMAGE, "operator": "In", "values": ["true"]}
_WORKS = {"key": _FAILING_IMAGE, "operator": "NotIn", "values": ["true"]}
_RESTARTS = {"key": ".spec.restartPolicy", "operator": "In", "values": ["Always"]}
_RUNS_ONCE = {"key": ".spec.restartPolicy", "operator": "NotIn", "values": ["Always"]}
_NOT_READY = {
    "key": '.status.conditions.[] | select(.type == "Ready") | .status',
    "operator": "NotIn",
    "values": ["True"],
}

_NODE_READY_STATUS = """\
{{ $now := Now }}
conditions:
{{ range NodeConditions }}
- type: {{ .type | Quote }}
  status: {{ .status | Quote }}
  reason: {{ .reason | Quote }}
  message: {{ .message | Quote }}
  lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
{{ end }}
phase: Running
"""

_NODE_HEARTBEAT_STATUS = """\
{{ $now := Now }}
conditions:
{{ range .status.conditions }}
- type: {{ .type | Quote }}
  status: {{ .status | Quote }}
  reason: {{ .reason | Quote }}
  message: {{ .message | Quote }}
  lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ .lastTransitionTime | Quote }}
{{ end }}
"""


def _addresses(prefix: str, ips: str) -> str:
    """``<prefix>IP`` and ``<prefix>IPs`` of a pod's status template, from the kwok function
    call ``ips`` (a list of addresses)."""
    return (
        "{{ with " + ips + " }}\n"
        f"{prefix}IP: {{{{ index . 0 | Quote }}}}\n"
        f"{prefix}IPs:\n"
        "{{ range . }}\n- ip: {{ . | Quote }}\n{{ end }}\n{{ end }}\n"
    )


_POD_ADDRESSES = _addresses("host", "NodeIPsWith .spec.nodeName") + _addresses(
    "pod",
    'PodIPsWith .spec.nodeName (or .spec.hostNetwork false) (or .metadata.uid "") '
    '(or .metadata.name "") (or .metadata.namespace "")',
)

_FAIL_MESSAGE = f"simulated by the devenv: image tag :{FAIL_TAG}"

# Each container's state in a pod's status template: running, ended (see _pod_ended), and
# crash-looping.
_RUNNING = """\
  state:
    running:
      startedAt: {{ $now | Quote }}
"""
_ENDED = """\
  state:
    terminated:
      exitCode: <exit-code>
      reason: <reason>
<message>      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
"""
_CRASHLOOP = """\
  state:
    waiting:
      reason: CrashLoopBackOff
      message: "back-off 5m0s restarting failed container (FAIL_MESSAGE)"
  lastState:
    terminated:
      exitCode: 1
      reason: Error
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
""".replace("FAIL_MESSAGE", _FAIL_MESSAGE)


def _fill(template: str, values: dict[str, str]) -> str:
    """``template`` with each <token> of ``values`` replaced by its value."""
    for token, value in values.items():
        template = template.replace(token, value)
    return template


_INIT_CONTAINERS_DONE = (
    """\
initContainerStatuses:
{{ range .spec.initContainers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: true
  restartCount: 0
  {{ if eq (or .restartPolicy "") "Always" }}
  started: true
"""
    + _RUNNING
    + "  {{ else }}\n"
    + _fill(_ENDED, {"<exit-code>": "0", "<reason>": "Completed", "<message>": ""})
    + "  {{ end }}\n{{ end }}\n"
)


def _container_statuses(ready: bool, restarts: int, state: str) -> str:
    """The ``containerStatuses`` of a pod's status template: every container ``ready`` (and
    started) or not, restarted ``restarts`` times, in ``state`` (its YAML lines)."""
    flag = "true" if ready else "false"
    head = "containerStatuses:\n{{ range .spec.containers }}\n"
    head += "- name: {{ .name | Quote }}\n  image: {{ .image | Quote }}\n"
    head += f"  ready: {flag}\n  started: {flag}\n  restartCount: {restarts}\n"
    return head + state + "{{ end }}\n"


def _conditions(status: str, *types: str, why: str = "") -> str:
    """The pod conditions ``types`` of a status template, each with ``status`` (and ``why``:
    its reason and message lines)."""
    names = " ".join(f'"{t}"' for t in types)
    return (
        "{{ range list " + names + " }}\n"
        "- type: {{ . | Quote }}\n"
        f'  status: "{status}"\n' + why + "  lastTransitionTime: {{ $now | Quote }}\n"
        "{{ end }}\n"
    )


def _running_pod(conditions: str, containers: str) -> str:
    """The status template of a running pod with these ``conditions`` and ``containers``."""
    head = "{{ $now := Now }}\nphase: Running\nstartTime: {{ $now | Quote }}\nconditions:\n"
    return head + conditions + containers + _INIT_CONTAINERS_DONE + _POD_ADDRESSES


_READINESS_GATES_PASSED = """\
{{ range $.spec.readinessGates }}
- type: {{ .conditionType | Quote }}
  status: "True"
  lastTransitionTime: {{ $now | Quote }}
{{ end }}
"""

_POD_RUNNING_STATUS = _running_pod(
    _conditions("True", "PodScheduled", "Initialized", "ContainersReady", "Ready")
    + _READINESS_GATES_PASSED,
    _container_statuses(True, 0, _RUNNING),
)

# A pod whose containers ended: <phase>, the Ready conditions' <condition-reason>, and each
# container terminated with <exit-code> and <reason> (and <message>, when there is one).
_POD_ENDED_STATUS = (
    """\
{{ $now := Now }}
phase: <phase>
<start-time>conditions:
"""
    + _conditions("False", "Ready", "ContainersReady", why="  reason: <condition-reason>\n")
    + _container_statuses(False, 0, _ENDED)
)


def _pod_ended(
    phase: str, condition_reason: str, exit_code: int, reason: str, message: str | None = None
) -> str:
    """The status template of a pod whose containers ended; a failed pod (``message``) was
    never running, so it starts now too."""
    values = {
        "<phase>": phase,
        "<start-time>": "startTime: {{ $now | Quote }}\n" if message else "",
        "<condition-reason>": condition_reason,
        "<exit-code>": str(exit_code),
        "<reason>": reason,
        "<message>": f'      message: "{message}"\n' if message else "",
    }
    return _fill(_POD_ENDED_STATUS, values)


_POD_SUCCEEDED_STATUS = _pod_ended("Succeeded", "PodCompleted", 0, "Completed")

_CONTAINERS_NOT_READY = """\
  reason: ContainersNotReady
  message: "containers with unready status: [{{ range $.spec.containers }}{{ .name }} {{ end }}]"
"""

_POD_CRASHLOOP_STATUS = _running_pod(
    _conditions("True", "PodScheduled", "Initialized")
    + _conditions("False", "ContainersReady", "Ready", why=_CONTAINERS_NOT_READY),
    _container_statuses(False, 5, _CRASHLOOP),
)

_POD_FAILED_STATUS = _pod_ended("Failed", "PodFailed", 1, "Error", _FAIL_MESSAGE)


def _stage(
    name: str,
    ref: dict[str, str],
    selector: list[dict[str, Any]],
    next_: dict[str, Any],
    delay_ms: int = 0,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "resourceRef": ref,
        "selector": {"matchExpressions": selector},
        "next": next_,
    }
    if delay_ms:
        spec["delay"] = {
            "durationMilliseconds": delay_ms,
            "jitterDurationMilliseconds": delay_ms + delay_ms // 10,
        }
    return {"apiVersion": _STAGE_API, "kind": "Stage", "metadata": {"name": name}, "spec": spec}


def stages() -> list[dict[str, Any]]:
    """kwok's lifecycle for our fake nodes and their pods, failing images included."""
    is_ready = {
        "key": '.status.conditions.[] | select(.type == "Ready") | .status',
        "operator": "In",
        "values": ["True"],
    }
    return [
        _stage("node-ready", _NODE, [_NOT_READY], {"statusTemplate": _NODE_READY_STATUS}),
        _stage(
            "node-heartbeat",
            _NODE,
            [is_ready],
            {"statusTemplate": _NODE_HEARTBEAT_STATUS},
            delay_ms=60_000,  # the lease is the heartbeat; this keeps the status fresh too
        ),
        _stage(
            "pod-ready",
            _POD,
            [_NOT_DELETING, _PENDING, _WORKS],
            {"statusTemplate": _POD_RUNNING_STATUS},
        ),
        _stage(
            "pod-complete",
            _POD,
            [
                _NOT_DELETING,
                {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                {"key": ".metadata.ownerReferences.[].kind", "operator": "In", "values": ["Job"]},
            ],
            {"statusTemplate": _POD_SUCCEEDED_STATUS},
        ),
        _stage(
            "pod-crashloop",
            _POD,
            [_NOT_DELETING, _PENDING, _FAILS, _RESTARTS],
            {"statusTemplate": _POD_CRASHLOOP_STATUS},
        ),
        _stage(
            "pod-fail",
            _POD,
            [_NOT_DELETING, _PENDING, _FAILS, _RUNS_ONCE],
            {"statusTemplate": _POD_FAILED_STATUS},
        ),
        _stage(
            "pod-delete",
            _POD,
            [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
            {"delete": True},
        ),
    ]


def kwok_config() -> str:
    """The ``--config`` file of kwok: its options and our stages, as multi-document YAML."""
    options = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokConfiguration",
        "options": {
            "cidr": POD_CIDR,
            "manageAllNodes": True,
            "nodeLeaseDurationSeconds": NODE_LEASE_SECONDS,
            # A config file skips kwok's defaulting of these; zero would be refused.
            "nodeLeaseParallelism": 2,
            "nodePlayStageParallelism": 2,
            "podPlayStageParallelism": 4,
            "podsOnNodeSyncParallelism": 1,
            "enableDebuggingHandlers": False,
            "enableProfilingHandler": False,
        },
    }
    return yaml.safe_dump_all([options, *stages()], sort_keys=False)


def commands(
    binaries: dict[str, Path], kubeconfig: Path, cluster_pki: Path, ca: Path, config: Path
) -> dict[str, list[str]]:
    """Command line of each worker of one cluster; none serves a port (no clashes, no auth)."""
    return {
        "kube-controller-manager": [
            str(binaries["kube-controller-manager"]),
            f"--kubeconfig={kubeconfig}",
            "--secure-port=0",
            "--leader-elect=false",
            f"--service-account-private-key-file={cluster_pki / 'sa.key'}",
            f"--root-ca-file={ca}",
            "--use-service-account-credentials=false",
            "--profiling=false",
        ],
        "kube-scheduler": [
            str(binaries["kube-scheduler"]),
            f"--kubeconfig={kubeconfig}",
            "--secure-port=0",
            "--leader-elect=false",
            "--profiling=false",
        ],
        "kwok": [
            str(binaries["kwok"]),
            f"--kubeconfig={kubeconfig}",
            f"--config={config}",
            "--v=WARN",  # INFO logs every status patch
        ],
    }


def node(index: int, cluster: str) -> dict[str, Any]:
    """A fake node kwok manages (every node of a devenv cluster is one)."""
    name = f"node-{index}"
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "kwok",
                "topology.kubernetes.io/zone": f"{cluster}-{chr(ord('a') + index - 1)}",
                "type": "kwok",
            },
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "addresses": [
                {"type": "InternalIP", "address": f"10.1.0.{index}"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "kwok",
                "containerRuntimeVersion": "kwok",
                "kernelVersion": "",
                "osImage": "",
                "bootID": "",
                "kubeProxyVersion": "",
                "machineID": "",
                "systemUUID": "",
            },
        },
    }


class Api:
    """The few admin calls the devenv makes itself (no client library: devenv stays light)."""

    def __init__(self, server: str, token: str, ctx: ssl.SSLContext) -> None:
        self.server = server
        self._token = token
        self._ctx = ctx

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self._token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, context=self._ctx, timeout=5) as response:
                return int(response.status), json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return int(err.code), None
        except (urllib.error.URLError, OSError, ssl.SSLError, ValueError):
            return 0, None


def register_nodes(api: Api, cluster: str) -> None:
    """Create the fake nodes that are missing (a restarted cluster keeps its own)."""
    for index in range(1, NODES + 1):
        status, _ = api.call("POST", "/api/v1/nodes", node(index, cluster))
        if status not in (201, 409):
            raise OSError(f"creating node-{index} answered HTTP {status or 'no response'}")


def not_ready(api: Api) -> str:
    """What keeps the cluster from running workloads yet, or '' once it can."""
    status, nodes = api.call("GET", "/api/v1/nodes")
    if status != 200:
        return f"listing nodes answered HTTP {status or 'no response'}"
    ready = [
        n
        for n in nodes["items"]
        if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in n.get("status", {}).get("conditions", [])
        )
    ]
    if len(ready) < NODES:
        return f"{len(ready)}/{NODES} nodes Ready (kwok)"
    status, _ = api.call("GET", "/api/v1/namespaces/default/serviceaccounts/default")
    if status != 200:
        return "no default ServiceAccount yet (kube-controller-manager)"
    return ""
