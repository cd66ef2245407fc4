"""Serving the resources of CustomResourceDefinitions while the server runs.

:class:`CustomResources` turns CRDs into served resources, as kube-apiserver's
apiextensions part does with its naming, establishing and finalizer controllers and
its ``crdHandler``:

* **names** — each CRD's ``status.acceptedNames`` and ``NamesAccepted`` condition
  (:mod:`pilothouse.api.apiextensions.naming`), then ``Established``;
* **serving** — for an established CRD, one registry entry and one
  :class:`~pilothouse.apiserver.registry.store.ResourceStore` per served version
  (strategy, converter, printer), its storage prefix in the watch cache, and fresh
  discovery and OpenAPI documents (they follow :attr:`Registry.generation`);
* **cleanup** — for a terminating CRD, its objects are deleted and then its
  finalizer removed (:mod:`.finalizer`); the resource stays served (refusing
  creates) until the CRD is gone.

A CRD written through the API is reconciled before the write is answered (an
``after_write`` hook of the CRD store), so ``kubectl apply -f crd.yaml`` is followed
at once by a working ``kubectl get crontabs``. One supervised loop follows every
CRD change in the watch cache, including status writes and deletions, and keeps
retrying cleanups that wait on objects' own finalizers. Reconciles of one CRD are
serialised by a per-name lock; different CRDs proceed concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

from pilothouse import supervisor as supervision
from pilothouse.api import errors, resources
from pilothouse.api.apiextensions import crd as crds
from pilothouse.api.apiextensions import naming
from pilothouse.api.meta import Obj
from pilothouse.apiserver import watchcache
from pilothouse.apiserver.admission import chain as admission_chain
from pilothouse.apiserver.crd import conversion, finalizer, strategy, webhook
from pilothouse.apiserver.crd import openapi as crd_openapi
from pilothouse.apiserver.registry.listing import ListOptions
from pilothouse.apiserver.registry.store import Admission, ResourceStore
from pilothouse.storage import interface as storage

log = logging.getLogger(__name__)

CLEANUP_RETRY = 1.0  # seconds between cleanup passes while objects wait on finalizers


def version_priority(name: str) -> tuple[int, int, int, str]:
    """Kubernetes' version order: GA before beta before alpha, higher first, others last."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", name)
    if m is None:
        return (3, 0, 0, name)
    major = int(m.group(1))
    stage = {"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor, name)


class CustomResources:
    """The CRD-backed part of one API server's registry and stores."""

    def __init__(
        self,
        *,
        registry: resources.Registry,
        stores: dict[resources.Resource, ResourceStore],
        store: storage.Store,
        cache: watchcache.WatchCache,
        admission: admission_chain.Chain | None,
        before_write: list[Admission],
        changed: Callable[[], None] = lambda: None,
        supervisor: supervision.Supervisor | None = None,
    ) -> None:
        self.registry = registry
        self.stores = stores
        self.store = store
        self.cache = cache
        # Custom resources pass the same admission chain as built-in ones.
        self.admission = admission
        self.before_write = before_write
        self.changed = changed
        crd_resource = registry.by_path(crds.GROUP, "v1", "customresourcedefinitions")
        assert crd_resource is not None
        self.crds = stores[crd_resource]
        # CRD name -> the resources served for it (one per served version)
        self.served: dict[str, tuple[resources.Resource, ...]] = {}
        self._snapshots: dict[str, Obj] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: dict[str, asyncio.Task[Any] | None] = {}
        # The server's (nested), so /readyz sees the reconciler down while it restarts.
        self.supervisor = supervisor or supervision.Supervisor("customresources")
        self.sessions = webhook.Sessions()

    # --- life cycle ------------------------------------------------------------
    async def start(self) -> None:
        """Serve every established CRD, then follow CRD changes."""
        self.crds.after_write.append(self._after_write)
        for entry in list(self.crds.cache.objects.values()):
            await self.reconcile(entry.obj["metadata"]["name"])
        self.supervisor.start("crd-reconciler", self._follow)

    async def stop(self) -> None:
        await self.supervisor.stop()
        await self.sessions.close()

    async def _after_write(self, obj: Obj) -> None:
        name = str(obj["metadata"]["name"])
        if self._holders.get(name) is asyncio.current_task():
            # This reconcile's own write (status, finalizer): the follow loop sees it.
            return
        # Otherwise wait for any reconcile in progress (the follow loop may have seen
        # the write first) and make sure this write is served before it is answered.
        await self.reconcile(name)

    async def _follow(self) -> None:
        watcher = self.crds.cache.watch(self.crds.resource.prefix(), None, self.cache.revision)
        if watcher is None:  # pragma: no cover - the window always covers "now"
            raise RuntimeError("watch cache window does not reach its own revision")
        try:
            retry: float | None = None
            while not watcher.closed:
                batch = await watcher.next_batch(retry)
                names = {str(e.obj["metadata"]["name"]) for _, e in batch}
                if not batch:
                    names |= {n for n, o in self._snapshots.items() if _terminating(o)}
                for name in sorted(names):
                    await self.reconcile(name)
                retry = (
                    CLEANUP_RETRY
                    if any(_terminating(o) for o in self._snapshots.values())
                    else None
                )
        finally:
            self.crds.cache.unwatch(watcher)

    # --- conversion webhooks ------------------------------------------------------
    async def _resolve_service(self, namespace: str, name: str, port: int) -> tuple[str, int]:
        """Where a Service's port is reached: a ready endpoint, else its cluster IP
        (or external name)."""
        services = self.registry.by_path("", "v1", "services")
        slices = self.registry.by_path("discovery.k8s.io", "v1", "endpointslices")
        assert services is not None and slices is not None
        try:
            svc = await self.stores[services].get(namespace, name)
        except errors.StatusError as exc:
            raise webhook.ResolveError(f'service "{namespace}/{name}" not found') from exc
        spec = svc.get("spec") or {}
        ports = spec.get("ports") or []
        wanted = next((p for p in ports if p.get("port") == port), None)
        if spec.get("type") == "ExternalName":
            return str(spec.get("externalName") or ""), port
        if wanted is not None:
            page = await self.stores[slices].list(namespace, ListOptions())
            for entry in page.entries:
                sl = entry.obj
                if (sl.get("metadata") or {}).get("labels", {}).get(
                    "kubernetes.io/service-name"
                ) != name:
                    continue
                target = next(
                    (
                        p.get("port")
                        for p in sl.get("ports") or []
                        if (p.get("name") or "") == (wanted.get("name") or "")
                    ),
                    None,
                )
                for ep in sl.get("endpoints") or []:
                    ready = (ep.get("conditions") or {}).get("ready") is not False
                    if ready and ep.get("addresses") and isinstance(target, int):
                        return str(ep["addresses"][0]), target
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or wanted is None:
            raise webhook.ResolveError(f'service "{namespace}/{name}" has no port {port}')
        return str(ip), port

    # --- OpenAPI (handlers.openapi.CustomDocuments) ----------------------------
    def _crd_of(self) -> dict[resources.Resource, Obj]:
        return {
            r: self._snapshots[name]
            for name, served in self.served.items()
            if name in self._snapshots
            for r in served
        }

    def group_version(
        self, group: str, version: str
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]] | None:
        crd_of = self._crd_of()
        if not any(r.group == group and r.version == version for r in crd_of):
            return None
        return crd_openapi.document(self.registry, crd_of, group, version)

    def key(self, group: str, version: str) -> str:
        return "\n".join(
            sorted(
                crd_openapi.digest(crd)
                for r, crd in self._crd_of().items()
                if r.group == group and r.version == version
            )
        )

    # --- one CRD ---------------------------------------------------------------
    async def reconcile(self, name: str) -> None:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            self._holders[name] = asyncio.current_task()
            try:
                await self._reconcile(name)
            finally:
                self._holders.pop(name, None)

    async def _reconcile(self, name: str) -> None:
        entry = await self.crds.current("", name)
        if entry is None:
            self._snapshots.pop(name, None)
            await self._unserve(name)
            return
        crd = entry.obj
        if (
            not crds.conditions(crd)
            or not crds.is_true(crd, crds.ESTABLISHED)
            or _names_changed(crd)
        ):
            crd = await self._update_names(name) or crd
        self._snapshots[name] = crd
        if crds.is_true(crd, crds.ESTABLISHED):
            await self._serve(name, crd)
        if _terminating(crd):
            await self._cleanup(name, crd)

    async def _update_names(self, name: str) -> Obj | None:
        others = [
            e.obj for e in self.crds.cache.objects.values() if e.obj["metadata"]["name"] != name
        ]

        async def mutate(current: Obj) -> Obj:
            naming.reconcile(current, others)
            return current

        try:
            return await self.crds.guaranteed_update("", name, mutate, subresource="status")
        except errors.StatusError as exc:
            if errors.is_not_found(exc):
                return None
            raise

    async def _serve(self, name: str, crd: Obj) -> None:
        wanted = _resources(crd)
        group = str(crds.spec(crd).get("group") or "")
        plural = str(crds.spec(crd).get("names", {}).get("plural") or "")
        prefix = f"/registry/{group}/{plural}/"
        await self.cache.add_prefix(prefix)
        previous = self.served.get(name, ())
        for old in previous:
            self.stores.pop(old, None)
        storage_version = crds.storage_version(crd)
        strategy_name = crds.conversion(crd).get("strategy")
        for r in wanted:
            schema = crds.schema(crd, r.version)
            remote: webhook.WebhookConverter | None = None
            converter: conversion.NoneConverter | None = None
            if strategy_name == "Webhook" and r.version != storage_version:
                remote = webhook.WebhookConverter(
                    crd_name=name,
                    group=group,
                    kind=r.kind,
                    storage_version=storage_version,
                    version=r.version,
                    client_config=(crds.conversion(crd).get("webhook") or {}).get("clientConfig")
                    or {},
                    sessions=self.sessions,
                    resolve=self._resolve_service,
                )
            elif conversion.needed(
                storage_version=storage_version, version=r.version, schema=schema
            ):
                converter = conversion.NoneConverter(
                    group=group, storage_version=storage_version, version=r.version, schema=schema
                )
            self.stores[r] = ResourceStore(
                resource=r,
                strategy=strategy.CustomResourceStrategy(r, crd, r.version),
                store=self.store,
                cache=self.cache,
                admission=self.admission,
                before_write=self.before_write,
                converter=converter,
                remote=remote,
            )
        self.served[name] = wanted
        self._publish()

    async def _unserve(self, name: str) -> None:
        previous = self.served.pop(name, ())
        if not previous:
            return
        for old in previous:
            self.stores.pop(old, None)
        prefixes = {r.storage_prefix for r in previous}
        still = {r.storage_prefix for rs in self.served.values() for r in rs}
        for prefix in prefixes - still:
            self.cache.remove_prefix(prefix)
        self._publish()

    def _publish(self) -> None:
        custom = sorted(
            (r for rs in self.served.values() for r in rs),
            key=lambda r: (r.group, version_priority(r.version), r.plural),
        )
        self.registry.set_custom(tuple(custom))
        self.changed()

    async def _cleanup(self, name: str, crd: Obj) -> None:
        served = self.served.get(name, ())
        left = 0
        if served:
            # The storage version's store: deleting through it needs no conversion.
            stored = crds.storage_version(crd)
            chosen = next((r for r in served if r.version == stored), served[0])
            store = self.stores.get(chosen)
            if store is not None:
                await self._set_terminating(
                    name, "InstanceDeletionInProgress", "CustomResource deletion is in progress"
                )
                try:
                    left = await finalizer.delete_instances(store)
                except errors.StatusError as exc:
                    await self._set_terminating(
                        name,
                        "InstanceDeletionFailed",
                        f"could not issue all deletes: {exc.message}",
                    )
                    return
        if left:
            await self._set_terminating(
                name,
                "InstanceDeletionCheck",
                "could not confirm zero CustomResources remaining: timed out waiting for the condition",
            )
            return
        await self._set_terminating(name, "InstanceDeletionCompleted", "removed all instances")

        async def drop_finalizer(current: Obj) -> Obj:
            md = current["metadata"]
            md["finalizers"] = [f for f in md.get("finalizers") or [] if f != crds.FINALIZER]
            return current

        try:
            await self.crds.guaranteed_update("", name, drop_finalizer)
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise
        if await self.crds.current("", name) is None:
            self._snapshots.pop(name, None)
            await self._unserve(name)

    async def _set_terminating(self, name: str, reason: str, message: str) -> None:
        async def mutate(current: Obj) -> Obj:
            crds.set_condition(current, crds.TERMINATING, "True", reason, message)
            return current

        try:
            await self.crds.guaranteed_update("", name, mutate, subresource="status")
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise


