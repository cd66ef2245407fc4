"""NamespaceLifecycle (upstream admission plugin of the same name).

Objects are written only in namespaces that exist (404 otherwise), nothing new is
created in a namespace being deleted (403 with a ``NamespaceTerminating`` cause),
and the system namespaces cannot be deleted. Access reviews and deletions pass.
"""

from __future__ import annotations

from pilothouse.api import errors, resources
from pilothouse.apiserver.admission import lookup
from pilothouse.apiserver.admission.chain import Deps
from pilothouse.apiserver.admission.interface import CREATE, DELETE, Attributes, Plugin

IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
_ACCESS_REVIEWS = frozenset({"localsubjectaccessreviews"})


class NamespaceLifecycle(Plugin):
    name = "NamespaceLifecycle"
    operations = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})

    def __init__(self, deps: Deps) -> None:
        self.cache = deps.cache

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        if resource.group == "" and resource.plural == "namespaces":
            return operation == DELETE
        return (
            resource.namespaced and operation != DELETE and resource.plural not in _ACCESS_REVIEWS
        )

    async def admit(self, a: Attributes) -> None:
        if a.plural == "namespaces":
            if a.name in IMMORTAL_NAMESPACES:
                raise errors.forbidden(
                    "namespaces", "", a.name, "this namespace may not be deleted"
                )
            return
        if not a.namespace:
            return
        ns = lookup.namespace(self.cache, a.namespace)
        if ns is None:
            # The cache may be behind a namespace created a moment ago elsewhere.
            await self.cache.consistent()
            ns = lookup.namespace(self.cache, a.namespace)
        if ns is None:
            raise errors.not_found("namespaces", "", a.namespace)
        if a.operation != CREATE:
            return
        if (ns.get("status") or {}).get("phase") == "Terminating" or (ns.get("metadata") or {}).get(
            "deletionTimestamp"
        ):
            err = a.forbidden(
                f"unable to create new content in namespace {a.namespace} because it is being "
                "terminated"
            )
            assert err.details is not None
            err.details["causes"] = [
                {
                    "reason": errors.NAMESPACE_TERMINATING,
                    "message": f"namespace {a.namespace} is being terminated",
                    "field": "metadata.namespace",
                }
            ]
            raise err


class NamespaceExists(Plugin):
    """Refuses requests in namespaces that do not exist (off by default; NamespaceLifecycle
    does this and more)."""

    name = "NamespaceExists"
    operations = frozenset({"CREATE", "UPDATE", "DELETE"})

    def __init__(self, deps: Deps) -> None:
        self.cache = deps.cache

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        return resource.namespaced and operation in self.operations

    async def validate(self, a: Attributes) -> None:
        if not a.namespace or lookup.namespace(self.cache, a.namespace) is not None:
            return
        await self.cache.consistent()
        if lookup.namespace(self.cache, a.namespace) is None:
            raise errors.not_found("namespaces", "", a.namespace)


class NamespaceAutoProvision(Plugin):
    """Creates the namespace a new object names when it does not exist (off by default)."""

    name = "NamespaceAutoProvision"
    operations = frozenset({CREATE})

    def __init__(self, deps: Deps) -> None:
        self.cache = deps.cache
        self.store_for = deps.store_for

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        return resource.namespaced and operation == CREATE

    async def admit(self, a: Attributes) -> None:
        if a.dry_run or not a.namespace or lookup.namespace(self.cache, a.namespace) is not None:
            return
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": a.namespace}}
        try:
            await self.store_for("", "namespaces").create("", namespace)
        except errors.StatusError as exc:
            if not errors.is_already_exists(exc):
                raise a.forbidden(exc.message) from None
