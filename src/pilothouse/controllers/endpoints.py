"""The Endpoints controller: the legacy ``v1 Endpoints`` object of every Service with
a selector (upstream's ``pkg/controller/endpoint``), for ``kubectl get endpoints``,
``kubectl describe service`` and older clients.

``sync(namespace/name)`` computes the Service's subsets from the pods it selects
— ready addresses and ``notReadyAddresses``, one subset per distinct port set,
sorted as upstream repacks them — and writes the Endpoints object named after
the Service when it differs (labels: the Service's, plus the headless label).
More than 1000 addresses are truncated, ready ones first, and the object is
annotated ``endpoints.kubernetes.io/over-capacity: truncated``. When the
Service is gone, its Endpoints object is deleted (it has no owner reference).
Terminating pods are left out unless the Service publishes not-ready addresses.

Pod changes are batched like the EndpointSlice controller's. One Service is
synced by one worker at a time.
"""

from __future__ import annotations

import math
import time
from typing import Any

from pilothouse.api import errors, meta, selectors
from pilothouse.api.meta import Obj
from pilothouse.client import lister, rest
from pilothouse.controllers import base
from pilothouse.controllers.endpointslice import podendpoints as pe

MAX_CAPACITY = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
POD_BATCH_PERIOD = 0.5
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


def _address(pod: Obj, service: Obj) -> Obj:
    md = pod["metadata"]
    address: Obj = {
        "ip": pe.pod_ips(pod)[0],
        "targetRef": {
            "kind": "Pod",
            "namespace": md.get("namespace", ""),
            "name": md["name"],
            "uid": md.get("uid", ""),
            "resourceVersion": md.get("resourceVersion", ""),
        },
    }
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        address["nodeName"] = node
    if pe.should_set_hostname(pod, service):
        address["hostname"] = pod["spec"]["hostname"]
    return address


def _port_key(port: Obj) -> tuple[str, int, str, str]:
    return (
        str(port.get("name") or ""),
        int(port.get("port") or 0),
        str(port.get("protocol") or "TCP"),
        str(port.get("appProtocol") or ""),
    )


def _address_key(address: Obj) -> tuple[str, str]:
    return (str(address["ip"]), str((address.get("targetRef") or {}).get("uid", "")))


def subsets_for(service: Obj, pods: list[Obj]) -> list[Obj]:
    """The Service's subsets in upstream's canonical (repacked, sorted) form."""
    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    addresses: dict[tuple[str, str], Obj] = {}
    # port -> address key -> ready; not-ready wins over ready, as upstream's repack.
    by_port: dict[tuple[str, int, str, str], dict[tuple[str, str], bool]] = {}
    ports_of: dict[tuple[str, int, str, str], Obj] = {}
    headless_no_ports = not spec.get("ports") and pe.is_headless(service)
    headless_subset: list[tuple[Obj, bool]] = []
    for pod in pods:
        if not pe.should_pod_be_in_endpoints(pod, include_terminating=publish):
            continue
        address = _address(pod, service)
        ready = publish or pe.pod_ready(pod)
        if headless_no_ports:
            headless_subset.append((address, ready))
            continue
        akey = _address_key(address)
        for sp in spec.get("ports") or []:
            number = pe.find_port(pod, sp)
            if number is None:
                continue
            port: Obj = {"name": sp.get("name") or "", "port": number,
                         "protocol": sp.get("protocol") or "TCP"}  # fmt: skip
            if sp.get("appProtocol"):
                port["appProtocol"] = sp["appProtocol"]
            pkey = _port_key(port)
            ports_of[pkey] = port
            addresses.setdefault(akey, address)
            states = by_port.setdefault(pkey, {})
            states[akey] = states.get(akey, True) and ready
    if headless_no_ports:
        if not headless_subset:
            return []
        ready_list = sorted((a for a, r in headless_subset if r), key=_address_key)
        not_ready = sorted((a for a, r in headless_subset if not r), key=_address_key)
        return [_subset(ready_list, not_ready, [])]
    # Ports offered by exactly the same addresses (with the same readiness) share a subset.
    groups: dict[tuple[tuple[tuple[str, str], bool], ...], list[tuple[str, int, str, str]]] = {}
    for pkey, states in by_port.items():
        groups.setdefault(tuple(sorted(states.items())), []).append(pkey)
    subsets = []
    for members, pkeys in groups.items():
        ready_list = [addresses[a] for a, r in members if r]
        not_ready = [addresses[a] for a, r in members if not r]
        subsets.append(_subset(ready_list, not_ready, [ports_of[k] for k in sorted(pkeys)]))
    subsets.sort(
        key=lambda s: repr((s.get("ports"), s.get("addresses"), s.get("notReadyAddresses")))
    )
    return subsets


