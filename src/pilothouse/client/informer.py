"""Shared informers: a local cache of one resource, kept current by list + watch.

An :class:`Informer` lists its resource once, then watches from the list's
resourceVersion, resuming from the last version it saw when a watch ends and
listing again when the server says that version is gone (410). Every change
updates the :class:`~pilothouse.client.lister.Indexer` first and then calls the
registered handlers, in order, on the informer's own task — handlers must be
quick (controllers only enqueue keys). After a re-list, objects that vanished
while the informer was away are reported as deletions, so controllers never
miss one.

The list-and-watch loop (and the optional resync) run as children of the
supervisor given to :meth:`Informer.start`. Errors the API can answer with
(StatusError, TransportError) are retried in the loop; anything else is a bug,
left to the supervisor to log with its traceback and restart after a back-off
(the restart lists again, so the cache cannot stay inconsistent).

A :class:`InformerFactory` hands out one informer per resource (and selector),
so the controllers in one process share a single watch per resource. Where
several components of one process read the same resources (the all-in-one
server's controller manager and scheduler), each takes a scope of one factory
(:mod:`pilothouse.client.informerscope`): the informers, their caches and their
watches exist once, and each scope's handlers are removed when the scope stops
(a leadership term ends) while the informers run on for the others.

Cached objects are shared and read-only. An object an informer hands to a
handler or keeps in its indexer is the very object every other handler and
lister of the process sees: a consumer that wants to change one copies it first
(``meta.deep_copy``), as client-go's rule is ("treat cache objects as
read-only; DeepCopy before mutating"). With ``PILOTHOUSE_CACHE_MUTATION_DETECTOR=true``
in the environment (client-go's ``KUBE_CACHE_MUTATION_DETECTOR``; the test suite
sets it) each informer keeps a hash of every object it caches and, when a
newer version or a deletion replaces it, checks that nobody changed it in place:
a mutation is logged as an error and its key recorded in ``Informer.mutations``.
It costs an encoding per event, so it is for tests.

A factory may be given a ``transform``, applied to every object as it arrives
and before anyone sees it (client-go's ``WithTransform``): the controller
manager and the scheduler drop ``metadata.managedFields``, as upstream's do,
since no control loop reads them and they are a third of a pod's memory.

Inside the API server's own process an informer need not list and watch over HTTP:
a factory given a :class:`LocalSource` (the all-in-one server gives its watch
cache, :mod:`pilothouse.apiserver.cachesource`) asks it at each start of the loop
for a :class:`ListWatch` of the informer's resource, and where it gets one the
informer lists the cache's objects and follows the cache's events, with the same
list-then-watch-from-resourceVersion loop (a watch that ends resumes from the last
version seen; 410 lists again). The objects handed over are the cache's own: never
copied, never transformed (the cache keeps ``managedFields`` apart already) and, as
every cached object, read-only — the mutation detector hashes them like any other.
Where the source declines (a resource served with conversion, one the identity may
not read), the informer lists and watches over HTTP as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from pilothouse import supervisor as supervision
from pilothouse.api import errors, resources
from pilothouse.client import lister, rest
from pilothouse.client.rest import Client

log = logging.getLogger(__name__)

Obj = dict[str, Any]

Transform = Callable[[Obj], Obj]
AddHandler = Callable[[Obj], None]
UpdateHandler = Callable[[Obj, Obj], None]
DeleteHandler = Callable[[Obj], None]

MUTATION_DETECTOR_ENV = "PILOTHOUSE_CACHE_MUTATION_DETECTOR"
WATCH_TIMEOUT_S = 300
RETRY_DELAY_S = 1.0


class ListWatch(Protocol):
    """One resource's list and watch, served in the process (see the module docstring)."""

    async def listing(self) -> tuple[list[Obj], str]:
        """Every object (read-only, shared) and the resourceVersion of the listing."""
        ...

    def watch(self, resource_version: str) -> AsyncIterator[list[tuple[str, Obj]]]:
        """Batches of ``(ADDED|MODIFIED|DELETED, object)`` after ``resource_version``,
        in order, none skipped or repeated; ends when the source closes the watch (resume
        from the last object's resourceVersion); raises a 410 StatusError when that
        version is too old to resume from (list again)."""
        ...


