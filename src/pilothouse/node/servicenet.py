"""The node's side of Services, run by the agent: the service proxy and the routes to
the other nodes' pods.

:class:`ServiceNetwork` says how (the proxy's kernel seam, the routing table, the
cluster's address ranges; :meth:`ServiceNetwork.real` for nftables and ``ip route``
in this process's network namespace). :class:`NodeServices` builds the
:class:`~pilothouse.proxy.proxier.Proxier` and the
:class:`~pilothouse.node.routes.HostGatewayRoutes` on the agent's shared informers,
starts both as children of the agent's supervisor, and removes the proxy's table
and the routes when the agent stops — the agent owns both entirely.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pilothouse import supervisor
from pilothouse.client import events, informer, rest
from pilothouse.node import routes as node_routes
from pilothouse.proxy import kernel as proxy_kernel
from pilothouse.proxy import proxier as proxy_proxier
from pilothouse.proxy import rules as proxy_rules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceNetwork:
    """How the node joins the Service network: the proxy's kernel seam, the routing
    table for other nodes' pod CIDRs, and the cluster's address ranges."""

    kernel: proxy_kernel.Kernel
    routes: node_routes.RouteTable
    cluster_cidr: str = "10.42.0.0/16"
    service_cidr: str = "10.43.0.0/16"
    localhost_nodeports: bool = True
    proxy_table: str = proxy_rules.TABLE

    @classmethod
    def real(cls, **kw: Any) -> ServiceNetwork:
        """nftables and ``ip route`` in this process's network namespace."""
        return cls(kernel=proxy_kernel.NftKernel(), routes=node_routes.IPRouteTable(), **kw)


class NodeServices:
    """The proxy and the host-gw routes of one node (see the module docstring)."""

    def __init__(
        self,
        network: ServiceNetwork,
        *,
        client: rest.Client,
        node_name: str,
        address: str,
        services: informer.Informer,
        slices: informer.Informer,
        nodes: informer.Informer,
    ) -> None:
        self.recorder = events.EventRecorder(client, component="kube-proxy", host=node_name)
        self.proxy = proxy_proxier.Proxier(
            services=services,
            slices=slices,
            kernel=network.kernel,
            config=proxy_rules.Config(
                node_name=node_name,
                cluster_cidr=network.cluster_cidr,
                service_cidr=network.service_cidr,
                localhost_nodeports=network.localhost_nodeports,
                table=network.proxy_table,
            ),
            node_ips=(address,),
            recorder=self.recorder,
        )
        self.routes = node_routes.HostGatewayRoutes(
            nodes=nodes, node_name=node_name, table=network.routes
        )

    def start(self, tasks: supervisor.Supervisor) -> None:
        self.recorder.start(tasks)
        tasks.start("proxy", self.proxy.run)
        tasks.start("routes", self.routes.run)

    async def stop(self) -> None:
        """Remove the rules and the routes (after the supervisor stopped the loops)."""
        try:
            await self.proxy.cleanup()
        except proxy_kernel.NftError as exc:
            log.warning("could not remove the service rules: %s", exc)
        await self.routes.cleanup()
        await self.recorder.stop()