def _subset(ready: list[Obj], not_ready: list[Obj], ports: list[Obj]) -> Obj:
    subset: Obj = {}
    if ready:
        subset["addresses"] = ready
    if not_ready:
        subset["notReadyAddresses"] = not_ready
    if ports:
        subset["ports"] = ports
    return subset


def truncate(subsets: list[Obj]) -> bool:
    """Keep at most MAX_CAPACITY addresses, ready ones first, spread over the
    subsets in proportion to their size; True if anything was dropped."""
    total_ready = sum(len(s.get("addresses") or []) for s in subsets)
    total_not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if total_ready + total_not_ready <= MAX_CAPACITY:
        return False
    truncate_ready = total_ready > MAX_CAPACITY
    limit = MAX_CAPACITY if truncate_ready else MAX_CAPACITY - total_ready
    total = total_ready if truncate_ready else total_not_ready
    room = limit
    for s in subsets:
        field = "addresses" if truncate_ready else "notReadyAddresses"
        have = s.get(field) or []
        take = min(math.ceil(len(have) / total * limit) if total else 0, room)
        kept = have[:take]
        if kept:
            s[field] = kept
        else:
            s.pop(field, None)
        if truncate_ready:
            s.pop("notReadyAddresses", None)
        room -= len(kept)
    return True


def _without_rv(subsets: list[Obj]) -> Any:
    def strip(a: Obj) -> Obj:
        ref = a.get("targetRef")
        if not ref:
            return a
        return {**a, "targetRef": {k: v for k, v in ref.items() if k != "resourceVersion"}}

    return [
        {k: [strip(a) for a in v] if k != "ports" else v for k, v in s.items()} for s in subsets
    ]


