"""Node IPAM: gives every node a /24 of the cluster CIDR for its pods (10.42.0.0/16).

Allocation reads every node's ``spec.podCIDR`` from the informer, so a
restart re-learns what is taken; one worker assigns, so two nodes never get
the same range in one process (leader election covers several processes).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from pilothouse.api import errors
from pilothouse.client import rest
from pilothouse.controllers import base

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CLUSTER_CIDR = "10.42.0.0/16"
NODE_PREFIX = 24


class NodeIPAMController(base.Controller):
    name = "nodeipam"
    workers = 1

    def __init__(
        self, ctx: Any, *, cluster_cidr: str = CLUSTER_CIDR, node_prefix: int = NODE_PREFIX
    ) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.nodes_resource = ctx.resource("", "v1", "nodes")
        self.nodes = ctx.informers.informer(self.nodes_resource)
        self.cluster = ipaddress.ip_network(cluster_cidr)
        self.prefix = node_prefix
        # Ranges in use, kept in step by the handlers (recounting every node on
        # every allocation is quadratic when thousands of nodes register).
        self._taken: dict[str, set[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
        self._next = 0
        self.nodes.add_handlers(
            on_add=self._seen, on_update=lambda _o, n: self._seen(n), on_delete=self._gone
        )

    async def wait_ready(self) -> None:
        await self.nodes.wait_synced()

    @staticmethod
    def _ranges(node: Obj) -> set[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        spec = node.get("spec") or {}
        out = set()
        for cidr in spec.get("podCIDRs") or [spec.get("podCIDR")]:
            if cidr:
                try:
                    out.add(ipaddress.ip_network(cidr))
                except ValueError:
                    continue
        return out

    def _seen(self, node: Obj) -> None:
        self._taken[node["metadata"]["name"]] = self._ranges(node)
        if not (node.get("spec") or {}).get("podCIDR"):
            self.enqueue(node)

    def _gone(self, node: Obj) -> None:
        self._taken.pop(node["metadata"]["name"], None)

    async def sync(self, key: str) -> None:
        node = self.nodes.indexer.get(key)
        if node is None or (node.get("spec") or {}).get("podCIDR"):
            return
        taken: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
        for ranges in self._taken.values():
            taken |= ranges
        subnets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = list(
            self.cluster.subnets(new_prefix=self.prefix)
        )
        subnet = subnets[0]
        for i in range(len(subnets)):
            candidate = subnets[(self._next + i) % len(subnets)]
            if candidate not in taken:
                subnet = candidate
                self._next = (self._next + i + 1) % len(subnets)
                break
        else:
            log.error("node IPAM: %s is full; node %s gets no pod CIDR", self.cluster, key)
            return
        cidr = str(subnet)
        try:
            await self.client.patch(
                self.nodes_resource, key, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}
            )
        except errors.StatusError as exc:
            if exc.code != 404:
                raise
            return
        self._taken[key] = {subnet}
        log.info("node IPAM: %s gets %s", key, cidr)
