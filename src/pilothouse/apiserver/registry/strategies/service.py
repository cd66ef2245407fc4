"""Services: cluster IPs, node ports and health-check node ports are allocated by
the registry (upstream's ``pkg/registry/core/service/storage``).

Allocation happens on the event loop and reserves an address before the write
is awaited, so concurrent writes never pick the same one. What is in use is
read from the watch cache plus recent reservations (kept for a minute, long
after the write they guard has reached the cache); a deleted Service's values,
or those an update gave up, are free again once the cache sees the change.

On update, values the client left out are kept (``patchAllocatedValues``), and
values a type change makes meaningless are dropped when the client left them as
they were (``dropTypeDependentFields``): NodePort → ClusterIP releases the node
ports, ClusterIP → NodePort allocates them.
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
        _patch_allocated_values(spec, old_spec)
        prepare.normalize_cluster_ips(new, old)
        _drop_type_dependent_fields(spec, old_spec)


def _needs_cluster_ip(spec: Obj) -> bool:
    return bool(spec.get("type", "ClusterIP") != "ExternalName")


def _needs_node_ports(spec: Obj) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


def needs_health_check(spec: Obj) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _externally_accessible(spec: Obj) -> bool:
    return _needs_node_ports(spec) or (
        spec.get("type", "ClusterIP") == "ClusterIP" and bool(spec.get("externalIPs"))
    )


def _patch_allocated_values(spec: Obj, old_spec: Obj) -> None:
    """Allocated values stay when the client's update leaves them out."""
    if _needs_cluster_ip(old_spec) and _needs_cluster_ip(spec):
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
            if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
                spec["clusterIPs"] = list(old_spec["clusterIPs"])
        for field in ("ipFamilies", "ipFamilyPolicy"):
            if field not in spec and field in old_spec:
                spec[field] = old_spec[field]
    if _needs_node_ports(old_spec) and _needs_node_ports(spec):
        ports = spec.get("ports") or []
        old_ports = old_spec.get("ports") or []
        used = {p.get("nodePort") for p in old_ports} & {p.get("nodePort") for p in ports}
        by_name = {p.get("name") or "": p.get("nodePort") for p in old_ports}
        for port in ports:
            if not port.get("nodePort"):
                before = by_name.get(port.get("name") or "")
                if before and before not in used:
                    port["nodePort"] = before
    keep_health = not spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort")
    if needs_health_check(old_spec) and needs_health_check(spec) and keep_health:
        spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]


def _drop_type_dependent_fields(spec: Obj, old_spec: Obj) -> None:
    """Fields the new type does not use are dropped when the client left them as they were."""
    if _needs_cluster_ip(old_spec) and not _needs_cluster_ip(spec):
        if spec.get("clusterIP") == old_spec.get("clusterIP") and spec.get(
            "clusterIPs"
        ) == old_spec.get("clusterIPs"):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        if spec.get("ipFamilies") == old_spec.get("ipFamilies"):
            spec.pop("ipFamilies", None)
        if spec.get("ipFamilyPolicy") == old_spec.get("ipFamilyPolicy"):
            spec.pop("ipFamilyPolicy", None)
    if _needs_node_ports(old_spec) and not _needs_node_ports(spec):
        new_ports, old_ports = spec.get("ports") or [], old_spec.get("ports") or []
        if len(new_ports) == len(old_ports) and all(
            a.get("nodePort") == b.get("nodePort")
            for a, b in zip(new_ports, old_ports, strict=True)
        ):
            for port in new_ports:
                port.pop("nodePort", None)
    same_health = spec.get("healthCheckNodePort") == old_spec.get("healthCheckNodePort")
    if needs_health_check(old_spec) and not needs_health_check(spec) and same_health:
        spec.pop("healthCheckNodePort", None)
    lb_old, lb_new = old_spec.get("type") == "LoadBalancer", spec.get("type") == "LoadBalancer"
    if lb_old and not lb_new:
        for field in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if spec.get(field) == old_spec.get(field):
                spec.pop(field, None)
    same_etp = spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy")
    if _externally_accessible(old_spec) and not _externally_accessible(spec) and same_etp:
        spec.pop("externalTrafficPolicy", None)


def _range_text() -> str:
    return f"{NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}"


