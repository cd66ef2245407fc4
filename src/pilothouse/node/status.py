"""Building what a node reports: pod status and the Node object itself.

Shared by the real agent and the hollow (simulated) nodes, so both report in
the same shape — the conditions, container statuses and node conditions that
``kubectl get pods -o wide`` and ``kubectl describe`` read.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pilothouse import __version__
from pilothouse.api import meta

Obj = dict[str, Any]

KUBELET_VERSION = "v1.32.0-pilothouse"


@dataclass
class ContainerState:
    """What the runtime knows about one container."""

    name: str
    image: str
    image_id: str = ""
    container_id: str = ""
    state: str = "waiting"  # waiting | running | terminated
    reason: str = ""
    message: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int = 0
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    last_state: Obj = field(default_factory=dict)

    def to_status(self) -> Obj:
        if self.state == "running":
            state: Obj = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            term: Obj = {
                "exitCode": self.exit_code,
                "reason": self.reason or ("Completed" if self.exit_code == 0 else "Error"),
                "startedAt": self.started_at or None,
                "finishedAt": self.finished_at or None,
            }
            if self.message:
                term["message"] = self.message
            if self.container_id:
                term["containerID"] = self.container_id
            state = {"terminated": term}
        else:
            waiting: Obj = {"reason": self.reason or "ContainerCreating"}
            if self.message:
                waiting["message"] = self.message
            state = {"waiting": waiting}
        out: Obj = {
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started,
            "state": state,
            "lastState": self.last_state,
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


def condition(type_: str, status: bool, now: str, *, reason: str = "", message: str = "") -> Obj:
    c: Obj = {
        "type": type_,
        "status": "True" if status else "False",
        "lastProbeTime": None,
        "lastTransitionTime": now,
    }
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def merge_conditions(old: list[Obj], new: list[Obj]) -> list[Obj]:
    """New conditions, keeping each one's lastTransitionTime while its status is unchanged."""
    before = {c.get("type"): c for c in old}
    out = []
    for c in new:
        prev = before.get(c["type"])
        if (
            prev is not None
            and prev.get("status") == c["status"]
            and prev.get("lastTransitionTime")
        ):
            c = {**c, "lastTransitionTime": prev["lastTransitionTime"]}
        out.append(c)
    # Conditions others own (e.g. PodScheduled from the scheduler) are kept.
    mine = {c["type"] for c in new}
    out.extend(c for c in old if c.get("type") not in mine)
    return out


