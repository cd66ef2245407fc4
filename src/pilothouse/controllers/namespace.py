"""The namespace controller: empties terminating namespaces, then finalizes them.

A namespace being deleted keeps the ``kubernetes`` finalizer in
``spec.finalizers`` until this controller has deleted everything in it — every
namespaced resource, through ``deletecollection`` — and seen every list come
back empty (pods may take their grace period; objects with finalizers wait for
whoever owns them). Meanwhile the namespace's conditions say what is left, as
upstream's do (``kubectl describe namespace``). Then ``/finalize`` removes the
finalizer and the namespace goes.

Beside the built-in table, each pass asks discovery for the namespaced resources
of other groups (CustomResourceDefinitions'), as upstream's controller does, so a
namespace's custom resources go with it.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from pilothouse.api import errors, meta, resources
from pilothouse.client import rest
from pilothouse.controllers import base

log = logging.getLogger(__name__)

Obj = dict[str, Any]
FINALIZER = "kubernetes"
RECHECK_S = 2.0
# events.k8s.io Events are core Events seen through another version.
SKIP = {("events.k8s.io", "events")}


class NamespaceController(base.Controller):
    name = "namespace"
    workers = 2

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.namespaces = ctx.resource("", "v1", "namespaces")
        self.informer = ctx.informers.informer(self.namespaces)
        self.informer.add_handlers(
            on_add=self._maybe_enqueue, on_update=lambda _o, n: self._maybe_enqueue(n)
        )
        self.content = [
            r
            for r in ctx.registry.resources
            if r.namespaced
            and "deletecollection" in r.verbs
            and "list" in r.verbs
            and (r.group, r.plural) not in SKIP
        ]

    async def wait_ready(self) -> None:
        await self.informer.wait_synced()

    def _maybe_enqueue(self, ns: Obj) -> None:
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            self.enqueue(ns)

    async def sync(self, key: str) -> None:
        ns = self.informer.indexer.get(key)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return
        name = ns["metadata"]["name"]
        remaining: Counter[str] = Counter()
        finalizers: Counter[str] = Counter()
        for r in [*self.content, *await self._custom_resources()]:
            await self._delete_all(r, name)
            left = await self.client.list(r, name, metadata_only=True)
            for item in left.get("items") or []:
                remaining[r.qualified] += 1
                for f in (item.get("metadata") or {}).get("finalizers") or []:
                    finalizers[f] += 1
        if remaining:
            await self._report(ns, remaining, finalizers)
            self.queue.add_after(key, RECHECK_S)
            return
        await self._finalize(ns)
        log.info("namespace %s: emptied and finalized", name)

    async def _custom_resources(self) -> list[resources.Resource]:
        """Namespaced resources of the groups the built-in table does not have, in each
        group's preferred version (what discovery offers besides the built-ins)."""
        known = {r.group for r in self.content} | {r.group for r in resources.RESOURCES}
        out: list[resources.Resource] = []
        groups = await self.client.request("GET", "/apis")
        for group in groups.get("groups") or []:
            name = group.get("name") or ""
            preferred = (group.get("preferredVersion") or {}).get("version") or ""
            if name in known or not preferred:
                continue
            listing = await self.client.request("GET", f"/apis/{name}/{preferred}")
            for entry in listing.get("resources") or []:
                verbs = entry.get("verbs") or []
                if (
                    "/" in entry.get("name", "")
                    or not entry.get("namespaced")
                    or "deletecollection" not in verbs
                    or "list" not in verbs
                ):
                    continue
                out.append(
                    resources.Resource(
                        group=name,
                        version=preferred,
                        kind=str(entry.get("kind") or ""),
                        plural=str(entry["name"]),
                        namespaced=True,
                        verbs=tuple(verbs),
                    )
                )
        return out

    async def _delete_all(self, r: resources.Resource, namespace: str) -> None:
        try:
            await self.client.request(
                "DELETE",
                rest.resource_path(r, namespace),
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": "Background",
                },
            )
        except errors.StatusError as exc:
            if not (errors.is_not_found(exc) or errors.is_method_not_allowed(exc)):
                raise

    async def _report(self, ns: Obj, remaining: Counter[str], finalizers: Counter[str]) -> None:
        now = meta.now()
        content = ", ".join(f"{r} has {n} resource instances" for r, n in sorted(remaining.items()))
        conditions = [
            _condition(
                "NamespaceDeletionDiscoveryFailure",
                "False",
                "ResourcesDiscovered",
                "All resources successfully discovered",
                now,
            ),
            _condition(
                "NamespaceDeletionGroupVersionParsingFailure",
                "False",
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed",
                now,
            ),
            _condition(
                "NamespaceDeletionContentFailure",
                "False",
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization",
                now,
            ),
            _condition(
                "NamespaceContentRemaining",
                "True",
                "SomeResourcesRemain",
                f"Some resources are remaining: {content}",
                now,
            ),
        ]
        if finalizers:
            text = ", ".join(
                f"{f} in {n} resource instances" for f, n in sorted(finalizers.items())
            )
            conditions.append(
                _condition(
                    "NamespaceFinalizersRemaining",
                    "True",
                    "SomeFinalizersRemain",
                    f"Some content in the namespace has finalizers remaining: {text}",
                    now,
                )
            )
        else:
            conditions.append(
                _condition(
                    "NamespaceFinalizersRemaining",
                    "False",
                    "ContentHasNoFinalizers",
                    "All content-preserving finalizers finished",
                    now,
                )
            )
        old = (ns.get("status") or {}).get("conditions") or []
        if [(c["type"], c["status"], c["message"]) for c in old] == [
            (c["type"], c["status"], c["message"]) for c in conditions
        ]:
            return
        updated = meta.deep_copy(ns)
        updated.setdefault("status", {})["conditions"] = conditions
        try:
            await self.client.update_status(self.namespaces, updated)
        except errors.StatusError as exc:
            if not (errors.is_not_found(exc) or errors.is_conflict(exc)):
                raise

    async def _finalize(self, ns: Obj) -> None:
        body = meta.deep_copy(ns)
        body["metadata"].pop("resourceVersion", None)  # finalize whatever is current
        spec = body.setdefault("spec", {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]
        try:
            await self.client.request(
                "PUT",
                rest.resource_path(self.namespaces, "", ns["metadata"]["name"], "finalize"),
                body=body,
            )
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise


def _condition(type_: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
    }
