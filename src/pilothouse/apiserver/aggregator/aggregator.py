"""The aggregator: which requests go to another API server, and the loops behind it.

:meth:`Aggregator.route` is asked for every request path: a path under
``/apis/<group>/<version>`` of an APIService with a Service is answered by the
:class:`~pilothouse.apiserver.aggregator.proxy.Proxy`; everything else is served
here. The routing table is rebuilt only when APIServices change, so a server
without aggregated APIs pays one dictionary check per request.

Started after the stores exist: it writes the local APIServices and the
``extension-apiserver-authentication`` ConfigMap, then runs the availability
controller and the discovery fetcher as supervised children.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pilothouse import supervisor
from pilothouse.api import errors, resources
from pilothouse.apiserver import watchcache
from pilothouse.apiserver.aggregator import available, discovery, frontproxy, proxy, registration
from pilothouse.apiserver.handlers import discovery as discovery_handler
from pilothouse.apiserver.handlers import openapi as openapi_handler
from pilothouse.apiserver.registry.store import ResourceStore
from pilothouse.apiserver.webhook import client, resolver

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Aggregator:
    """APIServices: local registration, availability, proxying, merged discovery."""

    def __init__(
        self,
        *,
        registry: resources.Registry,
        cache: watchcache.WatchCache,
        api_services: ResourceStore,
        config_maps: ResourceStore,
        pki_dir: pathlib.Path,
        client_ca: bytes,
        discovery_docs: discovery_handler.Discovery,
        openapi_docs: openapi_handler.OpenAPIV3,
        children: supervisor.Supervisor | None = None,
    ) -> None:
        self.registry = registry
        self.cache = cache
        self.api_services = api_services
        self.config_maps = config_maps
        self.pki_dir = pki_dir
        self.client_ca = client_ca
        self.discovery_docs = discovery_docs
        self.openapi_docs = openapi_docs
        self.services = resolver.ServiceResolver(cache)
        self.clients: client.ClientManager | None = None
        self.proxy: proxy.Proxy | None = None
        self.extensions: discovery.ExtensionDiscovery | None = None
        self.availability: available.AvailabilityController | None = None
        # The server's (nested), so /readyz sees a follower down while it restarts.
        self._children = children or supervisor.Supervisor("aggregator")
        self._routes: dict[tuple[str, str], str] = {}
        self._routes_seen: tuple[int, int] | None = None

    # --- life cycle ---------------------------------------------------------------
    async def start(self) -> None:
        files = frontproxy.ensure(self.pki_dir)
        self.clients = client.ClientManager(
            self.services, client_cert=(str(files.client_cert), str(files.client_key))
        )
        self.proxy = proxy.Proxy(clients=self.clients, services=self.services)
        local = await registration.register_local(self.api_services, self.registry)
        await self._ensure_authentication_configmap(files.ca_cert.read_bytes())
        self.extensions = discovery.ExtensionDiscovery(
            cache=self.cache,
            clients=self.clients,
            services=self.services,
            local_group_versions=lambda: set(self.registry.group_versions),
            changed=self._extensions_changed,
        )
        self.openapi_docs.external = self.extensions
        extensions = self.extensions
        self.availability = available.AvailabilityController(
            cache=self.cache,
            store=self.api_services,
            services=self.services,
            clients=self.clients,
            changed=extensions.poke,
        )
        # Local APIServices are Available before the first request (upstream holds
        # /readyz until they are: its autoregister-completion check).
        for name in local:
            await self.availability.sync(name)
        self._children.start("apiservice-availability", self.availability.run)
        self._children.start("apiservice-discovery", extensions.run)

    async def stop(self) -> None:
        await self._children.stop()
        if self.clients is not None:
            await self.clients.close()

    async def _ensure_authentication_configmap(self, front_proxy_ca: bytes) -> None:
        wanted = frontproxy.authentication_configmap(
            client_ca=self.client_ca, front_proxy_ca=front_proxy_ca
        )
        current = await self.config_maps.current("kube-system", frontproxy.CONFIGMAP)
        if current is None:
            with contextlib.suppress(errors.StatusError):
                await self.config_maps.create("kube-system", wanted)
            return
        if current.obj.get("data") == wanted["data"]:
            return

        async def update(obj: dict[str, Any]) -> dict[str, Any]:
            obj["data"] = wanted["data"]
            return obj

        await self.config_maps.guaranteed_update("kube-system", frontproxy.CONFIGMAP, update)

    def _extensions_changed(self) -> None:
        assert self.extensions is not None
        groups = discovery.ordered_groups(list(self.extensions.group_versions))
        self.discovery_docs.set_extensions(
            [
                (
                    group,
                    [
                        discovery_handler.ExtensionVersion(
                            gv.version,
                            tuple(
                                discovery.aggregated_resources(gv.group, gv.version, gv.resources)
                            ),
                            gv.fresh,
                        )
                        for gv in versions
                    ],
                )
                for group, versions in groups
            ]
        )

    # --- routing ------------------------------------------------------------------
    def _route_table(self) -> dict[tuple[str, str], str]:
        resource = self.cache.caches.get(available.API_SERVICES)
        if resource is None:
            return {}
        last = resource.events[-1].revision if resource.events else resource.floor
        seen = (last, len(resource.objects))
        if seen != self._routes_seen:
            table: dict[tuple[str, str], str] = {}
            for entry in resource.objects.values():
                spec = entry.obj.get("spec") or {}
                if isinstance(spec.get("service"), dict):
                    table[(str(spec.get("group") or ""), str(spec.get("version") or ""))] = str(
                        entry.obj["metadata"]["name"]
                    )
            self._routes, self._routes_seen = table, seen
        return self._routes

    def route(self, path: str) -> Handler | None:
        """The handler of a request to an aggregated group-version, else None."""
        table = self._route_table()
        if not table or not path.startswith("/apis/"):
            return None
        parts = path.split("/", 5)
        if len(parts) < 4:
            return None
        name = table.get((parts[2], parts[3]))
        if name is None:
            return None
        entry = self.api_services.cache.objects.get(self.api_services.key("", name))
        if entry is None:
            return None
        api_service = entry.obj
        assert self.proxy is not None
        handle = self.proxy.handle

        async def proxied(request: web.Request) -> web.StreamResponse:
            return await handle(request, api_service)

        return proxied
