"""Registering this machine as a Node and keeping it alive in the API.

Upstream's kubelet_node_status.go and node lease controller — KEP-589's two
heartbeats: the node registers (or, after a restart, refreshes its labels and
status), waits for the pod CIDR the cluster assigns it, then renews its Lease in
``kube-node-lease`` every ``heartbeat`` seconds and posts its conditions every
minute, at once when the eviction manager's pressure conditions change.

:class:`NodeHeartbeats` holds these methods for :class:`~pilothouse.node.agent.Agent`:
registration runs in the agent's start-up, in order; ``heartbeat`` and
``node-status`` run concurrently as supervised children of the agent, each
serialising its own writes; a failed write is retried on the next beat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from pilothouse.api import errors, meta, resources
from pilothouse.client import rest
from pilothouse.node import housekeeping, kubeletconfig
from pilothouse.node import status as node_status
from pilothouse.node.runtime import protocol

# Logged under the agent's name, as before these methods left agent.py.
log = logging.getLogger("pilothouse.node.agent")

Obj = dict[str, Any]
NODES = resources.Resource("", "v1", "Node", "nodes", False)
LEASES = resources.Resource("coordination.k8s.io", "v1", "Lease", "leases", True)
LEASE_SECONDS = 40
MAX_PODS = 110


def machine_capacity(data_dir: Path, max_pods: int = MAX_PODS) -> dict[str, str]:
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
                break
    st = os.statvfs(data_dir)
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{mem_kib}Ki",
        "pods": str(max_pods),
        "ephemeral-storage": f"{st.f_blocks * st.f_frsize // 1024}Ki",
    }


class NodeHeartbeats:
    """The agent's Node and Lease: registration, the pod CIDR, and both heartbeats."""

    # Set by the agent (see Agent.__init__ and Agent.start).
    client: rest.Client
    node_name: str
    address: str
    data_dir: Path
    config: kubeletconfig.KubeletConfig
    labels: dict[str, str]
    port: int
    heartbeat: float
    runtime: protocol.Runtime | None
    housekeeping: housekeeping.Housekeeping | None
    _conditions_changed: asyncio.Event

    def _node_object(self) -> Obj:
        capacity = machine_capacity(self.data_dir, self.config.max_pods)
        runtime = self.runtime
        obj = node_status.node_object(
            self.node_name,
            capacity=capacity,
            allocatable=housekeeping.allocatable(capacity, self.config),
            taints=[dict(t) for t in self.config.register_with_taints] or None,
            labels=self.labels,
            address=self.address,
            runtime=runtime.name if runtime else "crun",
            runtime_version=runtime.version if runtime else "",
        )
        obj["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": self.port}}
        return obj

    async def _register(self) -> None:
        obj = self._node_object()
        try:
            await self.client.create(NODES, obj)
            return
        except errors.StatusError as exc:
            if not errors.is_already_exists(exc):
                raise
        current = await self.client.get(NODES, self.node_name)
        status = obj["status"]
        status["conditions"] = node_status.node_conditions(
            meta.now(), old=(current.get("status") or {}).get("conditions")
        )
        patch = {
            "metadata": {
                "labels": {**(current["metadata"].get("labels") or {}), **obj["metadata"]["labels"]}
            },
            "status": status,
        }
        await self.client.patch(NODES, self.node_name, {"metadata": patch["metadata"]})
        await self.client.patch(NODES, self.node_name, {"status": status}, subresource="status")

    async def _wait_pod_cidr(self, timeout: float = 60.0) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            node = await self.client.get(NODES, self.node_name)
            cidr = (node.get("spec") or {}).get("podCIDR")
            if cidr:
                return str(cidr)
            if loop.time() > deadline:
                raise RuntimeError(
                    f"node {self.node_name} got no pod CIDR within {timeout:.0f}s: is the node IPAM "
                    "controller running (pilothouse server runs it)?"
                )
            await asyncio.sleep(0.2)

    async def _heartbeats(self) -> None:
        failing = False
        while True:
            try:
                await self._renew_lease()
                if failing:
                    log.info("node %s: lease renewed again", self.node_name)
                failing = False
            except (errors.StatusError, rest.TransportError) as exc:
                # The next beat tries again; say so once, not every ten seconds.
                if not failing:
                    log.warning("node %s: renewing the lease failed: %s", self.node_name, exc)
                failing = True
            await asyncio.sleep(self.heartbeat)

    async def _renew_lease(self) -> None:
        lease = node_status.lease_object(
            self.node_name, duration=LEASE_SECONDS, now_micro=meta.now_micro()
        )
        try:
            current = await self.client.get(LEASES, self.node_name, "kube-node-lease")
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise
            node = await self.client.get(NODES, self.node_name)
            lease["metadata"]["ownerReferences"] = [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": self.node_name,
                    "uid": node["metadata"]["uid"],
                }
            ]
            await self.client.create(LEASES, lease, "kube-node-lease")
            return
        current["spec"] = {**(current.get("spec") or {}), **lease["spec"]}
        await self.client.update(LEASES, current)

    def pressure(self) -> list[str]:
        """The pressure conditions the eviction manager holds true now."""
        return list(self.housekeeping.eviction.conditions) if self.housekeeping else []

    async def _node_status_loop(self) -> None:
        """Post the node's conditions every minute, and at once when pressure changes
        (checked every nodeStatusUpdateFrequency, as the kubelet)."""
        posted: list[str] | None = None
        last = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._conditions_changed.wait(), self.config.node_status_update_frequency
                )
            self._conditions_changed.clear()
            pressure = self.pressure()
            if pressure == posted and time.monotonic() - last < 60:
                continue
            with contextlib.suppress(errors.StatusError, rest.TransportError):
                current = await self.client.get(NODES, self.node_name)
                conditions = node_status.node_conditions(
                    meta.now(),
                    old=(current.get("status") or {}).get("conditions"),
                    pressure=pressure,
                )
                await self.client.patch(
                    NODES,
                    self.node_name,
                    {"status": {"conditions": conditions}},
                    subresource="status",
                )
                posted, last = pressure, time.monotonic()
