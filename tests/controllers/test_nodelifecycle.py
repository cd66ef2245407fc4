"""Lost nodes are marked, tainted, and their pods evicted; back again, the taints go."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from pilothouse.api import errors, resources
from pilothouse.client import rest
from pilothouse.controllers import nodelifecycle
from pilothouse.node import hollow
from pilothouse.testing import eventually, running_controllers

NODES = resources.DEFAULT.by_path("", "v1", "nodes")
PODS = resources.DEFAULT.by_path("", "v1", "pods")
EVENTS = resources.DEFAULT.by_path("", "v1", "events")
assert NODES and PODS and EVENTS


def fast(ctx: Any) -> nodelifecycle.NodeLifecycleController:
    return nodelifecycle.NodeLifecycleController(ctx, grace_period=1.0, interval=0.2)


async def test_lost_node_is_tainted_and_its_pods_evicted(client: rest.Client, ns: str) -> None:
    sim = hollow.HollowCluster(
        client, count=1, name_prefix=f"lost-{uuid.uuid4().hex[:6]}-", heartbeat=0.2
    )
    await sim.start()
    name = next(iter(sim.nodes))
    spec = {"nodeName": name, "containers": [{"name": "c", "image": "busybox"}]}
    # Admission gives every pod 300 s on an unreachable node; these say otherwise.
    quick = {
        "key": nodelifecycle.UNREACHABLE,
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 0,
    }
    await client.create(
        PODS, {"metadata": {"name": "intolerant"}, "spec": {**spec, "tolerations": [quick]}}, ns
    )
    patient = {
        "key": nodelifecycle.UNREACHABLE,
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 3600,
    }
    await client.create(
        PODS, {"metadata": {"name": "patient"}, "spec": {**spec, "tolerations": [patient]}}, ns
    )

    async def ready(pod_name: str) -> str:
        pod = await client.get(PODS, pod_name, ns)
        conditions = pod["status"].get("conditions") or []
        return next((c["status"] for c in conditions if c["type"] == "Ready"), "")

    async def patient_ready() -> bool:
        return await ready("patient") == "True"

    await eventually(patient_ready, timeout=20)  # the hollow node runs it
    try:
        async with running_controllers(client, {"nodelifecycle": fast}) as cm:
            await sim.stop()  # the node goes silent

            async def unreachable() -> bool:
                node = await client.get(NODES, name)
                ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
                taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}
                return (
                    ready["status"] == "Unknown"
                    and (nodelifecycle.UNREACHABLE, "NoExecute") in taints
                )

            await eventually(unreachable, timeout=20)

            async def evicted() -> bool:
                pod = await client.get(PODS, "intolerant", ns)
                return bool(pod["metadata"].get("deletionTimestamp"))

            await eventually(evicted, timeout=20)
            patient_pod = await client.get(PODS, "patient", ns)
            assert not patient_pod["metadata"].get("deletionTimestamp")
            # Not evicted, but out of its Services: its node is lost, so it is not Ready.
            assert await ready("patient") == "False"
            listing = await client.list(EVENTS, ns)
            assert any(
                e["reason"] == "NodeNotReady" and e["involvedObject"]["name"] == "patient"
                for e in listing["items"]
            ), [e["reason"] for e in listing["items"]]

            sim2 = hollow.HollowCluster(client, count=1, name_prefix=name[:-1], heartbeat=0.2)
            await sim2.start()  # the node comes back
            try:

                async def untainted() -> bool:
                    node = await client.get(NODES, name)
                    return not any(
                        t["key"] == nodelifecycle.UNREACHABLE
                        for t in node["spec"].get("taints") or []
                    )

                await eventually(untainted, timeout=20)
            finally:
                await sim2.stop()
            # A deleted node leaves nothing behind in the controller.
            controller = cm.controllers["nodelifecycle"]
            assert isinstance(controller, nodelifecycle.NodeLifecycleController)
            assert name in controller._seen
            await client.delete(NODES, name)

            async def forgotten() -> bool:
                return name not in controller._seen and name not in controller._tainted_at

            await eventually(forgotten, timeout=20)
    finally:
        with contextlib.suppress(errors.StatusError):
            await client.delete(NODES, name)


async def test_pressure_conditions_taint_the_node_no_schedule(client: rest.Client) -> None:
    """TaintNodesByCondition: DiskPressure=True → node.kubernetes.io/disk-pressure:NoSchedule,
    gone again when the condition clears; other taints stay."""
    name = f"pressure-{uuid.uuid4().hex[:6]}"
    await client.create(
        NODES,
        {"metadata": {"name": name}, "spec": {"taints": [{"key": "mine", "effect": "NoSchedule"}]}},
    )

    def conditions(disk: str, pid: str) -> dict[str, Any]:
        now = "2026-01-01T00:00:00Z"
        return {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    {"type": "DiskPressure", "status": disk, "lastTransitionTime": now},
                    {"type": "PIDPressure", "status": pid, "lastTransitionTime": now},
                ]
            }
        }

    async def taints() -> set[tuple[str, str]]:
        node = await client.get(NODES, name)
        return {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}

    def slow(ctx: Any) -> nodelifecycle.NodeLifecycleController:
        return nodelifecycle.NodeLifecycleController(ctx, grace_period=600.0, interval=0.2)

    try:
        async with running_controllers(client, {"nodelifecycle": slow}):
            await client.patch(NODES, name, conditions("True", "True"), subresource="status")

            async def tainted() -> bool:
                return await taints() == {
                    ("mine", "NoSchedule"),
                    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                }

            await eventually(tainted, timeout=20)
            await client.patch(NODES, name, conditions("False", "True"), subresource="status")

            async def cleared() -> bool:
                return await taints() == {
                    ("mine", "NoSchedule"),
                    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                }

            await eventually(cleared, timeout=20)
    finally:
        with contextlib.suppress(errors.StatusError):
            await client.delete(NODES, name)


async def test_a_node_reporting_not_ready_has_its_pods_marked_once(
    client: rest.Client, ns: str
) -> None:
    """A kubelet that reports Ready=False: its pods are marked not Ready when the node
    leaves Ready, once; what the kubelet reports for them afterwards stands."""
    name = f"notready-{uuid.uuid4().hex[:6]}"
    await client.create(NODES, {"metadata": {"name": name}})
    now = "2026-01-01T00:00:00Z"

    async def node_ready(status: str) -> None:
        condition = {"type": "Ready", "status": status, "lastTransitionTime": now}
        await client.patch(
            NODES, name, {"status": {"conditions": [condition]}}, subresource="status"
        )

    async def pod_ready(status: str) -> None:
        conditions = [
            {"type": "Ready", "status": status, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
        ]
        await client.patch(
            PODS, "p", {"status": {"phase": "Running", "conditions": conditions}}, ns,
            subresource="status",
        )  # fmt: skip

    async def conditions() -> dict[str, str]:
        pod = await client.get(PODS, "p", ns)
        return {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}

    def slow(ctx: Any) -> nodelifecycle.NodeLifecycleController:
        return nodelifecycle.NodeLifecycleController(ctx, grace_period=600.0, interval=0.1)

    await node_ready("True")
    spec = {"nodeName": name, "containers": [{"name": "c", "image": "busybox"}]}
    await client.create(PODS, {"metadata": {"name": "p"}, "spec": spec}, ns)
    await pod_ready("True")
    try:
        async with running_controllers(client, {"nodelifecycle": slow}) as cm:
            controller = cm.controllers["nodelifecycle"]
            assert isinstance(controller, nodelifecycle.NodeLifecycleController)

            async def seen_ready() -> bool:
                return controller._was_ready.get(name) is True

            await eventually(seen_ready, timeout=20)
            await node_ready("False")

            async def marked() -> bool:
                return (await conditions()).get("Ready") == "False"

            await eventually(marked, timeout=20)
            # Only Ready changes.
            assert (await conditions())["ContainersReady"] == "True"
            # The kubelet says Ready again while its node is not: ten sweeps leave it be.
            await pod_ready("True")
            await asyncio.sleep(1.0)
            assert (await conditions())["Ready"] == "True"
    finally:
        with contextlib.suppress(errors.StatusError):
            await client.delete(NODES, name)