class EndpointsController(base.Controller):
    name = "endpoints"
    workers = 4

    def __init__(self, ctx: Any, *, batch_period: float = POD_BATCH_PERIOD) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.batch_period = batch_period
        self.resource = ctx.resource("", "v1", "endpoints")
        self.services = ctx.informers.informer(ctx.resource("", "v1", "services"))
        self.pods = ctx.informers.informer(ctx.resource("", "v1", "pods"))
        self.endpoints = ctx.informers.informer(self.resource)
        self._batched: set[str] = set()
        self._first_change: dict[str, float] = {}
        self._written: dict[str, int] = {}  # key -> resourceVersion we replaced (stale guard)
        self.services.add_handlers(
            on_add=self._service_changed,
            on_update=lambda _o, n: self._service_changed(n),
            on_delete=self._service_changed,
        )
        self.pods.add_handlers(
            on_add=self._pod_changed,
            on_update=self._pod_updated,
            on_delete=self._pod_changed,
        )
        self.endpoints.add_handlers(on_delete=lambda ep: self.queue.add(lister.key_of(ep)))

    async def wait_ready(self) -> None:
        for inf in (self.services, self.pods, self.endpoints):
            await inf.wait_synced()
        # Endpoints whose Service went away while we were not running.
        for ep in self.endpoints.indexer.list():
            self.queue.add(lister.key_of(ep))

    def _service_changed(self, service: Obj) -> None:
        key = lister.key_of(service)
        self._first_change.setdefault(key, time.time())
        self.queue.add(key)

    def _services_of(self, pod: Obj) -> list[str]:
        labels = pod["metadata"].get("labels") or {}
        return [
            lister.key_of(svc)
            for svc in self.services.indexer.list_namespace(pod["metadata"].get("namespace", ""))
            if (sel := (svc.get("spec") or {}).get("selector"))
            and selectors.selector_from_set(sel).matches(labels)
        ]

    def _pod_changed(self, pod: Obj) -> None:
        for key in self._services_of(pod):
            self._first_change.setdefault(key, time.time())
            if key not in self._batched:
                self._batched.add(key)
                self.queue.add_after(key, self.batch_period)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if (old["metadata"].get("labels") or {}) != (new["metadata"].get("labels") or {}):
            self._pod_changed(old)
        self._pod_changed(new)

    async def sync(self, key: str) -> None:
        self._batched.discard(key)
        ns, name = lister.split_key(key)
        service = self.services.indexer.get(key)
        if service is None:
            self._first_change.pop(key, None)
            self._written.pop(key, None)
            current = self.endpoints.indexer.get(key)
            if current is None or LEADER_ANNOTATION in (
                current["metadata"].get("annotations") or {}
            ):
                return  # an old-style leader-election record has no Service
            try:
                await self.client.delete(self.resource, name, ns)
            except errors.StatusError as exc:
                if not errors.is_not_found(exc):
                    raise
            return
        spec = service.get("spec") or {}
        if spec.get("type") == "ExternalName" or spec.get("selector") is None:
            return
        selector = selectors.selector_from_set(spec["selector"])
        pods = [
            p
            for p in self.pods.indexer.list_namespace(ns)
            if selector.matches(p["metadata"].get("labels") or {})
        ]
        subsets = subsets_for(service, pods)
        current = self.endpoints.indexer.get(key)
        if current is not None and self._written.get(key, 0) >= int(
            current["metadata"].get("resourceVersion") or 0
        ):
            raise RuntimeError(f"endpoints informer cache is out of date for {key}")
        labels = dict(service["metadata"].get("labels") or {})
        compare = dict((current or {}).get("metadata", {}).get("labels") or {})
        compare.pop(pe.HEADLESS_LABEL, None)
        annotations = (current or {}).get("metadata", {}).get("annotations") or {}
        over = sum(
            len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or []) for s in subsets
        )
        capacity_ok = over <= MAX_CAPACITY and OVER_CAPACITY not in annotations
        changed_at = self._first_change.pop(key, None)
        if (
            current is not None
            and _without_rv(current.get("subsets") or []) == _without_rv(subsets)
            and compare == labels
            and capacity_ok
        ):
            return
        new: Obj = meta.deep_copy(current) if current is not None else {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns},
        }  # fmt: skip
        md = new["metadata"]
        md["labels"] = labels
        if pe.is_headless(service):
            md["labels"][pe.HEADLESS_LABEL] = ""
        notes = dict(md.get("annotations") or {})
        if changed_at:
            notes[pe.TRIGGER_TIME_ANNOTATION] = meta.format_micro_time(changed_at)
        else:
            notes.pop(pe.TRIGGER_TIME_ANNOTATION, None)
        if truncate(subsets):
            notes[OVER_CAPACITY] = "truncated"
        else:
            notes.pop(OVER_CAPACITY, None)
        md["annotations"] = notes
        if not notes:
            md.pop("annotations")
        if subsets:
            new["subsets"] = subsets
        else:
            new.pop("subsets", None)
        try:
            if current is None:
                await self.client.create(self.resource, new, ns)
            else:
                await self.client.update(self.resource, new)
                self._written[key] = int(current["metadata"].get("resourceVersion") or 0)
        except errors.StatusError as exc:
            if current is None and errors.has_cause(exc, "NamespaceTerminating"):
                return
            if changed_at is not None:
                self._first_change.setdefault(key, changed_at)
            raise
