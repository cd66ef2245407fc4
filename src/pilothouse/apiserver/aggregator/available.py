"""The ``Available`` condition of APIServices (kube-aggregator's local and remote
availability controllers).

A local APIService is ``True``/``Local``. For one with a Service, in upstream's
order: the Service must exist (``ServiceNotFound``), listen on the port
(``ServicePortError``), have Endpoints (``EndpointsNotFound``) with an address on
that port (``MissingEndpoints``), and answer ``GET /apis/<group>/<version>`` with a
2xx within 5 s to a request made as ``system:kube-aggregator`` in ``system:masters``
(``FailedDiscoveryCheck``, with the failure); then ``True``/``Passed``.

One task runs the controller: a queue of APIService names fed by watches on
APIServices, Services and Endpoints (in the watch cache) and by a 30 s resync of the
remote ones, and one worker that checks a name at a time — checks are cheap, and one
at a time means the status writes of one APIService never race each other. A
failed check is requeued with a growing delay. Status is written only when it
changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pilothouse.api import errors, meta
from pilothouse.apiserver import resourcecache, watchcache
from pilothouse.apiserver.aggregator import frontproxy, registration
from pilothouse.apiserver.registry.store import ResourceStore
from pilothouse.apiserver.webhook import client, resolver

log = logging.getLogger(__name__)

API_SERVICES = "/registry/apiregistration.k8s.io/apiservices/"
SERVICES = "/registry/services/"
ENDPOINTS = "/registry/endpoints/"
RESYNC = 30.0
CHECK_TIMEOUT = 5.0
ATTEMPTS = 3
AGGREGATOR_USER = "system:kube-aggregator"


def condition_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Available":
            return condition
    return None


def is_available(obj: dict[str, Any]) -> bool:
    condition = condition_of(obj)
    return condition is not None and condition.get("status") == "True"


def discovery_path(obj: dict[str, Any]) -> str:
    spec = obj.get("spec") or {}
    if (obj.get("metadata") or {}).get("name") == "v1.":
        return f"/api/{spec.get('version')}"
    return f"/apis/{spec.get('group')}/{spec.get('version')}"


class AvailabilityController:
    """Keeps every APIService's ``Available`` condition current."""

    def __init__(
        self,
        *,
        cache: watchcache.WatchCache,
        store: ResourceStore,
        services: resolver.ServiceResolver,
        clients: client.ClientManager,
        changed: Callable[[], None] = lambda: None,
        resync: float = RESYNC,
    ) -> None:
        self.cache = cache
        self.store = store
        self.services = services
        self.clients = clients
        self.changed = changed
        self.resync = resync
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: set[asyncio.TimerHandle] = set()

    # --- the queue ------------------------------------------------------------------
    def enqueue(self, name: str) -> None:
        if name not in self._queued:
            self._queued.add(name)
            self._queue.put_nowait(name)

    def enqueue_after(self, name: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._timers.discard(handle)
            self.enqueue(name)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def _all(self) -> list[dict[str, Any]]:
        resource = self.cache.caches.get(API_SERVICES)
        return [e.obj for e in resource.objects.values()] if resource is not None else []

    def _referencing(self, namespace: str, name: str) -> list[str]:
        out = []
        for obj in self._all():
            service = (obj.get("spec") or {}).get("service")
            if isinstance(service, dict) and (service.get("namespace"), service.get("name")) == (
                namespace,
                name,
            ):
                out.append(str(obj["metadata"]["name"]))
        return out

    # --- the loop -------------------------------------------------------------------
    async def run(self) -> None:
        """Follow APIServices, Services and Endpoints and keep each APIService's
        availability; a follower that fails ends the run (its supervisor restarts it)."""
        watchers: list[tuple[resourcecache.ResourceCache, resourcecache.Watcher]] = []
        try:
            await self.cache.consistent()
            async with asyncio.TaskGroup() as followers:
                for prefix in (API_SERVICES, SERVICES, ENDPOINTS):
                    resource = self.cache.caches[prefix]
                    watcher = resource.watch(prefix, None, self.cache.revision)
                    assert watcher is not None
                    watchers.append((resource, watcher))
                    followers.create_task(self._follow(prefix, watcher))
                for obj in self._all():
                    self.enqueue(str(obj["metadata"]["name"]))
                while True:
                    name = await self._queue.get()
                    self._queued.discard(name)
                    await self._sync_one(name)
        finally:
            for resource, watcher in watchers:
                resource.unwatch(watcher)
            for handle in self._timers:
                handle.cancel()
            self._timers.clear()

    async def _follow(self, prefix: str, watcher: resourcecache.Watcher) -> None:
        while not watcher.closed:
            for _, entry in await watcher.next_batch(None):
                md = entry.obj.get("metadata") or {}
                if prefix == API_SERVICES:
                    self.enqueue(str(md.get("name")))
                    self.changed()
                else:
                    for name in self._referencing(str(md.get("namespace")), str(md.get("name"))):
                        self.enqueue(name)
        raise RuntimeError(f"watch of {prefix} closed (fell behind)")

    async def _sync_one(self, name: str) -> None:
        try:
            remote = await self.sync(name)
        except Exception as exc:  # a check that failed is retried, never the loop's end
            failures = self._failures.get(name, 0) + 1
            self._failures[name] = failures
            delay = min(0.5 * 2**failures, self.resync)
            if not errors.is_conflict(exc):
                log.warning("APIService %s: %s (retrying in %.1fs)", name, exc, delay)
            self.enqueue_after(name, delay)
            return
        self._failures.pop(name, None)
        if remote:
            self.enqueue_after(name, self.resync)

    # --- one APIService -----------------------------------------------------------------
    async def sync(self, name: str) -> bool:
        """Check ``name`` and record the outcome; True for a remote APIService."""
        entry = await self.store.current("", name)
        if entry is None:
            return False
        obj = entry.obj
        spec = obj.get("spec") or {}
        service = spec.get("service")
        if not isinstance(service, dict):
            await self._record(obj, "True", "Local", registration.LOCAL_CONDITION_MESSAGE)
            return False
        status, reason, message = await self.check(obj)
        await self._record(obj, status, reason, message)
        if status != "True" and reason == "FailedDiscoveryCheck":
            raise RuntimeError(message)
        return True

    async def check(self, obj: dict[str, Any]) -> tuple[str, str, str]:
        spec = obj.get("spec") or {}
        ref = spec.get("service") or {}
        namespace, name = str(ref.get("namespace") or ""), str(ref.get("name") or "")
        port = int(ref.get("port") or 443)
        service_entry = self.services.get(SERVICES, namespace, name)
        if service_entry is None:
            return "False", "ServiceNotFound", f'service/{name} in "{namespace}" is not present'
        service_spec = service_entry.get("spec") or {}
        if (service_spec.get("type") or "ClusterIP") == "ClusterIP":
            ports = [p for p in service_spec.get("ports") or [] if p.get("port") == port]
            if not ports:
                return (
                    "False",
                    "ServicePortError",
                    f'service/{name} in "{namespace}" is not listening on port {port}',
                )
            port_name = ports[0].get("name") or ""
            endpoints = self.services.get(ENDPOINTS, namespace, name)
            if endpoints is None:
                return (
                    "False",
                    "EndpointsNotFound",
                    f'cannot find endpoints for service/{name} in "{namespace}"',
                )
            active = any(
                subset.get("addresses")
                and any((p.get("name") or "") == port_name for p in subset.get("ports") or [])
                for subset in endpoints.get("subsets") or []
            )
            if not active:
                return (
                    "False",
                    "MissingEndpoints",
                    f'endpoints for service/{name} in "{namespace}" have no addresses with port '
                    f'name "{port_name}"',
                )
        problem = await self._discovery_check(obj, namespace, name, port)
        if problem:
            return "False", "FailedDiscoveryCheck", problem
        return "True", "Passed", "all checks passed"

    async def _discovery_check(
        self, obj: dict[str, Any], namespace: str, name: str, port: int
    ) -> str:
        """ "" when the extension server answers its discovery path, else why not."""
        spec = obj.get("spec") or {}
        insecure = spec.get("insecureSkipTLSVerify") is True
        try:
            context = self.clients.ssl_context(
                client.decode_ca_bundle(spec.get("caBundle")), insecure=insecure
            )
        except client.CallError as exc:
            return str(exc)
        path = discovery_path(obj)
        headers = {
            frontproxy.USER_HEADER: AGGREGATOR_USER,
            frontproxy.GROUP_HEADER: "system:masters",
        }

        async def attempt() -> str:
            try:
                address = self.services.resolve(namespace, name, port)
            except resolver.ResolveError as exc:
                return str(exc)
            url = f"https://{address.netloc}{path}"
            target = client.Target(url, None, f"{name}.{namespace}.svc", None, context)
            try:
                response = await self.clients.send(
                    target, "GET", None, timeout=CHECK_TIMEOUT, headers=headers
                )
            except client.CallError as exc:
                return f"failing or missing response from {url}: {exc}"
            if not 200 <= response.status < 300:
                return (
                    f"failing or missing response from {url}: bad status from {url}: "
                    f"{response.status}"
                )
            return ""

        results = await asyncio.gather(*(attempt() for _ in range(ATTEMPTS)))
        if any(r == "" for r in results):
            return ""
        return results[-1]

    async def _record(self, obj: dict[str, Any], status: str, reason: str, message: str) -> None:
        current = condition_of(obj)
        if current is not None and (
            current.get("status"),
            current.get("reason"),
            current.get("message"),
        ) == (status, reason, message):
            return
        name = obj["metadata"]["name"]

        async def write(latest: dict[str, Any]) -> dict[str, Any]:
            latest_condition = condition_of(latest)
            transition = meta.now()
            if latest_condition is not None and latest_condition.get("status") == status:
                transition = latest_condition.get("lastTransitionTime") or transition
            condition = {
                "type": "Available",
                "status": status,
                "lastTransitionTime": transition,
                "reason": reason,
                "message": message,
            }
            st = latest.setdefault("status", {})
            others = [
                c
                for c in st.get("conditions") or []
                if isinstance(c, dict) and c.get("type") != "Available"
            ]
            st["conditions"] = [*others, condition]
            return latest

        if current is None or current.get("status") != status:
            log.info("APIService %s is now Available=%s (%s: %s)", name, status, reason, message)
        await self.store.guaranteed_update("", name, write, subresource="status")
