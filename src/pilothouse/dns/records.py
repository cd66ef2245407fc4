"""What cluster DNS knows: Services, ready endpoints and namespaces, indexed for answers.

:class:`ClusterRecords` is the DNS server's only source of truth. Informer
handlers feed it (``on_service``, ``on_slice``, ``on_namespace`` and their
deletes) and it keeps the few indexes a query needs, so answering never calls
the API: services by ``(namespace, name)``, ready endpoints by service, and
the reverse indexes (cluster IP → service, endpoint IP → endpoints) for PTR.

It keeps what CoreDNS's kubernetes plugin keeps of each object (its
``object.Service`` and ``object.Endpoints``): a Service's cluster IPs, type,
external name and ports (a sentinel port ``-1`` when it declares none); of an
EndpointSlice only the *ready* endpoints (a missing ``ready`` condition counts
as ready, as the API documents), each with its hostname and target pod name,
and the slice's ports (``-1`` again when there are none).

Every change bumps :attr:`ClusterRecords.generation` (the server drops its
answer cache when it moves) and :attr:`ClusterRecords.modified` (the zone's SOA
serial, the Unix time of the last change, as CoreDNS reports it).

Concurrency: everything runs on the agent's event loop — informer handlers and
queries alike — so the indexes need no lock; a query sees the state between two
events, never half of one.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
NO_PORT = -1  # CoreDNS's sentinel: the object declares no ports


@dataclass(frozen=True, slots=True)
class Port:
    name: str
    port: int
    protocol: str


@dataclass(frozen=True, slots=True)
class Address:
    """One ready endpoint address of a Service."""

    ip: str
    hostname: str = ""
    target: str = ""  # the pod's name, when short enough to be a DNS label
    node: str = ""

    def label(self) -> str:
        """The endpoint's name under its Service: its hostname, else its dashed IP."""
        if self.hostname:
            return self.hostname
        if "." in self.ip:
            return self.ip.replace(".", "-")
        dashed = self.ip.replace(":", "-")
        return dashed + "0" if dashed.endswith("-") else dashed


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: str
    cluster_ips: tuple[str, ...]
    external_name: str
    ports: tuple[Port, ...]

    @property
    def headless(self) -> bool:
        return bool(self.cluster_ips) and self.cluster_ips[0] == "None"


@dataclass(frozen=True, slots=True)
class Slice:
    """The ready part of one EndpointSlice."""

    namespace: str
    service: str
    ports: tuple[Port, ...]
    addresses: tuple[Address, ...]


def service_from(obj: Obj) -> Service:
    md = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    ips = spec.get("clusterIPs") or [spec.get("clusterIP") or ""]
    ports = tuple(
        Port(str(p.get("name") or ""), int(p.get("port") or 0), str(p.get("protocol") or "TCP"))
        for p in spec.get("ports") or []
    ) or (Port("", NO_PORT, ""),)
    return Service(
        namespace=str(md.get("namespace") or ""),
        name=str(md.get("name") or ""),
        type=str(spec.get("type") or "ClusterIP"),
        cluster_ips=tuple(str(ip) for ip in ips),
        external_name=str(spec.get("externalName") or ""),
        ports=ports,
    )


def slice_from(obj: Obj) -> Slice | None:
    """The ready endpoints of an EndpointSlice; None for slices DNS cannot use (FQDN)."""
    if obj.get("addressType") not in ("IPv4", "IPv6"):
        return None
    md = obj.get("metadata") or {}
    ports = tuple(
        Port(
            str(p.get("name") or ""),
            NO_PORT if p.get("port") is None else int(p["port"]),
            str(p.get("protocol") or ""),
        )
        for p in obj.get("ports") or []
    ) or (Port("", NO_PORT, ""),)
    addresses: list[Address] = []
    for ep in obj.get("endpoints") or []:
        if (ep.get("conditions") or {}).get("ready") is False:
            continue
        target = str((ep.get("targetRef") or {}).get("name") or "")
        for ip in ep.get("addresses") or []:
            addresses.append(
                Address(
                    ip=str(ip),
                    hostname=str(ep.get("hostname") or ""),
                    target=target if len(target) < 64 else "",
                    node=str(ep.get("nodeName") or ""),
                )
            )
    return Slice(
        namespace=str(md.get("namespace") or ""),
        service=str((md.get("labels") or {}).get(SERVICE_NAME_LABEL) or ""),
        ports=ports,
        addresses=tuple(addresses),
    )


def _key(obj: Obj) -> tuple[str, str]:
    md = obj.get("metadata") or {}
    return str(md.get("namespace") or ""), str(md.get("name") or "")


