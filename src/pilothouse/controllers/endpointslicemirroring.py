"""The EndpointSlice mirroring controller: the Endpoints a user writes for a Service
without a selector are mirrored into EndpointSlices (upstream's
``pkg/controller/endpointslicemirroring``), so the proxy and the cluster DNS — which
read slices only — serve them too (an external database behind a Service, say).

``sync(namespace/name)`` mirrors the Endpoints object of that name when its Service
exists, has no selector, and the Endpoints is not labelled
``endpointslice.kubernetes.io/skip-mirror: "true"`` (the API server's own
``kubernetes`` Endpoints are); otherwise it deletes the slices it mirrored. Slices
are named ``<endpoints>-<random>``, owned by the Endpoints object, labelled with
its labels plus ``kubernetes.io/service-name`` and
``endpointslice.kubernetes.io/managed-by: endpointslicemirroring-controller.k8s.io``;
ready addresses become ready endpoints, ``notReadyAddresses`` not-ready ones, at
most 1000 addresses per subset (the rest are dropped, with a Warning event, as
upstream). The planning is the EndpointSlice controller's (:mod:`.endpointslice.reconciler`).
One Endpoints object is synced by one worker at a time.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pilothouse.api.meta import Obj
from pilothouse.client import events, lister, rest
from pilothouse.controllers import base
from pilothouse.controllers.endpointslice import podendpoints as pe
from pilothouse.controllers.endpointslice import reconciler, tracker

CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
MAX_PER_SUBSET = 1000
MIRROR_INDEX = "mirrored-endpoints"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
_RESERVED = frozenset({pe.SERVICE_NAME_LABEL, pe.MANAGED_BY_LABEL, pe.SKIP_MIRROR_LABEL})


def _mirror_index(s: Obj) -> list[str]:
    labels = s["metadata"].get("labels") or {}
    name = labels.get(pe.SERVICE_NAME_LABEL)
    if not name or labels.get(pe.MANAGED_BY_LABEL) != CONTROLLER_NAME:
        return []
    return [f"{s['metadata'].get('namespace', '')}/{name}"]


def mirror_labels(endpoints: Obj, current: dict[str, str] | None) -> tuple[dict[str, str], bool]:
    theirs = {
        k: v for k, v in (endpoints["metadata"].get("labels") or {}).items() if k not in _RESERVED
    }
    ours = {k: v for k, v in (current or {}).items() if k not in _RESERVED}
    changed = ours != theirs
    theirs[pe.SERVICE_NAME_LABEL] = endpoints["metadata"]["name"]
    theirs[pe.MANAGED_BY_LABEL] = CONTROLLER_NAME
    return theirs, changed


def should_mirror(endpoints: Obj | None) -> bool:
    if endpoints is None:
        return False
    md = endpoints["metadata"]
    if (md.get("labels") or {}).get(pe.SKIP_MIRROR_LABEL) == "true":
        return False
    return LEADER_ANNOTATION not in (md.get("annotations") or {})


def desired_from_endpoints(endpoints: Obj) -> tuple[reconciler.Desired, int]:
    """The slices' endpoints by address type and port set; and how many addresses
    were dropped past the per-subset limit."""
    desired: reconciler.Desired = {}
    dropped = 0
    for subset in endpoints.get("subsets") or []:
        ports = [
            {k: v for k, v in {
                "name": p.get("name") or "", "port": p.get("port"),
                "protocol": p.get("protocol") or "TCP", "appProtocol": p.get("appProtocol"),
            }.items() if v is not None}
            for p in subset.get("ports") or []
        ]  # fmt: skip
        key = pe.port_map_key(ports)
        listed = [(a, True) for a in subset.get("addresses") or []]
        listed += [(a, False) for a in subset.get("notReadyAddresses") or []]
        dropped += max(0, len(listed) - MAX_PER_SUBSET)
        for address, ready in listed[:MAX_PER_SUBSET]:
            try:
                family = pe.address_family(str(address.get("ip", "")))
            except ValueError:
                continue  # not an IP address: not mirrored
            endpoint: Obj = {
                "addresses": [str(ipaddress.ip_address(address["ip"]))],
                "conditions": {"ready": ready},
            }
            for field in ("hostname", "nodeName", "targetRef"):
                if address.get(field):
                    endpoint[field] = address[field]
            _, bucket = desired.setdefault(family, {}).setdefault(key, (ports, {}))
            bucket[pe.endpoint_key(endpoint)] = endpoint
    return desired, dropped


class EndpointSliceMirroringController(base.Controller):
    name = "endpointslicemirroring"
    workers = 2

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.slice_resource = ctx.resource("discovery.k8s.io", "v1", "endpointslices")
        self.services = ctx.informers.informer(ctx.resource("", "v1", "services"))
        self.endpoints = ctx.informers.informer(ctx.resource("", "v1", "endpoints"))
        self.slices = ctx.informers.informer(self.slice_resource)
        self.slices.add_indexer(MIRROR_INDEX, _mirror_index)
        self.recorder: events.EventRecorder = ctx.recorder("endpointslice-mirroring-controller")
        self.tracker = tracker.SliceTracker()
        for inf in (self.services, self.endpoints):
            inf.add_handlers(
                on_add=self.enqueue,
                on_update=lambda _o, n: self.enqueue(n),
                on_delete=self.enqueue,
            )
        self.slices.add_handlers(
            on_add=self._slice_changed,
            on_update=self._slice_updated,
            on_delete=self._slice_deleted,
        )

    async def wait_ready(self) -> None:
        for inf in (self.services, self.endpoints, self.slices):
            await inf.wait_synced()

    def _slice_changed(self, s: Obj) -> None:
        for key in _mirror_index(s):
            if self.tracker.should_sync(key, s):
                self.queue.add(key)

    def _slice_updated(self, old: Obj, new: Obj) -> None:
        for key in set(_mirror_index(old)) - set(_mirror_index(new)):
            self.tracker.untrack(key, old)
            self.queue.add(key)
        self._slice_changed(new)

    def _slice_deleted(self, s: Obj) -> None:
        for key in _mirror_index(s):
            if self.tracker.observed_deletion(key, s):
                self.queue.add(key)

    async def sync(self, key: str) -> None:
        service = self.services.indexer.get(key)
        endpoints = self.endpoints.indexer.get(key)
        slices = self.slices.indexer.by_index(MIRROR_INDEX, key)
        if self.tracker.stale(key, slices):
            raise RuntimeError(f"EndpointSlice informer cache is out of date for {key}")
        mirror = (
            service is not None
            and (service.get("spec") or {}).get("selector") is None
            and should_mirror(endpoints)
        )
        if not mirror or endpoints is None:
            plan = reconciler.Plan(delete=list(slices))
            owner: Obj = endpoints or {"metadata": {"namespace": lister.split_key(key)[0]}}
        else:
            desired, dropped = desired_from_endpoints(endpoints)
            owner = endpoints
            owner_ = reconciler.Owner(
                endpoints, "Endpoints", lambda current: mirror_labels(endpoints, current)
            )
            plan = reconciler.plan_desired(owner_, desired, slices, max_endpoints=MAX_PER_SUBSET)
            if dropped:
                self.recorder.event(
                    endpoints,
                    events.WARNING,
                    "EndpointsMirroringTruncated",
                    f"Endpoints with more than {MAX_PER_SUBSET} addresses in a subset: "
                    f"{dropped} not mirrored to EndpointSlices",
                )
        if plan.empty:
            return
        await reconciler.apply(
            self.client,
            self.slice_resource,
            owner,
            plan,
            trigger_time="",
            on_written=lambda s: self.tracker.written(key, s),
            on_deleted=lambda s: self.tracker.deleted(key, s),
        )
