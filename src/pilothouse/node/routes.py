"""Routes to the other nodes' pods: every node's pod CIDR via that node's address
(flannel's host-gw backend), kept from the Node objects.

:class:`HostGatewayRoutes` watches Nodes (the agent's shared informer) and, on
every change and every ``resync`` seconds, makes this node's routing table hold
exactly one route per other node — ``<podCIDR> via <InternalIP>`` — and none
for nodes that are gone. Its routes carry a protocol number of their own
(:data:`ROUTE_PROTOCOL`), so it can tell them from anyone else's and remove
exactly those when it stops. A node whose address is not on a network this node
is directly attached to cannot be a host-gw gateway: that is logged once per
node and address, as flannel refuses it. One task (the agent supervises it).

:class:`IPRouteTable` drives ``ip route``; :class:`FakeRouteTable` is for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from dataclasses import dataclass, field
from typing import Protocol

from pilothouse.api.meta import Obj
from pilothouse.client import informer

log = logging.getLogger(__name__)

ROUTE_PROTOCOL = 81  # any number /etc/iproute2/rt_protos leaves free
RESYNC = 30.0


class RouteError(Exception):
    """``ip route`` refused a change; the message is its own."""


class RouteTable(Protocol):
    async def list(self) -> dict[str, str]:
        """Our routes: destination CIDR -> gateway."""
        ...

    async def replace(self, destination: str, gateway: str) -> None: ...

    async def delete(self, destination: str) -> None: ...


class IPRouteTable:
    """The main routing table of this process's network namespace, via ``ip``."""

    def __init__(self, *, protocol: int = ROUTE_PROTOCOL) -> None:
        self.protocol = str(protocol)

    async def _ip(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "ip", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RouteError(err.decode(errors="replace").strip())
        return out.decode()

    async def list(self) -> dict[str, str]:
        text = await self._ip("-j", "-4", "route", "show", "proto", self.protocol)
        routes: dict[str, str] = {}
        for r in json.loads(text or "[]"):
            if r.get("gateway") and r.get("dst"):
                routes[str(ipaddress.ip_network(r["dst"], strict=False))] = r["gateway"]
        return routes

    async def replace(self, destination: str, gateway: str) -> None:
        await self._ip("route", "replace", destination, "via", gateway, "proto", self.protocol)

    async def delete(self, destination: str) -> None:
        await self._ip("route", "del", destination, "proto", self.protocol)


@dataclass
class FakeRouteTable:
    routes: dict[str, str] = field(default_factory=dict)
    unreachable: set[str] = field(default_factory=set)  # gateways "not on a local network"

    async def list(self) -> dict[str, str]:
        return dict(self.routes)

    async def replace(self, destination: str, gateway: str) -> None:
        if gateway in self.unreachable:
            raise RouteError("Error: Nexthop has invalid gateway.")
        self.routes[destination] = gateway

    async def delete(self, destination: str) -> None:
        self.routes.pop(destination, None)


def _internal_ip(node: Obj) -> str:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP":
            return str(a.get("address") or "")
    return ""


def desired_routes(nodes: list[Obj], me: str) -> dict[str, str]:
    """Pod CIDR -> node address, for every other node that has both."""
    out: dict[str, str] = {}
    for node in nodes:
        if node["metadata"]["name"] == me:
            continue
        cidr = (node.get("spec") or {}).get("podCIDR")
        address = _internal_ip(node)
        if not cidr or not address:
            continue
        try:
            if ipaddress.ip_address(address).is_loopback:
                continue  # a single-machine node; nothing can route to it
            out[str(ipaddress.ip_network(cidr, strict=False))] = address
        except ValueError:
            continue
    return out


class HostGatewayRoutes:
    def __init__(
        self,
        *,
        nodes: informer.Informer,
        node_name: str,
        table: RouteTable,
        resync: float = RESYNC,
    ) -> None:
        self.nodes = nodes
        self.node_name = node_name
        self.table = table
        self.resync = resync
        self._wake = asyncio.Event()
        self._refused: set[tuple[str, str]] = set()
        nodes.add_handlers(
            on_add=lambda _n: self._wake.set(),
            on_update=lambda _o, _n: self._wake.set(),
            on_delete=lambda _n: self._wake.set(),
        )

    async def run(self) -> None:
        await self.nodes.wait_synced()
        while True:
            self._wake.clear()
            await self.reconcile()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.resync)

    async def reconcile(self) -> None:
        want = desired_routes(self.nodes.indexer.list(), self.node_name)
        have = await self.table.list()
        for destination in sorted(set(have) - set(want)):
            await self.table.delete(destination)
            log.info("removed the route to %s (its node is gone)", destination)
        for destination, gateway in sorted(want.items()):
            if have.get(destination) == gateway:
                continue
            try:
                await self.table.replace(destination, gateway)
            except RouteError as exc:
                if (destination, gateway) not in self._refused:
                    self._refused.add((destination, gateway))
                    log.warning(
                        "cannot route pod network %s via %s (%s): host-gw needs every node on "
                        "a network this node is attached to",
                        destination,
                        gateway,
                        exc,
                    )
                continue
            log.info("routing pod network %s via %s", destination, gateway)

    async def cleanup(self) -> None:
        """Remove every route this node added (idempotent)."""
        for destination in await self.table.list():
            try:
                await self.table.delete(destination)
            except RouteError as exc:
                log.warning("could not remove the route to %s: %s", destination, exc)
