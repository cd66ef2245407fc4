"""Services: cluster IPs and node ports are allocated by the registry.

Allocation happens on the event loop and reserves an address before the
create is awaited, so concurrent creates never pick the same one. What is in
use is read from the watch cache plus recent reservations (kept for a minute,
long after the create they guard has reached the cache); a deleted Service's
address is free again once the cache sees the deletion.
"""

from __future__ import annotations

import ipaddress
import random
import time
from typing import TYPE_CHECKING

from pilothouse.api import errors
from pilothouse.api.defaults import prepare
from pilothouse.api.meta import Obj
from pilothouse.apiserver.registry.strategy import Strategy

if TYPE_CHECKING:
    from pilothouse.apiserver.registry.store import ResourceStore

SERVICE_CIDR = ipaddress.ip_network("10.43.0.0/16")
NODE_PORT_RANGE = (30000, 32767)
RESERVATION_SECONDS = 60.0


class ServiceStrategy(Strategy):
    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}
        prepare.normalize_cluster_ips(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        spec, old_spec = new.setdefault("spec", {}), old.get("spec") or {}
        # Allocated values stay when the user's update leaves them out.
        for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if field not in spec and field in old_spec:
                spec[field] = old_spec[field]
        if spec.get("type", "ClusterIP") in ("NodePort", "LoadBalancer"):
            old_ports = {
                (p.get("port"), p.get("protocol", "TCP")): p for p in old_spec.get("ports") or []
            }
            for port in spec.get("ports") or []:
                before = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                if before is not None and not port.get("nodePort") and before.get("nodePort"):
                    port["nodePort"] = before["nodePort"]
        prepare.normalize_cluster_ips(new, old)


class ServiceAllocator:
    """Assigns ``spec.clusterIP(s)`` and node ports to new Services."""

    def __init__(self, cidr: ipaddress.IPv4Network | ipaddress.IPv6Network = SERVICE_CIDR) -> None:
        self.cidr = cidr
        self._pending_ips: dict[str, float] = {}
        self._pending_ports: dict[int, float] = {}

    async def __call__(self, store: ResourceStore, op: str, obj: Obj) -> None:
        if store.resource.plural != "services" or store.resource.group != "":
            return
        if op != "create":
            return
        spec = obj.setdefault("spec", {})
        if op == "create":
            self._allocate(store, obj, spec)

    def _used(self, store: ResourceStore) -> tuple[set[str], set[int]]:
        cutoff = time.monotonic() - RESERVATION_SECONDS
        self._pending_ips = {k: t for k, t in self._pending_ips.items() if t >= cutoff}
        self._pending_ports = {k: t for k, t in self._pending_ports.items() if t >= cutoff}
        ips: set[str] = set(self._pending_ips)
        ports: set[int] = set(self._pending_ports)
        for entry in store.cache.objects.values():
            s = entry.obj.get("spec") or {}
            ips.update(s.get("clusterIPs") or [s.get("clusterIP") or ""])
            for p in s.get("ports") or []:
                if p.get("nodePort"):
                    ports.add(int(p["nodePort"]))
        return ips, ports

    def _allocate(self, store: ResourceStore, obj: Obj, spec: Obj) -> None:
        svc_type = spec.get("type", "ClusterIP")
        if svc_type == "ExternalName":
            spec.pop("clusterIP", None)
            return
        used_ips, used_ports = self._used(store)
        name = obj["metadata"].get("name", "")
        ip = spec.get("clusterIP") or ""
        if ip == "None":
            spec["clusterIPs"] = ["None"]
        elif ip:
            if ip in used_ips:
                raise errors.invalid(
                    "Service",
                    "",
                    name,
                    [
                        errors.invalid_value(
                            "spec.clusterIPs",
                            [ip],
                            f"failed to allocate IP {ip}: provided IP is already allocated",
                        )
                    ],
                )
            if ipaddress.ip_address(ip) not in self.cidr:
                raise errors.invalid(
                    "Service",
                    "",
                    name,
                    [
                        errors.invalid_value(
                            "spec.clusterIPs",
                            [ip],
                            f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {self.cidr}",
                        )
                    ],
                )
            spec["clusterIPs"] = [ip]
        else:
            ip = self._free_ip(used_ips, name)
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        if ip != "None":
            self._reserve_ip(ip)
        if svc_type in ("NodePort", "LoadBalancer"):
            for port in spec.get("ports") or []:
                wanted = port.get("nodePort")
                if wanted:
                    if int(wanted) in used_ports:
                        raise errors.invalid(
                            "Service",
                            "",
                            name,
                            [
                                errors.invalid_value(
                                    "spec.ports[0].nodePort",
                                    wanted,
                                    "provided port is already allocated",
                                )
                            ],
                        )
                else:
                    port["nodePort"] = self._free_port(used_ports, name)
                used_ports.add(int(port["nodePort"]))
                self._reserve_port(int(port["nodePort"]))

    def _free_ip(self, used: set[str], name: str) -> str:
        size = self.cidr.num_addresses
        # Upstream leaves the lower band of the range for addresses users ask
        # for; dynamic ones come from above it.
        low = max(16, min(size // 16, 256))
        base = int(self.cidr.network_address)
        for _ in range(64):
            candidate = str(ipaddress.ip_address(base + random.randrange(low, size - 1)))
            if candidate not in used:
                return candidate
        for offset in range(low, size - 1):
            candidate = str(ipaddress.ip_address(base + offset))
            if candidate not in used:
                return candidate
        raise errors.StatusError(
            500, errors.INTERNAL_ERROR, f"failed to allocate a serviceIP: range is full ({name})"
        )

    def _free_port(self, used: set[int], name: str) -> int:
        lo, hi = NODE_PORT_RANGE
        for _ in range(64):
            candidate = random.randint(lo, hi)
            if candidate not in used:
                return candidate
        for candidate in range(lo, hi + 1):
            if candidate not in used:
                return candidate
        raise errors.StatusError(
            500, errors.INTERNAL_ERROR, f"failed to allocate a nodePort: range is full ({name})"
        )

    def _reserve_ip(self, ip: str) -> None:
        self._pending_ips[ip] = time.monotonic()

    def _reserve_port(self, port: int) -> None:
        self._pending_ports[port] = time.monotonic()
