"""The ValidatingAdmissionPolicy admission plugin, as the admission chain runs it.

It sits at upstream's place in the chain (after MutatingAdmissionWebhook, before
ValidatingAdmissionWebhook) and validates every write, delete and connect that is
not itself on a webhook configuration, policy or binding (upstream's exemption, so
a broken policy cannot stop its own repair). Policies and bindings come from the
watch cache, compiled once per change (:mod:`.policies`); with none bound a
request pays one comparison. Requests are validated concurrently: the compiled
policies are immutable, and warnings and audit annotations go to the request's own
context (:mod:`pilothouse.apiserver.requestcontext`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilothouse.api import resources
from pilothouse.api.meta import Obj
from pilothouse.apiserver import requestcontext, watchcache
from pilothouse.apiserver.admission.interface import (
    CONNECT,
    CREATE,
    DELETE,
    UPDATE,
    Attributes,
    Plugin,
)
from pilothouse.apiserver.admission.policy import evaluate, policies
from pilothouse.apiserver.admission.webhook import matching
from pilothouse.apiserver.admission.webhook import plugins as webhook_plugins

if TYPE_CHECKING:
    from pilothouse.apiserver.authz.authorizer import Authorizer

NAME = "ValidatingAdmissionPolicy"
_NAMESPACES = "/registry/namespaces/"
_ADMISSION_GROUP = "admissionregistration.k8s.io"


class ValidatingAdmissionPolicy(Plugin):
    """The plugin: the policy source and the evaluator (no per-request state)."""

    name = NAME
    operations = frozenset({CREATE, UPDATE, DELETE, CONNECT})

    def __init__(
        self,
        *,
        cache: watchcache.WatchCache,
        registry: resources.Registry,
        authorizer: Authorizer | None = None,
    ) -> None:
        self.cache = cache
        self.source = policies.Source(cache)
        self.evaluator = evaluate.Evaluator(
            cache=cache, registry=registry, namespace=self._namespace, authorizer=authorizer
        )

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        exempt = resource.group == _ADMISSION_GROUP and resource.kind in matching.EXEMPT_KINDS
        return operation in self.operations and not exempt

    def _namespace(self, name: str) -> Obj | None:
        resource = self.cache.caches.get(_NAMESPACES)
        entry = resource.objects.get(_NAMESPACES + name) if resource is not None else None
        return entry.obj if entry is not None else None

    def wants(self) -> bool:
        return bool(self.source.policies())

    async def validate(self, a: Attributes) -> None:
        found = self.source.policies()
        if not found:
            return
        request = request_for(a)
        if request.is_exempt():
            return
        self.evaluator.validate(request, found)


def request_for(a: Attributes) -> matching.Request:
    """The chain's attributes as policies see them (the webhooks' request shape), with
    warnings and audit annotations going to the current request."""
    return webhook_plugins.request_for(
        operation=a.operation,
        resource=a.resource,
        subresource=a.subresource,
        namespace=a.namespace,
        name=a.object_name() if a.operation != CREATE or a.name else a.name,
        obj=None if a.operation == DELETE else a.obj,
        old=a.old,
        dry_run=a.dry_run,
        warn=requestcontext.add_warning,
        annotate=requestcontext.add_annotation,
    )
