"""The ``kubernetes`` Service in ``default``, and its Endpoints and EndpointSlice,
kept by the API server itself (upstream's ``controlplane/controller/kubernetesservice``
and its endpoints reconciler).

Every ``interval`` seconds (and at start) the reconciler makes sure that:

- Service ``default/kubernetes`` exists at the first address of the service
  range (10.43.0.1), port 443 named ``https`` targeting this server's port —
  re-created if deleted, its ports reset if someone changed them;
- Endpoints ``default/kubernetes`` lists this server's advertised address and
  port, labelled ``endpointslice.kubernetes.io/skip-mirror: "true"`` (the API
  server writes the slice itself);
- EndpointSlice ``default/kubernetes`` says the same (``kubernetes.io/service-name:
  kubernetes``, no managed-by label), so the proxy on every node sends
  ``https://kubernetes.default.svc`` here.

A loopback advertised address (``--advertise-address 127.0.0.1``) cannot be an
endpoint — pods could not reach it, and validation refuses it as upstream's
does — so the endpoints then stay empty and the reconciler says why, once.

It writes through the registry (validation and watch events as for any
client). One task; the store's optimistic concurrency settles races with other
writers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from pilothouse.api import errors
from pilothouse.api.meta import Obj
from pilothouse.apiserver.registry.store import ResourceStore

log = logging.getLogger(__name__)

SERVICE_IP = "10.43.0.1"
NAME = "kubernetes"
NAMESPACE = "default"
INTERVAL = 10.0
SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class KubernetesServiceReconciler:
    def __init__(
        self,
        *,
        services: ResourceStore,
        endpoints: ResourceStore,
        slices: ResourceStore,
        address: str,
        port: int,
        interval: float = INTERVAL,
    ) -> None:
        self.services = services
        self.endpoints = endpoints
        self.slices = slices
        self.address = address
        self.port = port
        self.interval = interval
        self._warned = False

    @property
    def usable_address(self) -> bool:
        try:
            return not ipaddress.ip_address(self.address).is_loopback
        except ValueError:
            return False

    async def run(self) -> None:
        """Reconcile now and every ``interval`` seconds, until cancelled."""
        while True:
            try:
                await self.reconcile()
            except errors.StatusError as exc:
                log.warning("keeping the kubernetes Service: %s", exc.message)
            await asyncio.sleep(self.interval)

    async def reconcile(self) -> None:
        await self._service()
        await self._endpoints()
        await self._slice()

    def _ports(self) -> list[Obj]:
        return [{"name": "https", "port": self.port, "protocol": "TCP"}]

    def _addresses(self) -> list[str]:
        if self.usable_address:
            return [self.address]
        if not self._warned:
            self._warned = True
            log.warning(
                "the kubernetes Service has no endpoints: the advertised address %s is a loopback "
                "address pods cannot reach; pass --advertise-address with this machine's address",
                self.address,
            )
        return []

    async def _service(self) -> None:
        wanted_ports = [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.port}]
        entry = await self.services.current(NAMESPACE, NAME)
        if entry is None:
            body: Obj = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": NAME,
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": SERVICE_IP,
                    "ports": wanted_ports,
                    "type": "ClusterIP",
                    "sessionAffinity": "None",
                },
            }
            try:
                await self.services.create(NAMESPACE, body)
            except errors.StatusError as exc:
                if not errors.is_already_exists(exc):
                    raise
            return
        spec = entry.obj.get("spec") or {}
        current = [
            {k: p.get(k) for k in ("name", "port", "protocol", "targetPort")}
            for p in spec.get("ports") or []
        ]
        if current == wanted_ports and spec.get("type") == "ClusterIP":
            return
        log.warning("resetting the kubernetes Service's ports to 443 -> %d", self.port)

        async def reset(old: Obj) -> Obj:
            old["spec"]["ports"] = wanted_ports
            old["spec"]["type"] = "ClusterIP"
            return old

        await self.services.guaranteed_update(NAMESPACE, NAME, reset)

    async def _endpoints(self) -> None:
        addresses = self._addresses()
        subset: Obj = {"ports": self._ports()}
        if addresses:
            subset["addresses"] = [{"ip": ip} for ip in addresses]
        subsets = [subset] if addresses else []
        labels = {SKIP_MIRROR: "true"}
        entry = await self.endpoints.current(NAMESPACE, NAME)
        if entry is None:
            body = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": NAME, "labels": labels},
                "subsets": subsets,
            }
            await _create(self.endpoints, body)
            return
        current = entry.obj
        if (current.get("subsets") or []) == subsets and (
            current["metadata"].get("labels") or {}
        ) == labels:
            return

        async def fix(old: Obj) -> Obj:
            old["metadata"]["labels"] = labels
            old["subsets"] = subsets
            return old

        await self.endpoints.guaranteed_update(NAMESPACE, NAME, fix)

    async def _slice(self) -> None:
        endpoints = [{"addresses": [ip], "conditions": {"ready": True}} for ip in self._addresses()]
        labels = {SERVICE_NAME_LABEL: NAME}
        entry = await self.slices.current(NAMESPACE, NAME)
        if entry is None:
            body = {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": NAME, "labels": labels},
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": self._ports(),
            }
            await _create(self.slices, body)
            return
        current = entry.obj
        if (
            (current.get("endpoints") or []) == endpoints
            and current.get("ports") == self._ports()
            and (current["metadata"].get("labels") or {}) == labels
        ):
            return

        async def fix(old: Obj) -> Obj:
            old["metadata"]["labels"] = labels
            old["endpoints"] = endpoints
            old["ports"] = self._ports()
            return old

        await self.slices.guaranteed_update(NAMESPACE, NAME, fix)


async def _create(store: ResourceStore, body: Obj) -> None:
    try:
        await store.create(NAMESPACE, body)
    except errors.StatusError as exc:
        if not errors.is_already_exists(exc):
            raise