class LocalSource(Protocol):
    """Lists and watches in the process instead of over HTTP, where it may."""

    def list_watch(
        self,
        resource: resources.Resource,
        *,
        namespace: str,
        label_selector: str,
        field_selector: str,
    ) -> ListWatch | None:
        """The list and watch of ``resource``, or None: use HTTP."""
        ...


@dataclass
class Handlers:
    on_add: AddHandler | None = None
    on_update: UpdateHandler | None = None
    on_delete: DeleteHandler | None = None


@dataclass(eq=False)
class Registration:
    """What :meth:`Informer.add_handlers` returns: a handle to remove them with."""

    handlers: Handlers
    resync: float = 0.0


def trim_managed_fields(obj: Obj) -> Obj:
    """A transform dropping ``metadata.managedFields`` (upstream's controller manager
    trims its informers' objects the same way: control loops never read them)."""
    md = obj.get("metadata")
    if isinstance(md, dict):
        md.pop("managedFields", None)
    return obj


class Informer:
    """List + watch one resource into an indexer, and fan changes out to handlers."""

    def __init__(
        self,
        client: Client,
        resource: resources.Resource,
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
        indexers: dict[str, lister.IndexFunc] | None = None,
        resync_period: float = 0.0,
        metadata_only: bool = False,
        transform: Transform | None = None,
        local: LocalSource | None = None,
    ) -> None:
        self.client = client
        # Asked at each start of the loop; None or a refusal: list and watch over HTTP.
        self.local = local
        # Whether the running loop reads the local source (for tests and benchmarks).
        self.served_locally = False
        # Applied to each object as it arrives, before the cache or a handler sees it.
        self.transform = transform
        self.metadata_only = metadata_only
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.indexer = lister.Indexer(indexers or {})
        self.resync_period = resync_period
        self._registrations: list[Registration] = []
        self._synced = asyncio.Event()
        self._supervisor: supervision.Supervisor | None = None
        self.resource_version = ""
        self.lists = 0  # how many times this informer listed (for tests and benchmarks)
        # The mutation detector (see the module docstring): a hash of each cached
        # object's encoding by key, and the keys whose cached object was found changed.
        detect = os.environ.get(MUTATION_DETECTOR_ENV, "").lower() in ("1", "true")
        self._fingerprints: dict[str, int] | None = {} if detect else None
        self.mutations: list[str] = []

    # --- registration -----------------------------------------------------------------
    def add_handlers(
        self,
        *,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> Registration:
        """Register handlers; if the cache already has objects, they are replayed as adds."""
        reg = Registration(Handlers(on_add, on_update, on_delete))
        self._registrations.append(reg)
        if on_add is not None:
            for obj in self.indexer.list():
                on_add(obj)
        return reg

    def remove_handlers(self, registration: Registration) -> None:
        """Stop calling the handlers of ``registration`` (client-go's RemoveEventHandler)."""
        with contextlib.suppress(ValueError):
            self._registrations.remove(registration)

    def add_indexer(self, name: str, func: lister.IndexFunc) -> None:
        self.indexer.add_index(name, func)

    # --- life cycle ------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The child's name: the resource, its version (two versions of one resource
        are two informers) and whatever narrows the watch."""
        parts = [f"informer {self.resource.qualified} {self.resource.version}"]
        for what, value in (
            ("ns", self.namespace),
            ("labels", self.label_selector),
            ("fields", self.field_selector),
        ):
            if value:
                parts.append(f"{what}={value}")
        if self.metadata_only:
            parts.append("metadata")
        return " ".join(parts).replace("/", "_")

    def start(self, supervisor: supervision.Supervisor) -> None:
        """Run the list-and-watch loop (and the resync) as children of ``supervisor``."""
        if self._supervisor is not None:
            return
        self._supervisor = supervisor
        supervisor.start(self.name, self.run)
        if self.resync_period > 0:
            supervisor.start(self.name + " resync", self._resync_loop)

    async def stop(self) -> None:
        sup, self._supervisor = self._supervisor, None
        if sup is not None:
            await sup.stop_child(self.name + " resync")
            await sup.stop_child(self.name)

    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._synced.wait(), timeout)

    # --- the loop ---------------------------------------------------------------------
    async def run(self) -> None:
        """List, then watch from the list's version, until cancelled."""
        self.resource_version = ""  # a (re)start lists first: whatever came before is suspect
        lw = None
        if self.local is not None:
            lw = self.local.list_watch(
                self.resource,
                namespace=self.namespace,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
            )
        self.served_locally = lw is not None
        while True:
            try:
                if lw is not None:
                    if not self.resource_version:
                        self._replace(*await lw.listing())
                    await self._watch_local(lw)
                    continue
                if not self.resource_version:
                    await self._list()
                await self._watch()
            except errors.StatusError as exc:
                if errors.is_gone(exc):
                    self.resource_version = ""  # too old: list again
                    continue
                log.warning("informer %s: %s; retrying", self.resource.qualified, exc.message)
                await asyncio.sleep(RETRY_DELAY_S)
            except rest.TransportError as exc:  # the server restarting, the network
                log.debug("informer %s: %s; retrying", self.resource.qualified, exc)
                await asyncio.sleep(RETRY_DELAY_S)

    async def _list(self) -> None:
        result = await self.client.list_all(
            self.resource,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            metadata_only=self.metadata_only,
        )
        self._replace(
            [self._stamp(item) for item in result.get("items") or []],
            (result.get("metadata") or {}).get("resourceVersion", ""),
        )

    def _replace(self, items: list[Obj], resource_version: str) -> None:
        """Take a listing as the cache's contents, and tell the handlers what changed."""
        self.lists += 1
        fresh = {lister.key_of(obj): obj for obj in items}
        old = self.indexer.replace(fresh)
        if self._fingerprints is not None:
            for key, cached in old.items():
                self._check_unchanged(key, cached)
            self._fingerprints.clear()
            for key, obj in fresh.items():
                self._fingerprints[key] = hash(orjson.dumps(obj))
        for key, obj in fresh.items():
            prev = old.get(key)
            if prev is None:
                self._dispatch_add(obj)
            elif prev.get("metadata", {}).get("resourceVersion") != obj["metadata"].get(
                "resourceVersion"
            ):
                self._dispatch_update(prev, obj)
        for key, prev in old.items():
            if key not in fresh:
                self._dispatch_delete(prev)
        self.resource_version = resource_version
        self._synced.set()

    async def _watch_local(self, lw: ListWatch) -> None:
        stream = lw.watch(self.resource_version)
        try:
            async for batch in stream:
                for kind, obj in batch:
                    self._apply(kind, obj)
                    self.resource_version = obj["metadata"]["resourceVersion"]
        finally:
            await stream.aclose()  # type: ignore[attr-defined]  # an async generator

    async def _watch(self) -> None:
        stream = self.client.watch(
            self.resource,
            self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=WATCH_TIMEOUT_S,
            metadata_only=self.metadata_only,
        )
        try:
            async for event in stream:
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    status = errors.StatusError(
                        int(obj.get("code") or 500),
                        str(obj.get("reason") or ""),
                        str(obj.get("message") or ""),
                    )
                    raise status
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if kind == "BOOKMARK":
                    if rv:
                        self.resource_version = rv
                    continue
                self._apply(kind, self._stamp(obj))
                if rv:
                    self.resource_version = rv
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]  # an async generator

    def _stamp(self, obj: Obj) -> Obj:
        # List items (and metadata-only views) may lack their kind; set ours.
        if self.metadata_only or "kind" not in obj:
            obj["kind"] = self.resource.kind
            obj["apiVersion"] = self.resource.api_version
        return obj if self.transform is None else self.transform(obj)

    def _apply(self, kind: str | None, obj: Obj) -> None:
        key = lister.key_of(obj)
        if kind == "DELETED":
            gone = self.indexer.delete(key)
            if self._fingerprints is not None and gone is not None:
                self._check_unchanged(key, gone)
                self._fingerprints.pop(key, None)
            self._dispatch_delete(obj)  # the object as it last was, from the server
            return
        prev = self.indexer.upsert(key, obj)
        if self._fingerprints is not None:
            if prev is not None:
                self._check_unchanged(key, prev)
            self._fingerprints[key] = hash(orjson.dumps(obj))
        if prev is None:
            self._dispatch_add(obj)
        else:
            self._dispatch_update(prev, obj)

    def _check_unchanged(self, key: str, cached: Obj) -> None:
        assert self._fingerprints is not None
        before = self._fingerprints.get(key)
        if before is not None and before != hash(orjson.dumps(cached)):
            self.mutations.append(key)
            log.error(
                "informer %s: the cached object %s was changed in place by a consumer "
                "(cached objects are read-only: copy before changing)",
                self.resource.qualified,
                key,
            )

    async def _resync_loop(self) -> None:
        """Periodically re-deliver every cached object as an update (upstream's resync)."""
        while True:
            await asyncio.sleep(self.resync_period)
            for obj in self.indexer.list():
                self._dispatch_update(obj, obj)

    # --- dispatch ---------------------------------------------------------------------
    def _dispatch_add(self, obj: Obj) -> None:
        for reg in self._registrations:
            if reg.handlers.on_add is not None:
                _call(reg.handlers.on_add, obj)

    def _dispatch_update(self, old: Obj, new: Obj) -> None:
        for reg in self._registrations:
            if reg.handlers.on_update is not None:
                _call(reg.handlers.on_update, old, new)

    def _dispatch_delete(self, obj: Obj) -> None:
        for reg in self._registrations:
            if reg.handlers.on_delete is not None:
                _call(reg.handlers.on_delete, obj)


