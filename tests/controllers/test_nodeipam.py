"""Node IPAM: a /24 per node, distinct, CIDRNotAvailable when the cluster range is
full, and a freed range goes to a node that waited.

A server of its own, so the only nodes are this test's.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.controllers import nodeipam
from pilothouse.testing import eventually, running_controllers

NODES = resources.DEFAULT.by_path("", "v1", "nodes")
EVENTS = resources.DEFAULT.by_path("", "v1", "events")
assert NODES and EVENTS


@pytest.fixture
async def own_client(tmp_path: Path) -> AsyncIterator[rest.Client]:
    srv = testing.ServerThread(tmp_path / "server").start()
    client = rest.Client(config.load_kubeconfig(srv.kubeconfig))
    try:
        yield client
    finally:
        await client.close()
        srv.stop()


async def _cidrs(client: rest.Client) -> dict[str, str]:
    items = (await client.list(NODES))["items"]
    return {n["metadata"]["name"]: (n.get("spec") or {}).get("podCIDR", "") for n in items}


async def test_ranges_are_distinct_exhaustion_is_reported_and_freed_ranges_reused(
    own_client: rest.Client,
) -> None:
    client = own_client
    small: Any = functools.partial(nodeipam.NodeIPAMController, cluster_cidr="10.99.0.0/23")
    async with running_controllers(client, {"nodeipam": small}):
        for name in ("n1", "n2"):
            await client.create(NODES, {"metadata": {"name": name}})

        async def two_assigned() -> dict[str, str] | None:
            got = await _cidrs(client)
            return got if got.get("n1") and got.get("n2") else None

        got = await eventually(two_assigned)
        assert {got["n1"], got["n2"]} == {"10.99.0.0/24", "10.99.1.0/24"}
        for cidr in got.values():
            assert ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network("10.99.0.0/23"))

        await client.create(NODES, {"metadata": {"name": "n3"}})

        async def reported() -> bool:
            items = (await client.list(EVENTS, "default"))["items"]
            return any(
                e["reason"] == "CIDRNotAvailable" and e["involvedObject"]["name"] == "n3"
                for e in items
            )

        await eventually(reported)
        assert (await _cidrs(client))["n3"] == ""

        freed = got["n1"]
        await client.delete(NODES, "n1")

        async def reused() -> bool:
            return (await _cidrs(client)).get("n3") == freed

        await eventually(reused)
