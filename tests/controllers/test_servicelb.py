"""The ServiceLB controller: LoadBalancer ingress from the nodes' addresses, ports held
by the oldest Service, events as k3s' ServiceLB writes them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from pilothouse.api import resources
from pilothouse.client import rest
from pilothouse.controllers import servicelb
from pilothouse.testing import eventually, running_controllers

NODES = resources.DEFAULT.by_path("", "v1", "nodes")
SERVICES = resources.DEFAULT.by_path("", "v1", "services")
EVENTS = resources.DEFAULT.by_path("", "v1", "events")
assert NODES and SERVICES and EVENTS


def node(name: str, ip: str, *, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {servicelb.ENABLE_LABEL: "true"}},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def lb(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"a": name},
                     **spec}}  # fmt: skip


async def ingress(client: rest.Client, ns: str, name: str) -> list[str]:
    svc = await client.get(SERVICES, name, ns)
    lbs = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [i["ip"] for i in lbs]


async def reasons(client: rest.Client, ns: str, name: str) -> list[tuple[str, str, str]]:
    items = (await client.list(EVENTS, ns))["items"]
    return [
        (e["type"], e["reason"], e["message"]) for e in items if e["involvedObject"]["name"] == name
    ]


async def test_ingress_follows_ready_nodes_and_ports_go_to_the_oldest(
    client: rest.Client, ns: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    n1, n2 = f"lb1-{tag}", f"lb2-{tag}"
    await client.create(NODES, node(n1, "192.0.2.31"))
    await client.create(NODES, node(n2, "192.0.2.32"))
    try:
        async with running_controllers(client, {"servicelb": servicelb.ServiceLBController}):
            await client.create(SERVICES, lb("first"), ns)

            async def both() -> bool:
                return await ingress(client, ns, "first") == ["192.0.2.31", "192.0.2.32"]

            await eventually(both)
            await asyncio.sleep(1.1)  # a younger Service (creation times have seconds)
            await client.create(SERVICES, lb("second"), ns)
            await client.create(SERVICES, lb("other", loadBalancerClass="example.com/lb"), ns)

            async def warned() -> list[tuple[str, str, str]]:
                return [r for r in await reasons(client, ns, "second") if r[1] == "PortInUse"]

            events = await eventually(warned)
            assert events[0][0] == "Warning"
            assert events[0][2] == (
                f"port 80/TCP is already used by LoadBalancer Service {ns}/first on node(s) "
                f"{n1}, {n2}"
            )
            assert await ingress(client, ns, "second") == []
            first_events = await reasons(client, ns, "first")
            assert (
                "Normal",
                "UpdatedIngressIP",
                "LoadBalancer Ingress IP addresses updated: 192.0.2.31, 192.0.2.32",
            ) in first_events
            # The holder goes: the port is free for the next in line.
            await client.delete(SERVICES, "first", ns)

            async def second_gets_it() -> bool:
                return await ingress(client, ns, "second") == ["192.0.2.31", "192.0.2.32"]

            await eventually(second_gets_it)
            # A node that stops being Ready stops serving.
            status = await client.get(NODES, n2)
            status["status"]["conditions"][0]["status"] = "False"
            await client.update_status(NODES, status)

            async def one() -> bool:
                return await ingress(client, ns, "second") == ["192.0.2.31"]

            await eventually(one)
            assert await ingress(client, ns, "other") == []  # another implementation's
    finally:
        for n in (n1, n2):
            await client.delete(NODES, n)