def _call(handler: Callable[..., None], *args: Obj) -> None:
    try:
        handler(*args)
    except Exception:  # one bad handler must not stop the informer
        log.exception("informer handler %r failed", handler)


@dataclass
class InformerFactory:
    """One informer per (resource, namespace, selectors), shared by every controller."""

    client: Client
    resync_period: float = 0.0
    # Applied to every object of every informer as it arrives (client-go's WithTransform)
    # over HTTP; objects from ``local`` are handed over as they are (see the module).
    transform: Transform | None = None
    # Where informers list and watch in the process instead of over HTTP, if it may.
    local: LocalSource | None = None
    _informers: dict[tuple[str, ...], Informer] = field(default_factory=dict)
    _supervisor: supervision.Supervisor | None = None  # what start() was given

    def informer(
        self,
        resource: resources.Resource,
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
        metadata_only: bool = False,
    ) -> Informer:
        key = informer_key(resource, namespace, label_selector, field_selector, metadata_only)
        inf = self._informers.get(key)
        if inf is None:
            inf = Informer(
                self.client,
                resource,
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                indexers={lister.NAMESPACE_INDEX: lister.namespace_index},
                resync_period=self.resync_period,
                metadata_only=metadata_only,
                transform=self.transform,
                local=self.local,
            )
            self._informers[key] = inf
        return inf

    def informers(self) -> list[Informer]:
        """Every informer made so far."""
        return list(self._informers.values())

    def informer_or_metadata(self, resource: resources.Resource) -> Informer:
        """The whole-object informer of ``resource`` when one is made already (its
        objects carry their metadata: a second, metadata-only watch would decode and
        cache every object again), else a metadata-only one. Upstream's garbage
        collector reads the typed informers the same way."""
        if self._has_full(resource):
            return self.informer(resource)
        return self.informer(resource, metadata_only=True)

    def _has_full(self, resource: resources.Resource) -> bool:
        return informer_key(resource, "", "", "", False) in self._informers

    def start(self, supervisor: supervision.Supervisor) -> None:
        """Start every informer made so far as children of ``supervisor``; informers made
        later start with :meth:`start_late`."""
        self._supervisor = supervisor
        for inf in self._informers.values():
            inf.start(supervisor)

    def start_late(self) -> None:
        """Start informers made since :meth:`start`, under the same supervisor (for a
        controller that learns what to watch as it runs)."""
        if self._supervisor is None:
            raise RuntimeError("the informer factory has not started")
        self.start(self._supervisor)

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.gather(*(inf.wait_synced(timeout) for inf in self._informers.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(inf.stop() for inf in self._informers.values()))


def informer_key(
    resource: resources.Resource,
    namespace: str,
    label_selector: str,
    field_selector: str,
    metadata_only: bool,
) -> tuple[str, ...]:
    return (
        resource.api_version,
        resource.plural,
        namespace,
        label_selector,
        field_selector,
        str(metadata_only),
    )
