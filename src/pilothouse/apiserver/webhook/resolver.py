"""Where a Service's backend is reached, read from the watch cache.

Upstream's ``ResolveEndpoint`` (the resolver behind ``--enable-aggregator-routing``,
which k3s turns on): a random ready address of the Service's Endpoints on the port
whose name matches the Service port's. An ``ExternalName`` Service is reached at its
external name (upstream's ``ResolveCluster`` does the same; endpoint routing has
nothing to route to). Failures carry upstream's words (``service "x" not found``,
``no endpoints available for service "x"``), which end up in webhook and proxy
error messages.

Reads only: called from many requests at once, it never waits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from pilothouse.apiserver import watchcache

_SERVICES = "/registry/services/"
_ENDPOINTS = "/registry/endpoints/"


class ResolveError(Exception):
    """The Service cannot be reached; the message is upstream's."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    @property
    def netloc(self) -> str:
        return join_host_port(self.host, self.port)


def join_host_port(host: str, port: int) -> str:
    """Go's ``net.JoinHostPort``: IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ServiceResolver:
    """Resolves ``(namespace, name, port)`` of a Service to an address to dial."""

    def __init__(self, cache: watchcache.WatchCache) -> None:
        self.cache = cache

    def get(self, prefix: str, namespace: str, name: str) -> dict[str, Any] | None:
        resource = self.cache.caches.get(prefix)
        if resource is None:
            return None
        entry = resource.objects.get(f"{prefix}{namespace}/{name}")
        return entry.obj if entry is not None else None

    def resolve(self, namespace: str, name: str, port: int) -> Address:
        if not name or not namespace or not port:
            raise ResolveError("cannot resolve an empty service name or namespace or port")
        service = self.get(_SERVICES, namespace, name)
        if service is None:
            raise ResolveError(f'service "{name}" not found')
        spec = service.get("spec") or {}
        kind = spec.get("type") or "ClusterIP"
        if kind == "ExternalName":
            return Address(str(spec.get("externalName") or ""), port)
        if kind not in ("ClusterIP", "LoadBalancer", "NodePort"):
            raise ResolveError(f'unsupported service type "{kind}"')
        service_port = next(
            (p for p in spec.get("ports") or [] if isinstance(p, dict) and p.get("port") == port),
            None,
        )
        if service_port is None:
            raise ResolveError(f'no service port {port} found for service "{name}"')
        endpoints = self.get(_ENDPOINTS, namespace, name)
        if endpoints is None:
            raise ResolveError(f'endpoints "{name}" not found')
        subsets = [s for s in endpoints.get("subsets") or [] if isinstance(s, dict)]
        if not subsets:
            raise ResolveError(f'no endpoints available for service "{name}"')
        port_name = service_port.get("name") or ""
        start = random.randrange(len(subsets))
        for i in range(len(subsets)):
            subset = subsets[(start + i) % len(subsets)]
            addresses = subset.get("addresses") or []
            if not addresses:
                continue
            for endpoint_port in subset.get("ports") or []:
                if (endpoint_port.get("name") or "") == port_name:
                    address = random.choice(addresses)
                    return Address(
                        str(address.get("ip") or ""), int(endpoint_port.get("port") or 0)
                    )
        raise ResolveError(f'no endpoints available for service "{name}"')

    def ready(self, namespace: str, name: str, port: int) -> bool:
        """Whether the Service resolves now (the availability check asks)."""
        try:
            self.resolve(namespace, name, port)
        except ResolveError:
            return False
        return True
