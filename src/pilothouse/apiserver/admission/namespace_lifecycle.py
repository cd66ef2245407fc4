"""NamespaceLifecycle (upstream admission plugin of the same name).

Objects are created only in namespaces that exist and are not being deleted
(404 / 403 as upstream), and the system namespaces cannot be deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilothouse.api import errors
from pilothouse.api.meta import Obj

if TYPE_CHECKING:
    from pilothouse.apiserver.registry.store import ResourceStore

IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
NAMESPACES_PREFIX = "/registry/namespaces/"


async def namespace_lifecycle(store: ResourceStore, op: str, obj: Obj) -> None:
    r = store.resource
    if op == "delete":
        if r.group == "" and r.plural == "namespaces":
            name = obj["metadata"].get("name", "")
            if name in IMMORTAL_NAMESPACES:
                raise errors.forbidden("namespaces", "", name, "this namespace may not be deleted")
        return
    if op != "create" or not r.namespaced:
        return
    ns_name = obj["metadata"].get("namespace", "")
    await store.watch_cache.consistent()
    ns_cache = store.watch_cache.caches.get(NAMESPACES_PREFIX)
    if ns_cache is None:
        return
    entry = ns_cache.objects.get(NAMESPACES_PREFIX + ns_name)
    if entry is None:
        raise errors.not_found("namespaces", "", ns_name)
    ns = entry.obj
    if (ns.get("status") or {}).get("phase") == "Terminating" or ns["metadata"].get(
        "deletionTimestamp"
    ):
        err = errors.forbidden(
            r.plural,
            r.group,
            obj["metadata"].get("name", ""),
            f"unable to create new content in namespace {ns_name} because it is being terminated",
        )
        assert err.details is not None
        err.details["causes"] = [
            {
                "reason": errors.NAMESPACE_TERMINATING,
                "message": f"namespace {ns_name} is being terminated",
                "field": "metadata.namespace",
            }
        ]
        raise err
