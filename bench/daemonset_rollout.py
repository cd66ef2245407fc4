"""The DaemonSet part of bench/controllers.py: a rollout across hundreds of hollow nodes.

The API server and the scheduler run in the server child process (as `pilothouse
server` runs them); this process runs the DaemonSet controller (one client), the hollow
nodes (another) and an observer (a third). A DaemonSet with one pod per node is created,
then rolled out to a new image with ``maxUnavailable: 10%``: the controller deletes up to
10 % of the old pods, makes a replacement on each node once its old pod is gone, the
scheduler binds it to its node (the required ``metadata.name`` term), the hollow node
reports it Ready, and the next nodes follow.

Baseline, in the same run and on the same nodes: the same waves scripted directly
against the API — delete a tenth of a set of bare pods, create their replacements with
the same node-name affinity, let the scheduler and the hollow nodes do their part, wait
for them to be Ready — so the difference is what the DaemonSet controller adds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from typing import Any

from pilothouse.api import resources
from pilothouse.client import rest
from pilothouse.controllers import daemonset, manager
from pilothouse.node import hollow


def _resource(group: str, plural: str) -> resources.Resource:
    r = resources.DEFAULT.by_path(group, "v1", plural)
    assert r is not None
    return r


DAEMONSETS = _resource("apps", "daemonsets")
PODS = _resource("", "pods")
NAMESPACES = _resource("", "namespaces")
GOAL_S = 30.0


def daemon_set(image: str, max_unavailable: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": max_unavailable},
            },
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {
                    "containers": [
                        {
                            "name": "agent",
                            "image": image,
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }
                    ],
                    "terminationGracePeriodSeconds": 0,
                },
            },
        },
    }


def bare_pod(name: str, node: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "baseline"}},
        "spec": {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchFields": [
                                    {"key": "metadata.name", "operator": "In", "values": [node]}
                                ]
                            }
                        ]
                    }
                }
            },
            "containers": [
                {
                    "name": "agent",
                    "image": image,
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ],
            "terminationGracePeriodSeconds": 0,
        },
    }


async def _wait(check: Any, timeout: float, interval: float = 0.05) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await check():
            return time.monotonic()
        await asyncio.sleep(interval)
    raise TimeoutError("benchmark phase did not finish")


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


class PodTracker:
    """A namespace's pods as a watch sees them (so waiting costs the server nothing)."""

    def __init__(self, client: rest.Client, ns: str) -> None:
        self.client = client
        self.ns = ns
        self.pods: dict[str, dict[str, Any]] = {}
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listing = await self.client.list(PODS, self.ns)
        self.task = asyncio.create_task(self._run(listing["metadata"]["resourceVersion"]))

    async def _run(self, rv: str) -> None:
        async for event in self.client.watch(
            PODS, self.ns, resource_version=rv, timeout_seconds=3600
        ):
            obj = event["object"]
            if event["type"] == "DELETED":
                self.pods.pop(obj["metadata"]["name"], None)
            elif event["type"] in ("ADDED", "MODIFIED"):
                self.pods[obj["metadata"]["name"]] = obj

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    async def ready_exactly(self, names: set[str]) -> bool:
        return set(self.pods) == names and all(_ready(self.pods[n]) for n in names)

    async def exactly(self, names: set[str]) -> bool:
        return set(self.pods) == names