def _terminating(crd: Obj) -> bool:
    return bool((crd.get("metadata") or {}).get("deletionTimestamp"))


def _names_changed(crd: Obj) -> bool:
    """Whether the spec asks for names the status has not accepted yet."""
    wanted = crds.names(crd)
    accepted = crds.accepted_names(crd)
    return any(
        wanted.get(k) != accepted.get(k)
        for k in ("plural", "singular", "kind", "listKind", "shortNames", "categories")
        if wanted.get(k) or accepted.get(k)
    )


def _resources(crd: Obj) -> tuple[resources.Resource, ...]:
    names = crds.accepted_names(crd)
    group = str(crds.spec(crd).get("group") or "")
    out: list[resources.Resource] = []
    for version in crds.versions(crd):
        if not version.get("served"):
            continue
        subs = version.get("subresources") or {}
        out.append(
            resources.Resource(
                group=group,
                version=str(version.get("name")),
                kind=str(names.get("kind") or ""),
                plural=str(names.get("plural") or ""),
                namespaced=crds.namespaced(crd),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple(s for s in ("scale", "status") if s in subs),
                singular=str(names.get("singular") or ""),
                storage_group=group,
                storage_plural=str(crds.names(crd).get("plural") or ""),
            )
        )
    return tuple(out)