def pod_status(
    pod: Obj,
    *,
    containers: list[ContainerState],
    init_containers: list[ContainerState] | None = None,
    host_ip: str,
    pod_ip: str,
    sandbox_ready: bool,
    start_time: str,
    now: str | None = None,
) -> Obj:
    """The status a node reports for ``pod``, derived as upstream's kubelet derives it."""
    now = now or meta.now()
    spec = pod.get("spec") or {}
    restart_policy = spec.get("restartPolicy", "Always")
    init_containers = init_containers or []
    init_done = all(c.state == "terminated" and c.exit_code == 0 for c in init_containers)
    all_ready = bool(containers) and all(c.ready for c in containers)
    running = [c for c in containers if c.state == "running"]
    # A container waiting to be restarted (CrashLoopBackOff) has stopped, as upstream's
    # kubelet counts it: its pod is Running, not Pending.
    backing_off = [c for c in containers if c.state == "waiting" and c.last_state.get("terminated")]
    terminated = [c for c in containers if c.state == "terminated"]
    failed = [c for c in terminated if c.exit_code != 0] + backing_off
    stopped = len(terminated) + len(backing_off)
    if containers and stopped == len(containers) and restart_policy != "Always":
        if restart_policy == "Never" and failed:
            phase = "Failed"
        elif restart_policy == "OnFailure" and failed:
            phase = "Running"
        else:
            phase = "Succeeded" if not failed else "Failed"
    elif running or (stopped and restart_policy == "Always"):
        phase = "Running"
    else:
        phase = "Pending"
    old = pod.get("status") or {}
    ready = all_ready and init_done and phase == "Running"
    not_ready_names = sorted(c.name for c in containers if not c.ready)
    message = (
        f"containers with unready status: [{' '.join(not_ready_names)}]" if not_ready_names else ""
    )
    conditions = [
        condition("PodReadyToStartContainers", sandbox_ready, now),
        condition(
            "Initialized",
            init_done,
            now,
            reason="" if init_done else "ContainersNotInitialized",
            message=""
            if init_done
            else "containers with incomplete status: ["
            + " ".join(
                c.name
                for c in init_containers
                if not (c.state == "terminated" and c.exit_code == 0)
            )
            + "]",
        ),
        condition(
            "Ready",
            ready,
            now,
            reason=""
            if ready
            else ("PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"),
            message="" if ready else message,
        ),
        condition(
            "ContainersReady",
            all_ready,
            now,
            reason=""
            if all_ready
            else ("PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"),
            message="" if all_ready else message,
        ),
    ]
    status: Obj = {
        "phase": phase,
        "conditions": merge_conditions(old.get("conditions") or [], conditions),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": [c.to_status() for c in containers],
        "qosClass": old.get("qosClass", "BestEffort"),
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if init_containers:
        status["initContainerStatuses"] = [c.to_status() for c in init_containers]
    return status


def node_conditions(
    now: str,
    *,
    ready: bool = True,
    old: list[Obj] | None = None,
    ready_message: str = "kubelet is posting ready status",
    pressure: Iterable[str] = (),
) -> list[Obj]:
    """The kubelet's four conditions; ``pressure`` names those the eviction manager
    holds true (MemoryPressure, DiskPressure, PIDPressure), with upstream's reasons."""
    under = set(pressure)

    def cond(type_: str, status: bool, reason: str, message: str) -> Obj:
        return {
            "type": type_,
            "status": "True" if status else "False",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }

    memory = "MemoryPressure" in under
    disk = "DiskPressure" in under
    pid = "PIDPressure" in under
    new = [
        cond(
            "MemoryPressure",
            memory,
            "KubeletHasInsufficientMemory" if memory else "KubeletHasSufficientMemory",
            f"kubelet has {'insufficient' if memory else 'sufficient'} memory available",
        ),
        cond(
            "DiskPressure",
            disk,
            "KubeletHasDiskPressure" if disk else "KubeletHasNoDiskPressure",
            "kubelet has disk pressure" if disk else "kubelet has no disk pressure",
        ),
        cond(
            "PIDPressure",
            pid,
            "KubeletHasInsufficientPID" if pid else "KubeletHasSufficientPID",
            f"kubelet has {'insufficient' if pid else 'sufficient'} PID available",
        ),
        cond("Ready", ready, "KubeletReady" if ready else "KubeletNotReady", ready_message),
    ]
    before = {c.get("type"): c for c in old or []}
    for c in new:
        prev = before.get(c["type"])
        if prev is not None and prev.get("status") == c["status"]:
            c["lastTransitionTime"] = prev.get("lastTransitionTime", now)
    return new


def node_object(
    name: str,
    *,
    capacity: dict[str, str],
    allocatable: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
    address: str,
    pod_cidr: str = "",
    runtime: str = "crun",
    runtime_version: str = "",
    kernel: str = "",
    os_image: str = "",
    now: str | None = None,
) -> Obj:
    now = now or meta.now()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    all_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch,
        **(labels or {}),
    }
    spec: Obj = {}
    if pod_cidr:
        spec["podCIDR"] = pod_cidr
        spec["podCIDRs"] = [pod_cidr]
    if taints:
        spec["taints"] = taints
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "spec": spec,
        "status": {
            "capacity": dict(capacity),
            "allocatable": dict(allocatable or capacity),
            "conditions": node_conditions(now),
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": kernel or platform.release(),
                "osImage": os_image or "pilothouse node",
                "containerRuntimeVersion": f"{runtime}://{runtime_version or __version__}",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
            },
        },
    }


def lease_object(name: str, *, duration: int, now_micro: str) -> Obj:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": now_micro},
    }
