"""The garbage collector: dependents follow their owners (upstream's garbagecollector).

A graph of every object's uid and ``ownerReferences`` is built from
metadata-only informers of every deletable resource. Three kinds of work come
out of it, as ``action:uid`` keys on one queue:

* ``attempt`` — an object whose owners may be gone. Owners absent from the
  graph are looked up in the API (the graph may lag); if none remains, the
  object is deleted (with its uid as precondition, so a new object of the same
  name is safe); if some remain, only the dangling references are removed.
* ``orphan`` — an owner deleted with ``propagationPolicy=Orphan``: strip its
  reference from every dependent, then drop the ``orphan`` finalizer.
* ``foreground`` — an owner deleted with ``propagationPolicy=Foreground``:
  delete its dependents (in the foreground themselves), and drop the
  ``foregroundDeletion`` finalizer once no dependent that blocks it remains.

The graph is updated only by informer handlers (on the informers' tasks); the
queue's workers read it and act through the API. After a restart, the initial
listing re-discovers everything left to do, so missed events lose nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from pilothouse.api import errors, resources
from pilothouse.client import informer, rest
from pilothouse.controllers import base

log = logging.getLogger(__name__)

Obj = dict[str, Any]

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
# Events are never owned in practice and are the most numerous objects: upstream
# leaves them out of the graph too.
IGNORED = {("", "events"), ("events.k8s.io", "events")}


@dataclass
class Node:
    uid: str
    resource: resources.Resource
    namespace: str
    name: str
    owners: list[Obj] = field(default_factory=list)
    finalizers: tuple[str, ...] = ()
    deleting: bool = False


def _ref_key(ref: Obj) -> str:
    return str(ref.get("uid", ""))


class GarbageCollector(base.Controller):
    name = "garbagecollector"
    workers = 4

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.registry: resources.Registry = ctx.registry
        self.nodes: dict[str, Node] = {}
        self.dependents: dict[str, set[str]] = {}
        self.informers: list[informer.Informer] = []
        self._synced = False
        for r in self.registry.resources:
            if (r.group, r.plural) in IGNORED:
                continue
            if not {"list", "watch", "delete"} <= set(r.verbs):
                continue
            # It reads metadata only: a whole-object informer another controller made
            # already serves (pods: one watch and one cache instead of two).
            inf = ctx.informers.informer_or_metadata(r)
            inf.add_handlers(
                on_add=lambda o, r=r: self._upsert(r, o),
                on_update=lambda old, new, r=r: self._upsert(r, new),
                on_delete=lambda o, r=r: self._remove(o),
            )
            self.informers.append(inf)

    async def wait_ready(self) -> None:
        await asyncio.gather(*(inf.wait_synced() for inf in self.informers))
        # Everything the listing revealed: objects whose owners may be gone,
        # owners waiting for orphaning or foreground deletion.
        for node in list(self.nodes.values()):
            if node.owners:
                self.queue.add(f"attempt:{node.uid}")
            self._enqueue_finalizer_work(node)

    # --- graph (informer tasks) --------------------------------------------------
    def _upsert(self, resource: resources.Resource, obj: Obj) -> None:
        md = obj.get("metadata") or {}
        uid = md.get("uid")
        if not uid:
            return
        node = self.nodes.get(uid)
        owners = list(md.get("ownerReferences") or [])
        if node is None:
            node = Node(uid, resource, md.get("namespace", ""), md.get("name", ""))
            self.nodes[uid] = node
        old_owner_uids = {_ref_key(r) for r in node.owners}
        new_owner_uids = {_ref_key(r) for r in owners}
        for gone in old_owner_uids - new_owner_uids:
            self.dependents.get(gone, set()).discard(uid)
            self.queue.add(f"foreground:{gone}")  # it may have been waiting for us
        for added in new_owner_uids - old_owner_uids:
            self.dependents.setdefault(added, set()).add(uid)
        node.owners = owners
        node.finalizers = tuple(md.get("finalizers") or [])
        node.deleting = bool(md.get("deletionTimestamp"))
        if self._graph_synced():
            for owner_uid in new_owner_uids:
                owner = self.nodes.get(owner_uid)
                if owner is None or owner.deleting:
                    self.queue.add(f"attempt:{uid}")
                    break
        self._enqueue_finalizer_work(node)

    def _graph_synced(self) -> bool:
        """Whether every informer has listed once (asked on every event: remembered once
        true, as an informer never becomes unsynced, rather than asked of ~50 each time)."""
        if not self._synced:
            self._synced = bool(self.informers) and all(i.has_synced() for i in self.informers)
        return self._synced

    def _enqueue_finalizer_work(self, node: Node) -> None:
        if not node.deleting:
            return
        if ORPHAN in node.finalizers:
            self.queue.add(f"orphan:{node.uid}")
        if FOREGROUND in node.finalizers:
            self.queue.add(f"foreground:{node.uid}")
            for dep in self.dependents.get(node.uid, ()):
                self.queue.add(f"attempt:{dep}")

    def _remove(self, obj: Obj) -> None:
        md = obj.get("metadata") or {}
        uid = md.get("uid")
        node = self.nodes.pop(uid, None) if uid else None
        if node is None:
            return
        for owner in node.owners:
            owner_uid = _ref_key(owner)
            self.dependents.get(owner_uid, set()).discard(node.uid)
            self.queue.add(f"foreground:{owner_uid}")  # one less dependent to wait for
        for dep in self.dependents.pop(node.uid, set()):
            self.queue.add(f"attempt:{dep}")

    # --- work (queue workers) ----------------------------------------------------
    async def sync(self, key: str) -> None:
        action, _, uid = key.partition(":")
        node = self.nodes.get(uid)
        if node is None:
            return
        if action == "attempt":
            await self._attempt_to_delete(node)
        elif action == "orphan":
            await self._orphan_dependents(node)
        elif action == "foreground":
            await self._process_foreground(node)

    async def _owner_state(self, node: Node, ref: Obj) -> str:
        """``solid`` (exists, not going), ``waiting`` (being deleted in the foreground),
        ``deleting`` (going in the background) or ``dangling`` (gone)."""
        owner = self.nodes.get(_ref_key(ref))
        if owner is None:
            # The graph may lag behind: ask the API before believing it is gone.
            resource = self.registry.by_api_version(
                str(ref.get("apiVersion", "")), str(ref.get("kind", ""))
            )
            if resource is None:
                return "solid"  # a kind we do not know: never delete on a guess
            try:
                live = await self.client.get(
                    resource,
                    str(ref.get("name", "")),
                    node.namespace if resource.namespaced else "",
                )
            except errors.StatusError as exc:
                if errors.is_not_found(exc):
                    return "dangling"
                raise
            md = live.get("metadata") or {}
            if md.get("uid") != ref.get("uid"):
                return "dangling"
            if md.get("deletionTimestamp"):
                return "waiting" if FOREGROUND in (md.get("finalizers") or []) else "deleting"
            return "solid"
        if owner.deleting:
            return "waiting" if FOREGROUND in owner.finalizers else "deleting"
        return "solid"

    async def _attempt_to_delete(self, node: Node) -> None:
        if not node.owners:
            return
        states = {_ref_key(ref): await self._owner_state(node, ref) for ref in node.owners}
        solid = [u for u, s in states.items() if s == "solid"]
        dangling = [u for u, s in states.items() if s == "dangling"]
        waiting = [u for u, s in states.items() if s == "waiting"]
        if solid:
            if dangling or waiting:
                await self._remove_owner_refs(node, set(dangling) | set(waiting))
            return
        if not dangling and not waiting:
            return  # every owner is going in the background: it will come back here
        if node.deleting:
            return
        # Deleting in the foreground when an owner waits for us, so that our own
        # dependents go first and the owner waits for the whole subtree.
        policy = "Foreground" if waiting and self.dependents.get(node.uid) else "Background"
        try:
            await self.client.delete(
                node.resource, node.name, node.namespace, propagation_policy=policy, uid=node.uid
            )
            log.info(
                "garbage collector: deleted %s %s/%s (owner gone)",
                node.resource.kind,
                node.namespace,
                node.name,
            )
        except errors.StatusError as exc:
            if not (errors.is_not_found(exc) or errors.is_conflict(exc)):
                raise

    async def _remove_owner_refs(self, node: Node, owner_uids: set[str]) -> None:
        try:
            live = await self.client.get(node.resource, node.name, node.namespace)
        except errors.StatusError as exc:
            if errors.is_not_found(exc):
                return
            raise
        md = live["metadata"]
        if md.get("uid") != node.uid:
            return
        refs = [r for r in md.get("ownerReferences") or [] if _ref_key(r) not in owner_uids]
        patch: Obj = {
            "metadata": {"ownerReferences": refs or None, "resourceVersion": md["resourceVersion"]}
        }
        await self.client.patch(node.resource, node.name, patch, node.namespace)

    async def _orphan_dependents(self, node: Node) -> None:
        if not node.deleting or ORPHAN not in node.finalizers:
            return
        for dep_uid in list(self.dependents.get(node.uid, ())):
            dep = self.nodes.get(dep_uid)
            if dep is not None:
                await self._remove_owner_refs(dep, {node.uid})
        await self._drop_finalizer(node, ORPHAN)

    async def _process_foreground(self, node: Node) -> None:
        if not node.deleting or FOREGROUND not in node.finalizers:
            return
        blocking = []
        for dep_uid in list(self.dependents.get(node.uid, ())):
            dep = self.nodes.get(dep_uid)
            if dep is None:
                continue
            ref = next((r for r in dep.owners if _ref_key(r) == node.uid), {})
            if ref.get("blockOwnerDeletion"):
                blocking.append(dep)
            if not dep.deleting:
                self.queue.add(f"attempt:{dep.uid}")
        if not blocking:
            await self._drop_finalizer(node, FOREGROUND)

    async def _drop_finalizer(self, node: Node, finalizer: str) -> None:
        try:
            live = await self.client.get(node.resource, node.name, node.namespace)
        except errors.StatusError as exc:
            if errors.is_not_found(exc):
                return
            raise
        md = live["metadata"]
        if md.get("uid") != node.uid or finalizer not in (md.get("finalizers") or []):
            return
        remaining = [f for f in md["finalizers"] if f != finalizer]
        patch: Obj = {
            "metadata": {"finalizers": remaining or None, "resourceVersion": md["resourceVersion"]}
        }
        await self.client.patch(node.resource, node.name, patch, node.namespace)
