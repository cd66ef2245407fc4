"""The agent runs the service proxy and the host-gw routes under its supervisor, from
its shared informers, and removes both when it stops (in-memory kernel and routes)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.controllers import nodeipam
from pilothouse.node import routes, servicenet
from pilothouse.node.runtime import fake as fake_runtime
from pilothouse.proxy import fake as fake_kernel
from pilothouse.proxy import rules
from pilothouse.testing import eventually, running_controllers

NODES = resources.DEFAULT.by_path("", "v1", "nodes")
SERVICES = resources.DEFAULT.by_path("", "v1", "services")
SLICES = resources.DEFAULT.by_path("discovery.k8s.io", "v1", "endpointslices")
NS = resources.DEFAULT.by_path("", "v1", "namespaces")
assert NODES and SERVICES and SLICES and NS


@pytest.fixture
async def client(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(api_server.server.socket_path))
    yield c
    await c.close()


def other_node(name: str, cidr: str, address: str) -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {"addresses": [{"type": "InternalIP", "address": address}]},
    }


async def test_proxy_and_routes_run_in_the_agent_and_are_removed_on_stop(
    client: rest.Client, api_server: testing.ServerThread, tmp_path: Path
) -> None:
    kernel = fake_kernel.FakeKernel()
    table = routes.FakeRouteTable(unreachable={"203.0.113.9"})
    name = "svcnet-" + uuid.uuid4().hex[:6]
    ns = "sn-" + uuid.uuid4().hex[:6]
    peer, far = f"{name}-peer", f"{name}-far"
    await client.create(NS, {"metadata": {"name": ns}})
    runtime = fake_runtime.FakeRuntime(fake_runtime.FakeImageService([]))
    agent = testing.node_agent(
        api_server,
        client,
        name=name,
        data_dir=tmp_path,
        runtime=runtime,
        network=servicenet.ServiceNetwork(kernel=kernel, routes=table),
    )
    svc = await client.create(
        SERVICES, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}, ns
    )
    await client.create(
        SLICES,
        {
            "metadata": {"name": "web-x", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.42.7.7"], "conditions": {"ready": True}}],
        },
        ns,
    )
    try:
        async with running_controllers(client, {"nodeipam": nodeipam.NodeIPAMController}):
            await agent.start()
            await client.create(NODES, other_node(peer, "10.42.200.0/24", "192.0.2.77"))
            await client.create(NODES, other_node(far, "10.42.201.0/24", "203.0.113.9"))
            key = f"{svc['spec']['clusterIP']} . tcp . 80"

            async def installed() -> bool:
                t = kernel.tables.get(rules.TABLE)
                return bool(t) and key in t.maps[rules.SERVICE_IPS]

            await eventually(installed)
            await eventually(lambda: _has(table, "10.42.200.0/24", "192.0.2.77"))
            assert "10.42.201.0/24" not in table.routes  # not on a shared network: refused
            states = {c.name: c.state for c in agent.supervisor.status()}
            # The agent's other loops (GC, eviction, provisioner…) run beside them.
            assert {k: states.get(k) for k in ("proxy", "routes")} == {
                "proxy": "running",
                "routes": "running",
            }
            # A node that goes away takes its route along.
            await client.delete(NODES, peer)
            await eventually(lambda: _gone(table, "10.42.200.0/24"))
    finally:
        await agent.stop()
        for n in (peer, far, name):
            await _delete(client, n)
    assert rules.TABLE not in kernel.tables
    assert table.routes == {}


async def _has(table: routes.FakeRouteTable, cidr: str, gw: str) -> bool:
    return table.routes.get(cidr) == gw


async def _gone(table: routes.FakeRouteTable, cidr: str) -> bool:
    return cidr not in table.routes


async def _delete(client: rest.Client, name: str) -> None:
    with contextlib.suppress(Exception):
        await client.delete(NODES, name)


def test_desired_routes_skip_ourselves_loopback_and_incomplete_nodes() -> None:
    nodes = [
        other_node("me", "10.42.0.0/24", "192.0.2.1"),
        other_node("b", "10.42.1.0/24", "192.0.2.2"),
        other_node("lo", "10.42.2.0/24", "127.0.0.1"),
        {"metadata": {"name": "nocidr"}, "spec": {}, "status": {}},
    ]
    assert routes.desired_routes(nodes, "me") == {"10.42.1.0/24": "192.0.2.2"}  # type: ignore[arg-type]
