"""Node IPAM: gives every node a /24 of the cluster CIDR for its pods (10.42.0.0/16).

Allocation reads every node's ``spec.podCIDR`` from the informer, so a
restart re-learns what is taken; one worker assigns, so two nodes never get
the same range in one process (leader election covers several processes).
When every range is taken, a node gets a CIDRNotAvailable event (as upstream)
and waits; deleting a node lets the waiting ones try again.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from pilothouse.api import errors
from pilothouse.client import events, rest
from pilothouse.controllers import base

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CLUSTER_CIDR = "10.42.0.0/16"
NODE_PREFIX = 24


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class NodeIPAMController(base.Controller):
    name = "nodeipam"
    workers = 1

    def __init__(
        self, ctx: Any, *, cluster_cidr: str = CLUSTER_CIDR, node_prefix: int = NODE_PREFIX
    ) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.recorder: events.EventRecorder = ctx.recorder("node-ipam-controller")
        self.nodes_resource = ctx.resource("", "v1", "nodes")
        self.nodes = ctx.informers.informer(self.nodes_resource)
        self.cluster = ipaddress.ip_network(cluster_cidr)
        self.subnets: list[Network] = list(self.cluster.subnets(new_prefix=node_prefix))
        # Which node holds each range, kept in step by the handlers (recounting every
        # node on every allocation is quadratic when thousands of nodes register).
        self._owner: dict[Network, str] = {}
        self._ranges_of: dict[str, set[Network]] = {}
        self._next = 0
        self._exhausted = False  # reported once; nodes waiting retry when a range frees
        self.nodes.add_handlers(
            on_add=self._seen, on_update=lambda _o, n: self._seen(n), on_delete=self._gone
        )

    async def wait_ready(self) -> None:
        await self.nodes.wait_synced()

    @staticmethod
    def _ranges(node: Obj) -> set[Network]:
        spec = node.get("spec") or {}
        out = set()
        for cidr in spec.get("podCIDRs") or [spec.get("podCIDR")]:
            if cidr:
                try:
                    out.add(ipaddress.ip_network(cidr))
                except ValueError:
                    continue
        return out

    def _hold(self, name: str, ranges: set[Network]) -> None:
        self._release(name)
        self._ranges_of[name] = ranges
        for r in ranges:
            self._owner[r] = name

    def _release(self, name: str) -> None:
        for r in self._ranges_of.pop(name, ()):
            if self._owner.get(r) == name:
                del self._owner[r]

    def _seen(self, node: Obj) -> None:
        self._hold(node["metadata"]["name"], self._ranges(node))
        if not (node.get("spec") or {}).get("podCIDR"):
            self.enqueue(node)

    def _gone(self, node: Obj) -> None:
        self._release(node["metadata"]["name"])
        if self._exhausted:  # a range may be free now: the nodes that went without retry
            self._exhausted = False
            for waiting in self.nodes.indexer.list():
                if not (waiting.get("spec") or {}).get("podCIDR"):
                    self.enqueue(waiting)

    def _free_range(self) -> Network | None:
        count = len(self.subnets)
        for i in range(count):
            candidate = self.subnets[(self._next + i) % count]
            if candidate not in self._owner:
                self._next = (self._next + i + 1) % count
                return candidate
        return None

    async def sync(self, key: str) -> None:
        node = self.nodes.indexer.get(key)
        if node is None or (node.get("spec") or {}).get("podCIDR"):
            return
        subnet = self._free_range()
        if subnet is None:
            # Upstream records CIDRNotAvailable on the node; say it loudly once, not per node.
            if not self._exhausted:
                log.error("node IPAM: %s is full; nodes without a pod CIDR wait", self.cluster)
            log.debug("node IPAM: no pod CIDR for %s", key)
            self._exhausted = True
            self.recorder.event(
                node,
                events.NORMAL,
                "CIDRNotAvailable",
                f"Node {key} status is now: CIDRNotAvailable",
            )
            return
        cidr = str(subnet)
        try:
            await self.client.patch(
                self.nodes_resource, key, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}
            )
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise
            return
        self._hold(key, {subnet})
        log.info("node IPAM: %s gets %s", key, cidr)