class ClusterRecords:
    """The cluster as DNS sees it; see the module docstring."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.namespaces: set[str] = set()
        self.services: dict[tuple[str, str], Service] = {}
        # (namespace, service) → slice name → its ready endpoints
        self.slices: dict[tuple[str, str], dict[str, Slice]] = {}
        self._slice_owner: dict[tuple[str, str], tuple[str, str]] = {}  # slice key → service key
        self._by_cluster_ip: dict[str, set[tuple[str, str]]] = {}
        self._by_endpoint_ip: dict[str, set[tuple[str, str]]] = {}  # ip → slice keys
        self.generation = 0
        self.modified = int(clock())
        self._synced: list[Callable[[], bool]] = []

    # --- sync state ------------------------------------------------------------------
    def track_synced(self, *checks: Callable[[], bool]) -> None:
        """Functions that say whether each feeding informer has listed once."""
        self._synced.extend(checks)

    def has_synced(self) -> bool:
        return all(check() for check in self._synced)

    def _changed(self) -> None:
        self.generation += 1
        self.modified = int(self._clock())

    # --- namespaces -----------------------------------------------------------------
    def on_namespace(self, obj: Obj) -> None:
        name = _key(obj)[1]
        if name not in self.namespaces:
            self.namespaces.add(name)
            self._changed()

    def on_namespace_deleted(self, obj: Obj) -> None:
        name = _key(obj)[1]
        if name in self.namespaces:
            self.namespaces.discard(name)
            self._changed()

    # --- services -------------------------------------------------------------------
    def on_service(self, obj: Obj) -> None:
        key = _key(obj)
        svc = service_from(obj)
        old = self.services.get(key)
        if old == svc:
            return  # a status or metadata change: nothing DNS answers changed
        if old is not None:
            self._unindex_service(key, old)
        self.services[key] = svc
        for ip in svc.cluster_ips:
            if ip and ip != "None":
                self._by_cluster_ip.setdefault(ip, set()).add(key)
        self._changed()

    def on_service_deleted(self, obj: Obj) -> None:
        key = _key(obj)
        old = self.services.pop(key, None)
        if old is not None:
            self._unindex_service(key, old)
            self._changed()

    def _unindex_service(self, key: tuple[str, str], svc: Service) -> None:
        for ip in svc.cluster_ips:
            keys = self._by_cluster_ip.get(ip)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_cluster_ip[ip]

    # --- endpoint slices ------------------------------------------------------------
    def on_slice(self, obj: Obj) -> None:
        key = _key(obj)
        new = slice_from(obj)
        owner = self._slice_owner.get(key)
        old = self.slices.get(owner, {}).get(key[1]) if owner is not None else None
        if new == old:
            return
        if old is not None:
            self._drop_slice(key)
        if new is not None:
            svc_key = (new.namespace, new.service)
            self.slices.setdefault(svc_key, {})[key[1]] = new
            self._slice_owner[key] = svc_key
            for a in new.addresses:
                self._by_endpoint_ip.setdefault(a.ip, set()).add(key)
        self._changed()

    def on_slice_deleted(self, obj: Obj) -> None:
        key = _key(obj)
        if key in self._slice_owner:
            self._drop_slice(key)
            self._changed()

    def _drop_slice(self, key: tuple[str, str]) -> None:
        svc_key = self._slice_owner.pop(key)
        by_name = self.slices.get(svc_key, {})
        old = by_name.pop(key[1], None)
        if not by_name:
            self.slices.pop(svc_key, None)
        for a in old.addresses if old is not None else ():
            keys = self._by_endpoint_ip.get(a.ip)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_endpoint_ip[a.ip]

    # --- queries --------------------------------------------------------------------
    def service(self, namespace: str, name: str) -> Service | None:
        return self.services.get((namespace, name))

    def endpoints(self, namespace: str, service: str) -> Iterator[tuple[Slice, Address]]:
        """Every ready address of the Service, with the slice (and so the ports) it is in."""
        for sl in self.slices.get((namespace, service), {}).values():
            for a in sl.addresses:
                yield sl, a

    def services_with_ip(self, ip: str) -> list[Service]:
        return [self.services[k] for k in sorted(self._by_cluster_ip.get(ip, ()))]

    def endpoints_with_ip(self, ip: str) -> list[tuple[Slice, Address]]:
        found: list[tuple[Slice, Address]] = []
        for key in sorted(self._by_endpoint_ip.get(ip, ())):
            owner = self._slice_owner.get(key)
            sl = self.slices.get(owner, {}).get(key[1]) if owner is not None else None
            if sl is None:
                continue
            found.extend((sl, a) for a in sl.addresses if a.ip == ip)
        return found


def is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False
