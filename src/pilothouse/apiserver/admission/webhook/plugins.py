"""MutatingAdmissionWebhook and ValidatingAdmissionWebhook, as the admission chain runs them.

:class:`Webhooks` holds what both share (the configuration sources, the dispatcher
and its connection pool); :meth:`Webhooks.mutate` and :meth:`Webhooks.validate`
admit one :class:`~pilothouse.apiserver.admission.webhook.matching.Request`.
:class:`MutatingWebhookPlugin` and :class:`ValidatingWebhookPlugin` are the two in
the admission chain, at upstream's places (after the built-in plugins, before
ResourceQuota): mutating ones change the object before the registry validates it,
validating ones see it after. The functions at the end turn the chain's view of a
request into the webhooks' one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pilothouse.api import resources
from pilothouse.api.meta import Obj
from pilothouse.apiserver import requestcontext, watchcache
from pilothouse.apiserver.admission import celauthorizer
from pilothouse.apiserver.admission.interface import (
    CONNECT,
    CREATE,
    DELETE,
    UPDATE,
    Attributes,
    Plugin,
)
from pilothouse.apiserver.admission.webhook import dispatch, hooks, matching
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.webhook import client, resolver

if TYPE_CHECKING:
    from pilothouse.apiserver.authz.authorizer import Authorizer

MUTATING = "MutatingAdmissionWebhook"
VALIDATING = "ValidatingAdmissionWebhook"
_NAMESPACES = "/registry/namespaces/"


def compile_conditions(
    conditions: list[dict[str, Any]], *, authorizer: Authorizer | None = None
) -> hooks.CompiledConditions:
    """Webhook match conditions in admission's CEL environment (no params); their
    ``authorizer`` asks ``authorizer`` (None: authorization is off, all allowed)."""
    from pilothouse.api import admission_cel, cel  # the CEL engine: only when needed
    from pilothouse.api.cel.library import authz

    env = admission_cel.environment(params=False)
    programs: list[tuple[str, hooks.ConditionProgram]] = []
    for condition in conditions:
        name = str(condition.get("name") or "")
        compiled = admission_cel.compile_expression(
            str(condition.get("expression") or ""), admission_cel.CONDITION, env
        )
        if compiled.program is None:
            return hooks.CompiledConditions((), f"compilation error: {compiled.error}")
        program = compiled.program

        def run(inputs: dict[str, Any], program: cel.Program = program) -> bool:
            activation: dict[str, Any] | cel.Activation = inputs
            if "authorizer" in program.variables:
                activation = cel.Activation(inputs)
                activation.add_function("check", authz.checker(celauthorizer.decider(authorizer)))
            try:
                return program.evaluate(activation) is True
            except cel.EvaluationError as exc:
                # Upstream's CEL filter words evaluation errors this way.
                raise ValueError(
                    f"expression '{program.expression}' resulted in error: {exc.message}"
                ) from None

        programs.append((name, run))
    return hooks.CompiledConditions(tuple(programs))


class Webhooks:
    """The webhooks of this server: sources, dispatcher, connections."""

    def __init__(
        self,
        *,
        cache: watchcache.WatchCache,
        registry: resources.Registry,
        conditions: hooks.ConditionCompiler | None = None,
        authorizer: Authorizer | None = None,
    ) -> None:
        if conditions is None:
            conditions = functools.partial(compile_conditions, authorizer=authorizer)
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


class _WebhookPlugin(Plugin):
    """What both chain plugins share: the webhooks and the request they are sent."""

    operations = frozenset({CREATE, UPDATE, DELETE, CONNECT})

    def __init__(self, webhooks: Webhooks) -> None:
        self.webhooks = webhooks

    def _request(self, a: Attributes) -> matching.Request:
        deleting = a.operation == DELETE
        return request_for(
            operation=a.operation,
            resource=a.resource,
            subresource=a.subresource,
            namespace=a.namespace,
            name=a.object_name() if a.operation != CREATE or a.name else a.name,
            obj=None if deleting else a.obj,
            old=a.old,
            dry_run=a.dry_run,
            warn=requestcontext.add_warning,
            annotate=requestcontext.add_annotation,
        )

    async def stop(self) -> None:
        await self.webhooks.close()


class MutatingWebhookPlugin(_WebhookPlugin):
    """MutatingAdmissionWebhook: the mutating webhooks, whose patches change the object
    the registry then validates and stores."""

    name = MUTATING

    async def admit(self, a: Attributes) -> None:
        if not self.webhooks.wants_mutating():
            return
        request = self._request(a)
        before = request.obj
        await self.webhooks.mutate(request)
        if a.obj is not None and request.obj is not None and request.obj is not before:
            replace_in_place(a.obj, request.obj)


class ValidatingWebhookPlugin(_WebhookPlugin):
    """ValidatingAdmissionWebhook: the validating webhooks, called concurrently."""

    name = VALIDATING

    async def validate(self, a: Attributes) -> None:
        if self.webhooks.wants_validating():
            await self.webhooks.validate(self._request(a))


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
