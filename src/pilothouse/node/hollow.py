"""Hollow nodes: simulated nodes for scale tests and capacity planning (never the default).

A :class:`HollowCluster` registers N Node objects with the capacity you give
them, renews each node's Lease in ``kube-node-lease`` like a real agent, and —
when ``run_pods`` — plays the part of their agents: pods bound to a hollow
node are reported Running and Ready (status built by :mod:`pilothouse.node.status`,
the same code the real agent uses), and pods being deleted are confirmed gone.
No container is started, but containers whose command says when it ends
(``sleep 30``, ``sh -c 'exit 3'``, ``true``; see :mod:`pilothouse.node.runtime.scripted`)
end then, and are restarted or not as the pod's ``restartPolicy`` says
(:mod:`pilothouse.node.simulated_pod`): Jobs complete and fail on hollow nodes as
they would on real ones. A container that ends at once is reported terminated in
the pod's first status write; one whose end cannot be told runs until deleted.

Concurrency: one informer watches the pods bound to nodes; a work queue feeds
``workers`` loops (64 by default: each real node has an agent writing its own
pods' statuses, and 16 shared by 1,000 nodes kept a scale run's pods waiting
for seconds) that write pod statuses and deletions, so thousands of pods are
handled with many writes in flight. Heartbeats run in a loop of their own, spread
evenly over the heartbeat interval, each renewal on its own (one in flight per node).
All of them are children of the supervisor
given (or of the cluster's own).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any

from pilothouse import supervisor as supervision
from pilothouse.api import errors, meta, resources
from pilothouse.client import informer, lister, rest, workqueue
from pilothouse.client.clock import DEFAULT as DEFAULT_CLOCK
from pilothouse.client.clock import Clock
from pilothouse.node import simulated_pod
from pilothouse.node import status as node_status

log = logging.getLogger(__name__)

Obj = dict[str, Any]

NODES = resources.Resource("", "v1", "Node", "nodes", False)
PODS = resources.Resource("", "v1", "Pod", "pods", True)
LEASES = resources.Resource("coordination.k8s.io", "v1", "Lease", "leases", True)
LEASE_DURATION = 40


def parse_labels(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` → dict (the CLI's --labels)."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ValueError(f"label {part!r} is not key=value")
        out[key] = value
    return out


def parse_taints(text: str) -> list[Obj]:
    """``k=v:Effect,k2:Effect`` → taints (the CLI's --taints)."""
    out: list[Obj] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        kv, sep, effect = part.rpartition(":")
        if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(
                f"taint {part!r} must be key[=value]:NoSchedule|PreferNoSchedule|NoExecute"
            )
        key, _, value = kv.partition("=")
        taint: Obj = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        out.append(taint)
    return out


@dataclass
class HollowNode:
    name: str
    index: int
    labels: dict[str, str] = field(default_factory=dict)
    next_pod_ip: int = 2

    @property
    def address(self) -> str:
        return str(ipaddress.ip_address(int(ipaddress.ip_address("10.250.0.0")) + self.index))

    @property
    def pod_cidr(self) -> str:
        base = int(ipaddress.ip_address("100.64.0.0")) + self.index * 256
        return f"{ipaddress.ip_address(base)}/24"

    def allocate_pod_ip(self) -> str:
        base = int(ipaddress.ip_address("100.64.0.0")) + self.index * 256
        ip = str(ipaddress.ip_address(base + self.next_pod_ip))
        self.next_pod_ip = 2 + (self.next_pod_ip - 1) % 252
        return ip


class HollowCluster:
    """N simulated nodes and their simulated agents."""

    def __init__(
        self,
        client: rest.Client,
        *,
        count: int,
        name_prefix: str = "hollow-",
        cpu: str = "32",
        memory: str = "128Gi",
        pods: int = 110,
        labels: dict[str, str] | None = None,
        taints: list[Obj] | None = None,
        zones: int = 0,
        heartbeat: float = 10.0,
        run_pods: bool = True,
        workers: int = 64,
        clock: Clock = DEFAULT_CLOCK,
        supervisor: supervision.Supervisor | None = None,
    ) -> None:
        self.client = client
        self.supervisor = supervisor or supervision.Supervisor(f"{name_prefix}nodes")
        self._own_supervisor = supervisor is None
        self.prefix = name_prefix
        self.capacity = {
            "cpu": cpu,
            "memory": memory,
            "pods": str(pods),
            "ephemeral-storage": "100Gi",
        }
        self.labels = labels or {}
        self.taints = taints or []
        self.heartbeat = heartbeat
        self.run_pods = run_pods
        self.clock = clock
        self.nodes: dict[str, HollowNode] = {}
        for i in range(count):
            node_labels = dict(self.labels)
            if zones:
                node_labels["topology.kubernetes.io/zone"] = f"zone-{i % zones}"
            self.nodes[f"{name_prefix}{i}"] = HollowNode(f"{name_prefix}{i}", i, node_labels)
        self.queue: workqueue.WorkQueue[str] = workqueue.WorkQueue("hollow-pods", clock=clock)
        self.pods: informer.Informer | None = None
        self.workers = workers
        self._loops: list[str] = []
        self._pod_ips: dict[str, str] = {}
        self._runs: dict[str, simulated_pod.PodRun] = {}
        self._start_times: dict[str, str] = {}
        self._leases: dict[str, Obj] = {}  # node → its Lease as our last write returned it
        self.pods_started = 0
        self.pods_finished = 0

    # --- life cycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Register every node (concurrently), then start heartbeats and the pod runner."""
        sem = asyncio.Semaphore(64)

        async def register(node: HollowNode) -> None:
            async with sem:
                await self._register(node)

        await asyncio.gather(*(register(n) for n in self.nodes.values()))
        self.supervisor.start("heartbeats", self._heartbeats)
        self._loops.append("heartbeats")
        if self.run_pods:
            # Only pods bound to a node (a kubelet watches its own node's pods): the
            # unscheduled ones, a third of all pod events in a scale run, are no business
            # of ours and are never sent.
            self.pods = informer.Informer(self.client, PODS, field_selector="spec.nodeName!=")
            self.pods.add_handlers(
                on_add=self._pod_event, on_update=lambda _o, n: self._pod_event(n)
            )
            self.pods.start(self.supervisor)
            for i in range(self.workers):
                self.supervisor.start(f"pod-worker-{i}", self._worker)
                self._loops.append(f"pod-worker-{i}")

    async def stop(self, *, unregister: bool = False) -> None:
        for name in reversed(self._loops):
            await self.supervisor.stop_child(name)
        self._loops.clear()
        self.queue.shutdown()
        if self.pods is not None:
            await self.pods.stop()
        if self._own_supervisor:
            await self.supervisor.stop()
        if unregister:
            sem = asyncio.Semaphore(64)

            async def drop(name: str) -> None:
                async with sem:
                    with contextlib.suppress(errors.StatusError):
                        await self.client.delete(NODES, name)
                    with contextlib.suppress(errors.StatusError):
                        await self.client.delete(LEASES, name, "kube-node-lease")

            await asyncio.gather(*(drop(n) for n in self.nodes))

    # --- nodes ------------------------------------------------------------------------
    async def _register(self, node: HollowNode) -> None:
        obj = node_status.node_object(
            node.name,
            capacity=self.capacity,
            labels=node.labels,
            taints=self.taints,
            address=node.address,
            pod_cidr=node.pod_cidr,
            runtime="hollow",
            os_image="pilothouse hollow node",
        )
        try:
            await self.client.create(NODES, obj)
        except errors.StatusError as exc:
            if not errors.is_already_exists(exc):
                raise
            current = await self.client.get(NODES, node.name)
            obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await self.client.update(NODES, obj)
            obj["metadata"]["resourceVersion"] = (await self.client.get(NODES, node.name))[
                "metadata"
            ]["resourceVersion"]
            await self.client.update_status(NODES, obj)
        await self._renew(node.name)

    async def _renew(self, name: str) -> None:
        """Renew the node's Lease as the kubelet's lease controller does: an update of the
        Lease as our last update returned it (no GET: at 1,000 nodes a GET per heartbeat
        doubles the heartbeats' load on the API server); on a conflict or when it is gone,
        read it afresh (or create it) and update that."""
        lease = node_status.lease_object(
            name, duration=LEASE_DURATION, now_micro=meta.format_micro_time(self.clock.now())
        )
        latest = self._leases.get(name)
        if latest is not None:
            try:
                self._leases[name] = await self._update_lease(latest, lease)
                return
            except errors.StatusError as exc:
                if not (errors.is_conflict(exc) or errors.is_not_found(exc)):
                    raise
                del self._leases[name]
        try:
            current = await self.client.get(LEASES, name, "kube-node-lease")
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise
            with contextlib.suppress(errors.StatusError):
                self._leases[name] = await self.client.create(LEASES, lease, "kube-node-lease")
            return
        with contextlib.suppress(errors.StatusError):
            self._leases[name] = await self._update_lease(current, lease)

    async def _update_lease(self, base: Obj, lease: Obj) -> Obj:
        """``base`` with ``lease``'s spec (holder, duration, renew time) written over it."""
        wanted = {**base, "spec": {**(base.get("spec") or {}), **lease["spec"]}}
        updated: Obj = await self.client.update(LEASES, wanted)
        return updated

    async def _heartbeats(self) -> None:
        """Renew every node's Lease once per ``heartbeat``, spread evenly. Each renewal
        runs on its own, as each kubelet renews its own: awaited one after another, a
        busy API server (100 ms a write at 1,000 nodes) stretched a round of renewals
        past the Leases' 40 s and got every hollow node marked unreachable. A node whose
        last renewal has not come back skips its turn, as a kubelet's loop would."""
        names = list(self.nodes)
        in_flight: set[str] = set()

        async def heartbeat(name: str) -> None:
            try:
                await self._renew(name)
            except (errors.StatusError, rest.TransportError) as exc:
                log.debug("hollow heartbeat %s: %r", name, exc)
            finally:
                in_flight.discard(name)

        async with asyncio.TaskGroup() as renewals:
            while True:
                spacing = self.heartbeat / max(1, len(names))
                for name in names:
                    await self.clock.sleep(spacing)
                    if name not in in_flight:
                        in_flight.add(name)
                        renewals.create_task(heartbeat(name), name=f"heartbeat {name}")

    # --- pods -------------------------------------------------------------------------
    def _pod_event(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in self.nodes:
            return
        md = pod["metadata"]
        phase = (pod.get("status") or {}).get("phase")
        if md.get("deletionTimestamp") or phase in (None, "", "Pending"):
            self.queue.add(lister.key_of(pod))

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except workqueue.ShutDown:
                return
            try:
                await self._sync_pod(key)
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("hollow pod %s: %r", key, exc)
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)

    async def _sync_pod(self, key: str) -> None:
        assert self.pods is not None
        pod = self.pods.indexer.get(key)
        if pod is None:
            self._forget(key)
            return
        md = pod["metadata"]
        node = self.nodes.get((pod.get("spec") or {}).get("nodeName", ""))
        if node is None:
            return
        if md.get("deletionTimestamp"):
            # Nothing runs: termination is immediate; confirm it as an agent would.
            with contextlib.suppress(errors.StatusError):
                await self.client.delete(
                    PODS,
                    md["name"],
                    md.get("namespace", ""),
                    grace_period_seconds=0,
                    uid=md.get("uid", ""),
                )
            self._forget(key)
            return
        now_ts = self.clock.now()
        run = self._runs.get(key)
        if run is None:
            if (pod.get("status") or {}).get("phase") not in (None, "", "Pending"):
                return
            run = self._runs[key] = simulated_pod.PodRun(pod, now=now_ts)
            self._start_times[key] = meta.format_time(now_ts)
        else:
            run.advance(now_ts)
        now = meta.format_time(now_ts)
        ip = self._pod_ips.get(key) or node.allocate_pod_ip()
        self._pod_ips[key] = ip
        spec = pod.get("spec") or {}
        start = self._start_times.get(key, now)
        inits = [
            node_status.ContainerState(
                name=c["name"],
                image=c.get("image", ""),
                state="terminated",
                exit_code=0,
                reason="Completed",
                started_at=start,
                finished_at=start,
            )
            for c in spec.get("initContainers") or []
        ]
        # A shallow copy is enough: only the status is replaced, and nothing is mutated.
        updated = {**pod}
        if "managedFields" in md:
            # The status subresource keeps the live object's managedFields whatever the
            # body says, and the kubelet's status patch carries none: sending them back
            # only made the server parse and walk them (a third of the body) to drop them.
            updated["metadata"] = {k: v for k, v in md.items() if k != "managedFields"}
        updated["status"] = node_status.pod_status(
            pod,
            containers=run.states(),
            init_containers=inits,
            host_ip=node.address,
            pod_ip=ip,
            sandbox_ready=True,
            start_time=start,
            now=now,
        )
        if updated["status"] != pod.get("status"):
            try:
                await self.client.update_status(PODS, updated)
            except errors.StatusError as exc:
                if errors.is_not_found(exc):
                    self._forget(key)
                    return
                raise  # 409: a newer version is coming through the informer; retried
            if (pod.get("status") or {}).get("phase") in (None, "", "Pending"):
                self.pods_started += 1
        if run.done:
            self.pods_finished += 1
            self._runs.pop(key, None)
            return
        wake = run.next_change()
        if wake is not None:
            self.queue.add_after(key, max(0.0, wake - now_ts))

    def _forget(self, key: str) -> None:
        self._pod_ips.pop(key, None)
        self._runs.pop(key, None)
        self._start_times.pop(key, None)
