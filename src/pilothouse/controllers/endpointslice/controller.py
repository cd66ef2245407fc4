"""The EndpointSlice controller (upstream's ``pkg/controller/endpointslice``).

``sync(namespace/name)`` reads a Service, the pods its selector matches and the
slices this controller manages for it from the informers, plans the slice
writes (:mod:`.reconciler`) and performs them. Services without a selector and
ExternalName Services get no slices from here (their slices are the user's).

Events only enqueue Service keys. Service changes are synced at once; pod
changes are batched for ``batch_period`` seconds, so a rollout that touches a
thousand pods makes one write per slice per batch rather than one per pod
change. A sync reads nothing older than what it wrote (:mod:`.tracker`). One
Service is synced by one worker at a time; different Services in parallel.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pilothouse.api import meta, selectors
from pilothouse.api.meta import Obj
from pilothouse.client import lister, rest
from pilothouse.controllers import base
from pilothouse.controllers.endpointslice import podendpoints as pe
from pilothouse.controllers.endpointslice import reconciler, tracker

log = logging.getLogger(__name__)

SLICE_SERVICE_INDEX = "endpointslice-service"
POD_BATCH_PERIOD = 0.5


class StaleInformerCache(Exception):
    """The slice cache predates this controller's own writes; retried shortly."""


def _managed_slice_index(s: Obj) -> list[str]:
    labels = s["metadata"].get("labels") or {}
    name = labels.get(pe.SERVICE_NAME_LABEL)
    if not name or labels.get(pe.MANAGED_BY_LABEL) != pe.CONTROLLER_NAME:
        return []
    return [f"{s['metadata'].get('namespace', '')}/{name}"]


def _pod_view(pod: Obj) -> tuple[Any, ...]:
    """What about a pod can change its endpoints; other updates are ignored."""
    md, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    return (
        md.get("labels"),
        md.get("deletionTimestamp"),
        pe.pod_ips(pod),
        pe.pod_ready(pod),
        status.get("phase"),
        spec.get("nodeName"),
        spec.get("hostname"),
        spec.get("subdomain"),
    )


