"""What the proxy knows of a Service port and its endpoints (upstream's
``pkg/proxy`` ServicePort, Endpoint and ``CategorizeEndpoints``).

Pure functions over the Service and EndpointSlice objects the informers hold:

- :func:`service_ports` turns a Service into the ports this proxy serves, or none
  — ExternalName and headless Services, and Services carrying the
  ``service.kubernetes.io/service-proxy-name`` label (another proxy's, such as
  the node-local DNS's ``kube-dns``), are left alone as upstream's kube-proxy
  leaves them.
- :func:`endpoints_for` collects a port's endpoints from the Service's IPv4
  slices (a slice port matches by name and protocol; unset conditions count as
  ready, as upstream reads them).
- :func:`categorize` picks the endpoints each traffic policy uses: ready ones,
  or serving-and-terminating ones when none is ready; local ones for ``Local``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pilothouse.api.meta import Obj

PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
HEADLESS_LABEL = "service.kubernetes.io/headless"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT = 10800


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    node: str = ""
    ready: bool = True
    serving: bool = True
    terminating: bool = False

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, with everything the rules need."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # TCP | UDP | SCTP
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    source_ranges: tuple[str, ...] = ()
    affinity_timeout: int = 0  # seconds; 0: no session affinity
    external_local: bool = False
    internal_local: bool = False
    health_check_node_port: int = 0

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def port_key(self) -> str:
        """Upstream's ServicePortName string: ``ns/name:port``."""
        return f"{self.namespace}/{self.name}:{self.port_name}"

    @property
    def proto(self) -> str:
        return self.protocol.lower()

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.load_balancer_ips or self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_local or (self.externally_accessible and not self.external_local)

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_local or (self.externally_accessible and self.external_local)


def skipped(service: Obj) -> bool:
    """Services this proxy leaves to someone else, or that need no rules."""
    labels = service["metadata"].get("labels") or {}
    if PROXY_NAME_LABEL in labels:
        return True
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return True
    ip = spec.get("clusterIP")
    return not ip or ip == "None"


def service_ports(service: Obj) -> list[ServicePort]:
    if skipped(service):
        return []
    md, spec = service["metadata"], service.get("spec") or {}
    status_lb = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    lb_ips: tuple[str, ...] = ()
    if spec.get("type") == "LoadBalancer":
        # ipMode Proxy means the load balancer delivers to the node: no VIP rule (KEP-1860).
        lb_ips = tuple(
            str(i["ip"]) for i in status_lb if i.get("ip") and i.get("ipMode", "VIP") == "VIP"
        )
    ranges = tuple(str(r).strip() for r in spec.get("loadBalancerSourceRanges") or [])
    timeout = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get(
            "timeoutSeconds"
        )
        timeout = int(cfg or DEFAULT_AFFINITY_TIMEOUT)
    out = []
    for p in spec.get("ports") or []:
        out.append(
            ServicePort(
                namespace=md.get("namespace", ""),
                name=md["name"],
                port_name=p.get("name") or "",
                protocol=p.get("protocol") or "TCP",
                cluster_ip=str(spec["clusterIP"]),
                port=int(p["port"]),
                node_port=int(p.get("nodePort") or 0),
                external_ips=tuple(str(ip) for ip in spec.get("externalIPs") or []),
                load_balancer_ips=lb_ips,
                source_ranges=ranges if lb_ips else (),
                affinity_timeout=timeout,
                external_local=spec.get("externalTrafficPolicy") == "Local",
                internal_local=spec.get("internalTrafficPolicy") == "Local",
                health_check_node_port=int(spec.get("healthCheckNodePort") or 0),
            )
        )
    return out


def endpoints_for(sp: ServicePort, slices: list[Obj]) -> list[Endpoint]:
    """The port's endpoints, from every IPv4 slice of its Service (deduplicated)."""
    found: dict[str, Endpoint] = {}
    for s in slices:
        if s.get("addressType") != "IPv4":
            continue
        number = None
        for port in s.get("ports") or []:
            if (port.get("name") or "") == sp.port_name and (
                port.get("protocol") or "TCP"
            ) == sp.protocol:
                number = port.get("port")
                break
        if not number:
            continue
        for ep in s.get("endpoints") or []:
            conditions = ep.get("conditions") or {}
            ready = conditions.get("ready")
            ready = True if ready is None else bool(ready)
            serving = conditions.get("serving")
            serving = ready if serving is None else bool(serving)
            terminating = bool(conditions.get("terminating"))
            for ip in (ep.get("addresses") or [])[:1]:  # upstream uses the first address
                e = Endpoint(
                    str(ip), int(number), ep.get("nodeName") or "", ready, serving, terminating
                )
                found.setdefault(e.address, e)
    return sorted(found.values(), key=lambda e: e.address)


@dataclass(frozen=True)
class Categorized:
    cluster: tuple[Endpoint, ...]
    local: tuple[Endpoint, ...]
    reachable: tuple[Endpoint, ...]
    has_any: bool


def categorize(sp: ServicePort, endpoints: list[Endpoint], node: str) -> Categorized:
    cluster: list[Endpoint] = []
    has_any = False
    if sp.uses_cluster_endpoints:
        cluster = [e for e in endpoints if e.ready]
        if not cluster:
            cluster = [e for e in endpoints if e.serving and e.terminating]
        has_any = bool(cluster)
    if not sp.uses_local_endpoints:
        return Categorized(tuple(cluster), (), tuple(cluster), has_any)
    local_ready = local_terminating = False
    for e in endpoints:
        if e.ready:
            has_any = True
            local_ready = local_ready or e.node == node
        elif e.serving and e.terminating:
            has_any = True
            local_terminating = local_terminating or e.node == node
    local: list[Endpoint] = []
    if local_ready:
        local = [e for e in endpoints if e.node == node and e.ready]
    elif local_terminating:
        local = [e for e in endpoints if e.node == node and e.serving and e.terminating]
    if not sp.uses_cluster_endpoints or not cluster:
        reachable = local
    elif not local:
        reachable = cluster
    else:
        reachable = sorted(set(cluster) | set(local), key=lambda e: e.address)
    return Categorized(tuple(cluster), tuple(local), tuple(reachable), has_any)