class ServiceAllocator:
    """Assigns ``spec.clusterIP(s)``, node ports and health-check node ports."""

    def __init__(self, cidr: ipaddress.IPv4Network | ipaddress.IPv6Network = SERVICE_CIDR) -> None:
        self.cidr = cidr
        # Values handed out but maybe not in the cache yet: value -> (when, Service key).
        self._pending_ips: dict[str, tuple[float, str]] = {}
        self._pending_ports: dict[int, tuple[float, str]] = {}
        self._owner = ""  # the Service being allocated for (one at a time: no awaits inside)

    async def __call__(self, store: ResourceStore, op: str, obj: Obj) -> None:
        if store.resource.plural != "services" or store.resource.group != "":
            return
        md = obj.get("metadata") or {}
        key = store.key(md.get("namespace", ""), md.get("name", ""))
        if op == "create":
            self._owner = key
            self._allocate(store, obj, obj.setdefault("spec", {}), old=None)
        elif op == "update":
            entry = store.cache.objects.get(key)
            old = entry.obj if entry is not None else None
            self._owner = key
            self._release_pending(key, keep=_node_ports(obj.get("spec") or {}))
            self._allocate(store, obj, obj.setdefault("spec", {}), old=old)
        elif op == "delete":
            self._release_pending(key, keep=set())
            self._pending_ips = {ip: v for ip, v in self._pending_ips.items() if v[1] != key}

    def _release_pending(self, owner: str, *, keep: set[int]) -> None:
        """What an update gives up, or a deletion, is free at once (as upstream's
        bitmap allocator releases it), not a minute later."""
        self._pending_ports = {
            p: v for p, v in self._pending_ports.items() if v[1] != owner or p in keep
        }

    def _used(self, store: ResourceStore, *, exclude: str = "") -> tuple[set[str], set[int]]:
        cutoff = time.monotonic() - RESERVATION_SECONDS
        self._pending_ips = {k: v for k, v in self._pending_ips.items() if v[0] >= cutoff}
        self._pending_ports = {k: v for k, v in self._pending_ports.items() if v[0] >= cutoff}
        ips: set[str] = set(self._pending_ips)
        ports: set[int] = set(self._pending_ports)
        for key, entry in store.cache.objects.items():
            if key == exclude:
                continue
            s = entry.obj.get("spec") or {}
            ips.update(s.get("clusterIPs") or [s.get("clusterIP") or ""])
            ports.update(_node_ports(s))
        return ips, ports

    def _allocate(self, store: ResourceStore, obj: Obj, spec: Obj, *, old: Obj | None) -> None:
        md = obj["metadata"]
        name = md.get("name", "")
        old_spec = (old or {}).get("spec") or {}
        mine = store.key(md.get("namespace", ""), name) if old is not None else ""
        used_ips, used_ports = self._used(store, exclude=mine)
        if not _needs_cluster_ip(spec):
            spec.pop("clusterIP", None)
        elif old is None or not _needs_cluster_ip(old_spec):
            self._allocate_cluster_ip(spec, used_ips, name)
        own_ports = _node_ports(old_spec) if old is not None else set()
        if _needs_node_ports(spec):
            self._allocate_node_ports(spec, used_ports, own_ports, name)
        if needs_health_check(spec):
            wanted = spec.get("healthCheckNodePort")
            if not wanted:
                port = self._free_port(used_ports, name, what="a HealthCheck NodePort")
                spec["healthCheckNodePort"] = port
                self._reserve_port(port)
            elif int(wanted) not in own_ports:
                problem = self._port_problem(int(wanted), used_ports)
                if problem:
                    raise errors.internal(
                        f"failed to allocate requested HealthCheck NodePort {wanted}: {problem}"
                    )
                self._reserve_port(int(wanted))

    def _allocate_cluster_ip(self, spec: Obj, used_ips: set[str], name: str) -> None:
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
                            errors.go_string_list([ip]),
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
                            errors.go_string_list([ip]),
                            f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the "
                            f"valid range. The range of valid IPs is {self.cidr}",
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

    def _port_problem(self, port: int, used: set[int]) -> str:
        lo, hi = NODE_PORT_RANGE
        if not lo <= port <= hi:
            return (
                "provided port is not in the valid range. The range of valid ports is "
                + _range_text()
            )
        if port in used:
            return "provided port is already allocated"
        return ""

    def _allocate_node_ports(self, spec: Obj, used: set[int], own: set[int], name: str) -> None:
        allocate_new = (
            spec.get("type") == "NodePort"
            or spec.get("allocateLoadBalancerNodePorts", True) is not False
        )
        # Ports of the same number (53/TCP and 53/UDP) share one node port, as upstream.
        by_number: dict[int, int] = {}
        taken_here: set[int] = set()
        for i, port in enumerate(spec.get("ports") or []):
            number = int(port.get("port") or 0)
            wanted = int(port.get("nodePort") or 0)
            if wanted:
                if wanted not in own and wanted not in taken_here:
                    problem = self._port_problem(wanted, used)
                    if problem:
                        raise errors.invalid(
                            "Service",
                            "",
                            name,
                            [errors.invalid_value(f"spec.ports[{i}].nodePort", wanted, problem)],
                        )
                    self._reserve_port(wanted)
                taken_here.add(wanted)
                by_number.setdefault(number, wanted)
                continue
            if not allocate_new:
                continue
            shared = by_number.get(number)
            if shared:
                port["nodePort"] = shared
                continue
            fresh = self._free_port(used | taken_here | own, name, what="a nodePort")
            port["nodePort"] = fresh
            taken_here.add(fresh)
            by_number[number] = fresh
            self._reserve_port(fresh)

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
        raise errors.internal(f"failed to allocate a serviceIP: range is full ({name})")

    def _free_port(self, used: set[int], name: str, *, what: str) -> int:
        lo, hi = NODE_PORT_RANGE
        for _ in range(64):
            candidate = random.randint(lo, hi)
            if candidate not in used:
                return candidate
        for candidate in range(lo, hi + 1):
            if candidate not in used:
                return candidate
        raise errors.internal(f"failed to allocate {what}: range is full")

    def _reserve_ip(self, ip: str) -> None:
        self._pending_ips[ip] = (time.monotonic(), self._owner)

    def _reserve_port(self, port: int) -> None:
        self._pending_ports[port] = (time.monotonic(), self._owner)


def _node_ports(spec: Obj) -> set[int]:
    ports = {int(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        ports.add(int(spec["healthCheckNodePort"]))
    return ports
