"""Cluster DNS as a node component: one server in every agent, answering on the cluster DNS IP.

Like NodeLocal DNSCache, every node answers its own pods: the agent puts the
cluster DNS address (10.43.0.10) on the node (:mod:`pilothouse.dns.link`), so a
pod's query goes through its gateway to its own node and never crosses the
network or a proxy rule. The ``kube-dns`` Service in ``kube-system`` (made by
the API server at start-up) carries that address for discovery only; its
``service.kubernetes.io/service-proxy-name`` label tells kube-proxies to leave
it alone.

:class:`NodeLocalDNS` wires the parts together: informers (Services,
EndpointSlices, and Namespaces as metadata only) from the agent's shared
factory feed :class:`~pilothouse.dns.records.ClusterRecords`; the
:class:`~pilothouse.dns.server.DNSServer` answers from them and forwards the
rest through :class:`~pilothouse.dns.forward.Forwarder`; CoreDNS-named metrics
are served on port 9153 of the same address.

Restarts: :meth:`NodeLocalDNS.run` is a supervised child of the agent. It makes
the address (idempotent, so an address left by a killed agent is reused),
binds, serves until cancelled and closes its sockets; the supervisor restarts
it after a failure. When the API server restarts, the informers keep their
caches and resume their watches, so answers never stop; when the agent
restarts, the new one lists afresh and answers within one listing, with a
name error answered SERVFAIL (retry) rather than NXDOMAIN until then.
:meth:`NodeLocalDNS.teardown` takes the address away when the agent exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from pilothouse import supervisor
from pilothouse.api import resources
from pilothouse.client import informer
from pilothouse.dns import forward, link, resolvconf
from pilothouse.dns import metrics as dns_metrics
from pilothouse.dns import records as recs
from pilothouse.dns import resolver as res
from pilothouse.dns import server as dns_server

log = logging.getLogger(__name__)

SERVICES = resources.Resource("", "v1", "Service", "services", True)
ENDPOINT_SLICES = resources.Resource(
    "discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True
)
NAMESPACES = resources.Resource("", "v1", "Namespace", "namespaces", False)
METRICS_PORT = 9153


@dataclass(frozen=True)
class Config:
    """Where and how this node serves cluster DNS."""

    addresses: tuple[str, ...] = ("10.43.0.10",)  # the kubelet's --cluster-dns
    domain: str = "cluster.local"
    upstream_resolv_conf: Path = resolvconf.HOST_RESOLV_CONF
    port: int = 53
    metrics_port: int | None = METRICS_PORT
    manage_addresses: bool = True  # False: the addresses exist already (tests on 127.0.0.1)
    ttl: int = 5


class NodeLocalDNS:
    """This node's cluster DNS server; see the module docstring."""

    def __init__(self, config: Config, *, tasks: supervisor.Supervisor) -> None:
        for a in config.addresses:
            ipaddress.ip_address(a)  # a ValueError here is a configuration mistake
        self.config = config
        self.tasks = tasks
        self.records = recs.ClusterRecords()
        self.resolver = res.ClusterResolver(
            self.records, domain=config.domain, ttl=config.ttl, dns_ips=config.addresses
        )
        self.forwarder = forward.Forwarder(
            resolv_conf=config.upstream_resolv_conf, exclude=config.addresses
        )
        first = config.addresses[0] if config.addresses else ""
        self.stats = dns_metrics.DNSStats(server=f"dns://{first}:{config.port}")
        self.server = dns_server.DNSServer(
            records=self.records,
            resolver=self.resolver,
            forwarder=self.forwarder,
            spawn=self._spawn,
            stats=self.stats,
        )
        self.registry = dns_metrics.registry(
            dns_metrics.Collector(self.stats, self.forwarder, family="1")
        )
        self._placement: link.Placement | None = None
        self.serving = asyncio.Event()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> object:
        return self.tasks.spawn(coro, name=name)

    def attach(self, informers: informer.InformerFactory) -> None:
        """Feed the records from the agent's shared informers (call before they start)."""
        r = self.records
        services = informers.informer(SERVICES)
        services.add_handlers(
            on_add=r.on_service,
            on_update=lambda _old, new: r.on_service(new),
            on_delete=r.on_service_deleted,
        )
        slices = informers.informer(ENDPOINT_SLICES)
        slices.add_handlers(
            on_add=r.on_slice,
            on_update=lambda _old, new: r.on_slice(new),
            on_delete=r.on_slice_deleted,
        )
        namespaces = informers.informer(NAMESPACES, metadata_only=True)
        namespaces.add_handlers(
            on_add=r.on_namespace,
            on_update=lambda _old, new: r.on_namespace(new),
            on_delete=r.on_namespace_deleted,
        )
        r.track_synced(services.has_synced, slices.has_synced, namespaces.has_synced)

    async def run(self) -> None:
        """Serve until cancelled (a supervised child of the agent)."""
        cfg = self.config
        if cfg.manage_addresses and self._placement is None:
            self._placement = await link.ensure(cfg.addresses)
        metrics: web.AppRunner | None = None
        try:
            for address in cfg.addresses:
                await self.server.listen(address, cfg.port)
            if cfg.metrics_port is not None:
                metrics = await self._serve_metrics(cfg.metrics_port)
            log.info(
                "cluster DNS for %s serving on %s port %d",
                cfg.domain,
                ", ".join(cfg.addresses),
                self.server.port,
            )
            self.serving.set()
            await asyncio.Event().wait()  # until cancelled
        finally:
            self.serving.clear()
            await self.server.close()
            if metrics is not None:
                await metrics.cleanup()

    async def _serve_metrics(self, port: int) -> web.AppRunner | None:
        runner = web.AppRunner(
            dns_metrics.app(self.registry), access_log=None, handle_signals=False
        )
        await runner.setup()
        try:
            for address in self.config.addresses:
                await web.TCPSite(runner, address, port, reuse_address=True).start()
        except OSError as exc:
            # DNS matters more than its metrics: serve without them, say so once.
            log.warning("cluster DNS metrics not served on port %d: %s", port, exc)
            await runner.cleanup()
            return None
        return runner

    async def teardown(self) -> None:
        """Release what :meth:`run` made on the node (when the agent exits)."""
        self.forwarder.close()
        if self._placement is not None:
            with contextlib.suppress(link.LinkError, OSError):
                await link.remove(self._placement)
            self._placement = None