async def baseline_waves(
    observer: rest.Client, nodes: list[str], waves: int, ns: str
) -> dict[str, Any]:
    """The rollout's floor without a controller: the same waves done by a script that
    watches its pods — delete a wave, wait until they are gone, create their
    replacements (placed by the scheduler), wait until they are Ready."""
    await observer.create(NAMESPACES, {"metadata": {"name": ns}})
    tracker = PodTracker(observer, ns)
    await tracker.start()
    sem = asyncio.Semaphore(64)

    async def create(name: str, node: str, image: str) -> None:
        async with sem:
            await observer.create(PODS, bare_pod(name, node, image), ns)

    async def delete(name: str) -> None:
        async with sem:
            await observer.delete(PODS, name, ns)

    try:
        await asyncio.gather(*(create(f"base-{i}-0", n, "v1") for i, n in enumerate(nodes)))
        current = {f"base-{i}-0" for i in range(len(nodes))}
        await _wait(functools.partial(tracker.ready_exactly, set(current)), 300, 0.005)
        per_wave = max(1, len(nodes) // waves)
        t0 = time.monotonic()
        for start in range(0, len(nodes), per_wave):
            batch = list(enumerate(nodes))[start : start + per_wave]
            await asyncio.gather(*(delete(f"base-{i}-0") for i, _ in batch))
            remaining = current - {f"base-{i}-0" for i, _ in batch}
            await _wait(functools.partial(tracker.exactly, remaining), 300, 0.005)
            await asyncio.gather(*(create(f"base-{i}-1", n, "v2") for i, n in batch))
            current = remaining | {f"base-{i}-1" for i, _ in batch}
            await _wait(functools.partial(tracker.ready_exactly, set(current)), 300, 0.005)
        seconds = time.monotonic() - t0
    finally:
        await tracker.stop()
    return {"seconds": round(seconds, 3), "waves": -(-len(nodes) // per_wave)}


async def measure(cfg: Any, *, nodes: int, max_unavailable: str = "10%") -> dict[str, Any]:
    ctl_client = rest.Client(cfg.with_user_agent("bench-daemonset"), max_connections=64)
    node_client = rest.Client(cfg.with_user_agent("bench-hollow"), max_connections=64)
    observer = rest.Client(cfg.with_user_agent("bench-observer"), max_connections=64)
    sim = hollow.HollowCluster(node_client, count=nodes, name_prefix="ds-", heartbeat=60)
    ns = "bench-ds"
    await observer.create(NAMESPACES, {"metadata": {"name": ns}})
    await sim.start()
    cm = manager.ControllerManager(
        ctl_client, factories={"daemonset": daemonset.DaemonSetController}
    )
    cm_task = asyncio.create_task(cm.run())
    out: dict[str, Any] = {"nodes": nodes, "max_unavailable": max_unavailable}
    try:
        await asyncio.wait_for(cm.ready.wait(), 60)

        async def status() -> dict[str, Any]:
            ds = await observer.get(DAEMONSETS, "agent", ns)
            st: dict[str, Any] = ds.get("status") or {}
            st["_generation"] = ds["metadata"]["generation"]
            return st

        c0, n0 = ctl_client.requests, node_client.requests
        t0 = time.monotonic()
        await observer.create(DAEMONSETS, daemon_set("agent:1", max_unavailable), ns)

        async def all_available() -> bool:
            st = await status()
            return int(st.get("numberAvailable") or 0) == nodes

        t_avail = await _wait(all_available, 600)
        out["seconds_to_first_rollout"] = round(t_avail - t0, 3)
        await asyncio.sleep(1.0)

        # The rollout, with the most nodes seen without an available pod at once.
        max_unavail_seen = 0
        c1, n1 = ctl_client.requests, node_client.requests
        t1 = time.monotonic()
        patch = {
            "spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}
        }
        await observer.patch(DAEMONSETS, "agent", patch, ns, patch_type=rest.STRATEGIC_PATCH)

        async def rolled_out() -> bool:
            nonlocal max_unavail_seen
            st = await status()
            max_unavail_seen = max(max_unavail_seen, nodes - int(st.get("numberAvailable") or 0))
            return (
                int(st.get("observedGeneration") or 0) >= st["_generation"]
                and int(st.get("updatedNumberScheduled") or 0) == nodes
                and int(st.get("numberAvailable") or 0) == nodes
            )

        t_rolled = await _wait(rolled_out, 900, interval=0.02)
        c2, n2 = ctl_client.requests, node_client.requests
        seconds = t_rolled - t1
        out["rollout"] = {
            "seconds_to_complete": round(seconds, 3),
            "goal_seconds": GOAL_S,
            "pods_replaced_per_s": round(nodes / seconds, 1),
            "most_nodes_unavailable_at_once": max_unavail_seen,
            "controller_requests": c2 - c1,
            "hollow_node_requests": n2 - n1,
        }
        out["first_rollout_requests"] = {"controller": c1 - c0, "hollow_nodes": n1 - n0}
        waves = 10 if max_unavailable == "10%" else max(1, nodes)
        out["baseline_scripted_waves"] = await baseline_waves(
            observer, list(sim.nodes), waves, "bench-ds-baseline"
        )
        out["rollout_over_baseline"] = round(
            seconds / max(out["baseline_scripted_waves"]["seconds"], 1e-9), 2
        )
    finally:
        cm_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cm_task
        await sim.stop()
        for c in (ctl_client, node_client, observer):
            await c.close()
    return out
