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
so the controllers in one process share a single watch per resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pilothouse import supervisor as supervision
from pilothouse.api import errors, resources
from pilothouse.client import lister, rest
from pilothouse.client.rest import Client

log = logging.getLogger(__name__)

Obj = dict[str, Any]

AddHandler = Callable[[Obj], None]
UpdateHandler = Callable[[Obj, Obj], None]
DeleteHandler = Callable[[Obj], None]

WATCH_TIMEOUT_S = 300
RETRY_DELAY_S = 1.0


@dataclass
class Handlers:
    on_add: AddHandler | None = None
    on_update: UpdateHandler | None = None
    on_delete: DeleteHandler | None = None


@dataclass
class _Registration:
    handlers: Handlers
    resync: float = 0.0


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
    ) -> None:
        self.client = client
        self.metadata_only = metadata_only
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.indexer = lister.Indexer(indexers or {})
        self.resync_period = resync_period
        self._registrations: list[_Registration] = []
        self._synced = asyncio.Event()
        self._supervisor: supervision.Supervisor | None = None
        self.resource_version = ""
        self.lists = 0  # how many times this informer listed (for tests and benchmarks)

    # --- registration -----------------------------------------------------------------
    def add_handlers(
        self,
        *,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> None:
        """Register handlers; if the cache already has objects, they are replayed as adds."""
        reg = _Registration(Handlers(on_add, on_update, on_delete))
        self._registrations.append(reg)
        if on_add is not None:
            for obj in self.indexer.list():
                on_add(obj)

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
        while True:
            try:
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
        self.lists += 1
        fresh = {lister.key_of(o): o for o in result.get("items") or []}
        for obj in fresh.values():
            self._stamp(obj)
        old = self.indexer.replace(fresh)
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
        self.resource_version = (result.get("metadata") or {}).get("resourceVersion", "")
        self._synced.set()

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
                self._stamp(obj)
                self._apply(kind, obj)
                if rv:
                    self.resource_version = rv
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]  # an async generator

    def _stamp(self, obj: Obj) -> None:
        # List items (and metadata-only views) may lack their kind; set ours.
        if self.metadata_only or "kind" not in obj:
            obj["kind"] = self.resource.kind
            obj["apiVersion"] = self.resource.api_version

    def _apply(self, kind: str | None, obj: Obj) -> None:
        key = lister.key_of(obj)
        if kind == "DELETED":
            self.indexer.delete(key)
            self._dispatch_delete(obj)  # the object as it last was, from the server
            return
        prev = self.indexer.upsert(key, obj)
        if prev is None:
            self._dispatch_add(obj)
        else:
            self._dispatch_update(prev, obj)

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
        key = (
            resource.api_version,
            resource.plural,
            namespace,
            label_selector,
            field_selector,
            str(metadata_only),
        )
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
            )
            self._informers[key] = inf
        return inf

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
