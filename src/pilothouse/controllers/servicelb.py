"""LoadBalancer Services on machines without a cloud, as k3s' ServiceLB does them.

k3s runs a DaemonSet per LoadBalancer Service whose pods hold the ports on every
node, and writes the addresses of the nodes where those pods run into
``status.loadBalancer.ingress``. Here the node's proxy serves the ports directly
(the ingress addresses are nodes' own, so the proxy's rules for them catch the
traffic), and this controller keeps the status:

- the candidate nodes are the Ready ones — only those labelled
  ``svccontroller.k3s.cattle.io/enablelb=true`` if any node is, never those
  labelled ``false`` (k3s' labels);
- a node's address is its ExternalIP if any node has one, else its InternalIP;
- a port (and protocol) is held on a node by the oldest LoadBalancer Service
  asking for it there; a younger Service gets no ingress on that node and a
  Warning event says which Service holds the port — where k3s' DaemonSet pod
  would stay Pending for want of a free host port. With no node left, the
  Service shows ``<pending>``, as there;
- Services with a ``loadBalancerClass`` belong to another implementation.

A change of the ingress is recorded as k3s records it (Normal ``UpdatedIngressIP``).
Node changes resync every LoadBalancer Service; one Service is synced at a time
per key.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import meta
from pilothouse.api.meta import Obj
from pilothouse.client import events, lister, rest
from pilothouse.controllers import base

ENABLE_LABEL = "svccontroller.k3s.cattle.io/enablelb"


def _ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def _address(node: Obj, kind: str) -> str:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == kind:
            return str(a.get("address") or "")
    return ""


def _ours(service: Obj) -> bool:
    spec = service.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def _ports(service: Obj) -> set[tuple[str, int]]:
    return {
        (str(p.get("protocol") or "TCP"), int(p["port"]))
        for p in (service.get("spec") or {}).get("ports") or []
    }


def _age(service: Obj) -> tuple[float, str]:
    md = service["metadata"]
    return (meta.parse_time(md.get("creationTimestamp")) or 0.0, lister.key_of(service))


def candidate_nodes(nodes: list[Obj]) -> list[Obj]:
    ready = [n for n in nodes if _ready(n)]
    labelled = [n for n in ready if (n["metadata"].get("labels") or {}).get(ENABLE_LABEL) == "true"]
    pool = labelled or ready
    return [n for n in pool if (n["metadata"].get("labels") or {}).get(ENABLE_LABEL) != "false"]


def assign(
    services: list[Obj], nodes: list[Obj]
) -> dict[str, tuple[list[str], dict[str, tuple[str, int, list[str]]]]]:
    """Per Service key: its node names, and per losing port the holder and the nodes."""
    candidates = [n["metadata"]["name"] for n in candidate_nodes(nodes)]
    held: dict[tuple[str, str, int], str] = {}  # (node, protocol, port) -> holder key
    out: dict[str, tuple[list[str], dict[str, tuple[str, int, list[str]]]]] = {}
    for svc in sorted((s for s in services if _ours(s)), key=_age):
        key = lister.key_of(svc)
        mine: list[str] = []
        lost: dict[str, tuple[str, int, list[str]]] = {}
        for node in candidates:
            blockers = [
                (proto, port, held[(node, proto, port)])
                for proto, port in sorted(_ports(svc))
                if (node, proto, port) in held
            ]
            if blockers:
                for proto, port, holder in blockers:
                    entry = lost.setdefault(f"{port}/{proto}", (holder, port, []))
                    entry[2].append(node)
                continue
            mine.append(node)
            for proto, port in _ports(svc):
                held[(node, proto, port)] = key
        out[key] = (mine, lost)
    return out


class ServiceLBController(base.Controller):
    name = "servicelb"
    workers = 1  # one Service's assignment depends on the others'

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.resource = ctx.resource("", "v1", "services")
        self.services = ctx.informers.informer(self.resource)
        self.nodes = ctx.informers.informer(ctx.resource("", "v1", "nodes"))
        self.recorder: events.EventRecorder = ctx.recorder("service-lb-controller")
        self._warned: dict[str, str] = {}
        self.services.add_handlers(
            on_add=self._service_changed,
            on_update=self._service_updated,
            on_delete=lambda _s: self._all(),
        )
        self.nodes.add_handlers(
            on_add=lambda _n: self._all(),
            on_update=self._node_updated,
            on_delete=lambda _n: self._all(),
        )

    async def wait_ready(self) -> None:
        await self.services.wait_synced()
        await self.nodes.wait_synced()

    def _all(self) -> None:
        for svc in self.services.indexer.list():
            if _ours(svc):
                self.enqueue(svc)

    def _service_changed(self, svc: Obj) -> None:
        if _ours(svc):
            self._all()  # a new claimant may take ports from younger Services

    def _service_updated(self, old: Obj, new: Obj) -> None:
        if _ours(old) or _ours(new):
            if (old.get("spec") or {}) != (new.get("spec") or {}):
                self._all()
            else:
                self.enqueue(new)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        def view(n: Obj) -> tuple[Any, ...]:
            return (_ready(n), (n.get("status") or {}).get("addresses"),
                    (n["metadata"].get("labels") or {}).get(ENABLE_LABEL))  # fmt: skip

        if view(old) != view(new):
            self._all()

    async def sync(self, key: str) -> None:
        svc = self.services.indexer.get(key)
        if svc is None or not _ours(svc):
            self._warned.pop(key, None)
            return
        nodes = {n["metadata"]["name"]: n for n in self.nodes.indexer.list()}
        names, lost = assign(self.services.indexer.list(), list(nodes.values())).get(key, ([], {}))
        external = any(_address(n, "ExternalIP") for n in nodes.values())
        kind = "ExternalIP" if external else "InternalIP"
        ips = sorted({ip for n in names if (ip := _address(nodes[n], kind))})
        self._warn_lost(svc, lost)
        current = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        wanted = [{"ip": ip, "ipMode": "VIP"} for ip in ips]
        if current == wanted:
            return
        new = meta.deep_copy(svc)
        new.setdefault("status", {})["loadBalancer"] = {"ingress": wanted} if wanted else {}
        await self.client.update_status(self.resource, new)
        self.recorder.event(
            svc,
            events.NORMAL,
            "UpdatedIngressIP",
            "LoadBalancer Ingress IP addresses updated: " + ", ".join(ips),
        )

    def _warn_lost(self, svc: Obj, lost: dict[str, tuple[str, int, list[str]]]) -> None:
        key = lister.key_of(svc)
        if not lost:
            self._warned.pop(key, None)
            return
        message = "; ".join(
            f"port {where} is already used by LoadBalancer Service {holder} on node(s) "
            + ", ".join(sorted(nodes))
            for where, (holder, _port, nodes) in sorted(lost.items())
        )
        if self._warned.get(key) == message:
            return
        self._warned[key] = message
        self.recorder.event(svc, events.WARNING, "PortInUse", message)
