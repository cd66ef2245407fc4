"""MutatingAdmissionWebhook and ValidatingAdmissionWebhook, as the admission chain runs them.

:class:`Webhooks` holds what both share (the configuration sources, the dispatcher
and its connection pool); :meth:`Webhooks.mutate` and :meth:`Webhooks.validate`
admit one :class:`~pilothouse.apiserver.admission.webhook.matching.Request`. The
functions at the end turn the chain's view of a request into that one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pilothouse.api import errors, resources
from pilothouse.api.meta import Obj
from pilothouse.apiserver import watchcache
from pilothouse.apiserver.admission.webhook import dispatch, hooks, matching
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.authz import attributes
from pilothouse.apiserver.webhook import client, resolver

if TYPE_CHECKING:
    from pilothouse.apiserver.registry.store import ResourceStore

MUTATING = "MutatingAdmissionWebhook"
VALIDATING = "ValidatingAdmissionWebhook"
_NAMESPACES = "/registry/namespaces/"


class Webhooks:
    """The webhooks of this server: sources, dispatcher, connections."""

    def __init__(
        self,
        *,
        cache: watchcache.WatchCache,
        registry: resources.Registry,
        conditions: hooks.ConditionCompiler | None = None,
    ) -> None:
        self.cache = cache
        self.mutating = hooks.Source(cache, mutating=True, conditions=conditions)
        self.validating = hooks.Source(cache, mutating=False, conditions=conditions)
        self.clients = client.ClientManager(resolver.ServiceResolver(cache))
        self.dispatcher = dispatch.Dispatcher(
            clients=self.clients, registry=registry, namespace_labels=self._namespace_labels
        )

    def _namespace_labels(self, name: str) -> dict[str, str] | None:
        resource = self.cache.caches.get(_NAMESPACES)
        entry = resource.objects.get(_NAMESPACES + name) if resource is not None else None
        if entry is None:
            return None
        labels = (entry.obj.get("metadata") or {}).get("labels")
        return labels if isinstance(labels, dict) else {}

    def wants_mutating(self) -> bool:
        return bool(self.mutating.hooks())

    def wants_validating(self) -> bool:
        return bool(self.validating.hooks())

    async def mutate(
        self, request: matching.Request, reinvocation: dispatch.Reinvocation | None = None
    ) -> None:
        if request.is_exempt():
            return
        found = self.mutating.hooks()
        if not found:
            return
        state = reinvocation if reinvocation is not None else dispatch.Reinvocation()
        await self.dispatcher.mutate(request, found, state)
        if reinvocation is None and state.should_reinvoke and state.to_reinvoke:
            # No chain-wide reinvocation to defer to: run the IfNeeded webhooks again
            # here, as upstream's second round does.
            await self.dispatcher.mutate(request, found, state, round_=1)

    async def validate(self, request: matching.Request) -> None:
        if request.is_exempt():
            return
        found = self.validating.hooks()
        if found:
            await self.dispatcher.validate(request, found)

    async def close(self) -> None:
        await self.clients.close()

    # --- as registry hooks ``(store, "create"|"update"|"delete", obj)`` ---------------
    async def _request(self, store: ResourceStore, operation: str, obj: Obj) -> matching.Request:
        md = obj.get("metadata") or {}
        namespace, name = str(md.get("namespace") or ""), str(md.get("name") or "")
        op = operation.upper()
        old: Obj | None = None
        if op == "UPDATE":
            entry = await store.current(namespace, name)
            old = entry.obj if entry is not None else None
        asked = attributes.current()
        subresource = ""
        if asked is not None and asked.resource == store.resource.plural:
            subresource = asked.subresource
        return request_for(
            operation=op,
            resource=store.resource,
            subresource=subresource,
            namespace=namespace,
            name=name,
            obj=None if op == "DELETE" else obj,
            old=obj if op == "DELETE" else old,
            dry_run=False,
        )

    async def mutating_hook(self, store: ResourceStore, operation: str, obj: Obj) -> None:
        """MutatingAdmissionWebhook where the registry runs admission after validation:
        a changed object is validated again before it is stored."""
        if not self.wants_mutating():
            return
        request = await self._request(store, operation, obj)
        if request.obj is None:
            await self.mutate(request)
            return
        before = request.obj
        await self.mutate(request)
        if request.obj is not before and request.obj != before:
            assert request.obj is not None
            replace_in_place(obj, request.obj)
            if request.old is None:
                problems = store.strategy.validate(obj)
            else:
                problems = store.strategy.validate_update(obj, request.old)
            if problems:
                raise errors.invalid(
                    store.resource.kind, store.resource.group, request.name, problems
                )

    async def validating_hook(self, store: ResourceStore, operation: str, obj: Obj) -> None:
        if not self.wants_validating():
            return
        await self.validate(await self._request(store, operation, obj))


def current_user() -> dict[str, Any]:
    """The request's user as ``authentication.k8s.io/v1`` ``UserInfo``."""
    user = user_module.current()
    if user is None:
        return {"username": ""}
    info = user.to_api()
    info.setdefault("groups", [])
    return info


def request_for(
    *,
    operation: str,
    resource: resources.Resource,
    subresource: str,
    namespace: str,
    name: str,
    obj: Obj | None,
    old: Obj | None,
    dry_run: bool,
    warn: Callable[[str], None] | None = None,
    annotate: Callable[[str, str], None] | None = None,
) -> matching.Request:
    request = matching.Request(
        operation=operation,
        resource=resource,
        subresource=subresource,
        namespace=namespace if resource.namespaced else "",
        name=name,
        obj=obj,
        old=old,
        dry_run=dry_run,
        user=current_user(),
        options=dispatch.options_for(operation, dry_run=dry_run),
    )
    if warn is not None:
        request.warn = warn
    if annotate is not None:
        request.annotate = annotate
    return request


def replace_in_place(target: Obj, new: Obj) -> None:
    """Make ``target`` equal ``new``: the chain holds the object by reference."""
    if target is new:
        return
    target.clear()
    target.update(new)