class EndpointSliceController(base.Controller):
    name = "endpointslice"
    workers = 4

    def __init__(
        self,
        ctx: Any,
        *,
        batch_period: float = POD_BATCH_PERIOD,
        max_endpoints: int = reconciler.MAX_ENDPOINTS_PER_SLICE,
    ) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.batch_period = batch_period
        self.max_endpoints = max_endpoints
        self.slice_resource = ctx.resource("discovery.k8s.io", "v1", "endpointslices")
        self.services = ctx.informers.informer(ctx.resource("", "v1", "services"))
        self.pods = ctx.informers.informer(ctx.resource("", "v1", "pods"))
        self.pods.add_indexer(lister.NODE_NAME_INDEX, lister.node_name_index)
        self.nodes = ctx.informers.informer(ctx.resource("", "v1", "nodes"))
        self.slices = ctx.informers.informer(self.slice_resource)
        self.slices.add_indexer(SLICE_SERVICE_INDEX, _managed_slice_index)
        self.tracker = tracker.SliceTracker()
        self._batched: set[str] = set()
        self._first_change: dict[str, float] = {}
        self.services.add_handlers(
            on_add=self._service_changed,
            on_update=lambda _o, n: self._service_changed(n),
            on_delete=self._service_deleted,
        )
        self.pods.add_handlers(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_added
        )
        self.nodes.add_handlers(
            on_add=self._node_changed, on_update=self._node_updated, on_delete=self._node_changed
        )
        self.slices.add_handlers(
            on_add=self._slice_changed,
            on_update=self._slice_updated,
            on_delete=self._slice_deleted,
        )

    async def wait_ready(self) -> None:
        for inf in (self.services, self.pods, self.nodes, self.slices):
            await inf.wait_synced()

    # --- handlers ---------------------------------------------------------------------
    def _note_change(self, key: str) -> None:
        self._first_change.setdefault(key, time.time())

    def _service_changed(self, service: Obj) -> None:
        key = lister.key_of(service)
        self._note_change(key)
        self.queue.add(key)

    def _service_deleted(self, service: Obj) -> None:
        key = lister.key_of(service)
        self.tracker.forget(key)
        self._first_change.pop(key, None)
        self.queue.add(key)

    def _services_of(self, pod: Obj) -> list[str]:
        labels = pod["metadata"].get("labels") or {}
        out = []
        for svc in self.services.indexer.list_namespace(pod["metadata"].get("namespace", "")):
            sel = (svc.get("spec") or {}).get("selector")
            if sel and selectors.selector_from_set(sel).matches(labels):
                out.append(lister.key_of(svc))
        return out

    def _enqueue_batched(self, key: str) -> None:
        self._note_change(key)
        if key in self._batched:
            return
        self._batched.add(key)
        self.queue.add_after(key, self.batch_period)

    def _pod_added(self, pod: Obj) -> None:
        for key in self._services_of(pod):
            self._enqueue_batched(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if _pod_view(old) == _pod_view(new):
            return
        keys = set(self._services_of(new))
        if (old["metadata"].get("labels") or {}) != (new["metadata"].get("labels") or {}):
            keys |= set(self._services_of(old))
        for key in keys:
            self._enqueue_batched(key)

    def _node_changed(self, node: Obj) -> None:
        for pod in self.pods.indexer.by_index(lister.NODE_NAME_INDEX, node["metadata"]["name"]):
            self._pod_added(pod)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        old_zone = (old["metadata"].get("labels") or {}).get(pe.ZONE_LABEL)
        if old_zone != (new["metadata"].get("labels") or {}).get(pe.ZONE_LABEL):
            self._node_changed(new)

    def _slice_changed(self, s: Obj) -> None:
        for key in _managed_slice_index(s):
            if self.tracker.should_sync(key, s):
                self.queue.add(key)

    def _slice_updated(self, old: Obj, new: Obj) -> None:
        for key in set(_managed_slice_index(old)) - set(_managed_slice_index(new)):
            self.tracker.untrack(key, old)
            self.queue.add(key)
        self._slice_changed(new)

    def _slice_deleted(self, s: Obj) -> None:
        for key in _managed_slice_index(s):
            if self.tracker.observed_deletion(key, s):
                self.queue.add(key)

    # --- sync -------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        self._batched.discard(key)
        service = self.services.indexer.get(key)
        if service is None:
            self.tracker.forget(key)
            self._first_change.pop(key, None)
            return  # the garbage collector removes the slices it owned
        spec = service.get("spec") or {}
        if spec.get("type") == "ExternalName" or spec.get("selector") is None:
            self._first_change.pop(key, None)
            return
        slices = self.slices.indexer.by_index(SLICE_SERVICE_INDEX, key)
        if self.tracker.stale(key, slices):
            raise StaleInformerCache(f"EndpointSlice informer cache is out of date for {key}")
        ns = service["metadata"].get("namespace", "")
        selector = selectors.selector_from_set(spec["selector"])
        pods = [
            p
            for p in self.pods.indexer.list_namespace(ns)
            if selector.matches(p["metadata"].get("labels") or {})
        ]
        plan = reconciler.plan(
            service, pods, slices, node=self.nodes.indexer.get, max_endpoints=self.max_endpoints
        )
        changed_at = self._first_change.pop(key, None)
        if not plan.empty:
            trigger = meta.format_micro_time(changed_at) if changed_at else ""
            try:
                await reconciler.apply(
                    self.client,
                    self.slice_resource,
                    service,
                    plan,
                    trigger_time=trigger,
                    on_written=lambda s: self.tracker.written(key, s),
                    on_deleted=lambda s: self.tracker.deleted(key, s),
                )
            except BaseException:
                if changed_at is not None:
                    self._first_change.setdefault(key, changed_at)
                raise
        if plan.errors:
            raise RuntimeError("; ".join(plan.errors))
