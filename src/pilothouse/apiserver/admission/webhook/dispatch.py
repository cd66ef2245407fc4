"""Calling the webhooks that apply to a request (upstream's mutating and validating
dispatchers).

Mutating webhooks run one after another, each seeing the object as the previous
one left it: a JSON patch is applied to the object in the webhook's version, the
result is pruned and defaulted as upstream's decoder leaves it, and it replaces
the request's object. A webhook with ``reinvocationPolicy: IfNeeded`` that ran
before another webhook changed the object runs once more, after the others
(:class:`Reinvocation`).

Validating webhooks are all called at once (``asyncio.gather``); the request fails
with the first refusal in webhook order. Both kinds refuse a dry run a webhook
with side effects cannot take, add the webhooks' warnings to the response and
their audit annotations to the request's audit event. A webhook that cannot be
called (unreachable, timed out, a garbage answer) fails the request with a 500 —
unless its ``failurePolicy`` is ``Ignore``: then it is logged, annotated
``failed-open…`` and skipped, so a broken webhook never blocks the cluster.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from pilothouse.api import defaults, errors, resources, schema
from pilothouse.api.meta import Obj
from pilothouse.api.patch import errors as patch_errors
from pilothouse.api.patch import jsonpatch
from pilothouse.apiserver.admission import celauthorizer
from pilothouse.apiserver.admission.webhook import hooks as hooks_module
from pilothouse.apiserver.admission.webhook import matching, review
from pilothouse.apiserver.webhook import client

log = logging.getLogger(__name__)

MUTATION_ANNOTATION = "mutation.webhook.admission.k8s.io/"
PATCH_ANNOTATION = "patch.webhook.admission.k8s.io/"
MUTATION_FAILED_OPEN = "failed-open." + MUTATION_ANNOTATION
VALIDATION_FAILED_OPEN = "failed-open.validating.webhook.admission.k8s.io/"


class _Failed(Exception):
    """A call failure (``ErrCallingWebhook``): subject to the failure policy."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Reinvocation:
    """Upstream's ``webhookReinvokeContext``: which IfNeeded webhooks must run again."""

    previously_invoked: set[str] = field(default_factory=set)
    to_reinvoke: set[str] = field(default_factory=set)
    should_reinvoke: bool = False

    def changed(self) -> None:
        self.to_reinvoke |= self.previously_invoked
        self.previously_invoked = set()
        self.should_reinvoke = True


class Dispatcher:
    """Calls webhooks for requests; shared by all requests (it keeps no request state)."""

    def __init__(
        self,
        *,
        clients: client.ClientManager,
        registry: resources.Registry,
        namespace_labels: matching.NamespaceLabels,
    ) -> None:
        self.clients = clients
        self.registry = registry
        self.namespace_labels = namespace_labels

    def invocations(
        self, request: matching.Request, hooks: Sequence[hooks_module.Hook]
    ) -> list[matching.Invocation]:
        out = []
        for hook in hooks:
            invocation = matching.should_call(
                hook, request, registry=self.registry, namespace_labels=self.namespace_labels
            )
            if invocation is not None and self._conditions_match(invocation, request):
                out.append(invocation)
        return out

    def _conditions_match(self, invocation: matching.Invocation, request: matching.Request) -> bool:
        hook = invocation.hook
        if not hook.match_conditions:
            return True
        compiled = hook.conditions
        if compiled.error:
            raise errors.forbidden(
                request.resource.plural, request.resource.group, request.name, compiled.error
            )
        activation = {
            "object": request.versioned(request.obj, invocation.resource),
            "oldObject": request.versioned(request.old, invocation.resource),
            "request": review.request_fields(request, invocation),
            "namespaceObject": None,
            "authorizer": celauthorizer.variable(request),
        }
        problems = []
        for _, program in compiled.programs:
            try:
                if not program(activation):
                    return False
            except ValueError as exc:  # the user's expression failed to evaluate
                problems.append(str(exc))
        if problems:
            if hook.ignores_failures:
                return False
            raise errors.forbidden(
                request.resource.plural,
                request.resource.group,
                request.name,
                problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]",
            )
        return True

    # --- one call -----------------------------------------------------------------
    async def _call(
        self,
        invocation: matching.Invocation,
        request: matching.Request,
        *,
        mutating: bool,
    ) -> tuple[review.Answer, Obj | None]:
        """Call one webhook; returns its answer and the object it was sent."""
        hook = invocation.hook
        if request.dry_run and hook.side_effects not in ("None", "NoneOnDryRun"):
            raise review.dry_run_unsupported(hook.name)
        api_version = review.review_version(hook.review_versions)
        if api_version is None:
            raise _Failed(
                "could not create admission objects: webhook does not accept known "
                "AdmissionReview versions (v1, v1beta1)"
            )
        obj = request.versioned(request.obj, invocation.resource)
        old = request.versioned(request.old, invocation.resource)
        uid, body = review.build(request, invocation, api_version=api_version, obj=obj, old=old)
        try:
            response = await self.clients.post(hook.client_config, body, timeout=hook.timeout)
            answer = review.verify(uid, api_version, review.decode(response), mutating=mutating)
        except client.CallError as exc:
            raise _Failed(exc.reason) from None
        except review.InvalidResponse as exc:
            raise _Failed(f"received invalid webhook response: {exc}") from None
        for key, value in answer.audit_annotations.items():
            request.annotate(f"{hook.name}/{key}", value)
        for warning in answer.warnings:
            request.warn(warning)
        if not answer.allowed:
            raise review.denied(hook.name, answer.result)
        return answer, obj

    def _fail_open(self, hook: hooks_module.Hook, reason: str) -> None:
        log.warning("Failed calling webhook, failing open %s: %s", hook.name, reason)

    # --- mutating -------------------------------------------------------------------
    async def mutate(
        self,
        request: matching.Request,
        hooks: Sequence[hooks_module.Hook],
        reinvocation: Reinvocation,
        *,
        round_: int = 0,
    ) -> None:
        """Run the mutating webhooks in order; ``request.obj`` ends as they left it."""
        for index, invocation in enumerate(self.invocations(request, hooks)):
            hook = invocation.hook
            if round_ > 0 and hook.uid not in reinvocation.to_reinvoke:
                continue
            try:
                changed = await self._mutate_one(invocation, request, round_, index)
            except _Failed as failure:
                if hook.reinvocation_policy == "IfNeeded":
                    reinvocation.previously_invoked.add(hook.uid)
                if hook.ignores_failures:
                    self._fail_open(hook, failure.reason)
                    request.annotate(
                        f"{MUTATION_FAILED_OPEN}round_{round_}_index_{index}", hook.name
                    )
                    continue
                log.warning(
                    "Failed calling webhook, failing closed %s: %s", hook.name, failure.reason
                )
                raise review.call_failed(hook.name, failure.reason) from None
            if changed:
                reinvocation.changed()
            if hook.reinvocation_policy == "IfNeeded":
                reinvocation.previously_invoked.add(hook.uid)

    async def _mutate_one(
        self, invocation: matching.Invocation, request: matching.Request, round_: int, index: int
    ) -> bool:
        hook = invocation.hook
        changed = False
        try:
            answer, sent = await self._call(invocation, request, mutating=True)
            if not answer.patch:
                return False
            try:
                operations = orjson.loads(answer.patch)
            except orjson.JSONDecodeError as exc:
                raise errors.internal(str(exc)) from None
            if not operations:
                return False
            if sent is None:
                raise errors.internal(
                    f'admission webhook "{hook.name}" attempted to modify the object, which is '
                    "not supported for this operation"
                )
            if answer.patch_type != "JSONPatch":
                raise _Failed(f'unsupported patch type "{answer.patch_type}"')
            try:
                patched = jsonpatch.apply_json_patch(sent, operations)
            except patch_errors.PatchError as exc:
                raise errors.internal(exc.message) from None
            patched = self._decode(patched, invocation)
            changed = patched != sent
            request.annotate(
                f"{PATCH_ANNOTATION}round_{round_}_index_{index}",
                orjson.dumps(
                    {
                        "configuration": hook.configuration,
                        "webhook": hook.name,
                        "patch": operations,
                        "patchType": "JSONPatch",
                    }
                ).decode(),
            )
            request.obj = request.unversioned(patched, invocation.resource)
            return changed
        finally:
            request.annotate(
                f"{MUTATION_ANNOTATION}round_{round_}_index_{index}",
                orjson.dumps(
                    {"configuration": hook.configuration, "webhook": hook.name, "mutated": changed}
                ).decode(),
            )

    def _decode(self, patched: Obj, invocation: matching.Invocation) -> Obj:
        """The patched object as upstream's decoder and defaulter leave it."""
        group, version, kind = invocation.kind
        problems = schema.field_problems(group, version, kind, patched, prune=True)
        if problems.type_errors:
            raise errors.internal(problems.type_errors[0])
        defaults.apply_defaults(group, version, kind, patched)
        return patched

    # --- validating -----------------------------------------------------------------
    async def validate(self, request: matching.Request, hooks: Sequence[hooks_module.Hook]) -> None:
        """Call every validating webhook that applies, concurrently."""
        invocations = self.invocations(request, hooks)
        if not invocations:
            return
        outcomes = await asyncio.gather(
            *(self._validate_one(i, request, index) for index, i in enumerate(invocations)),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _validate_one(
        self, invocation: matching.Invocation, request: matching.Request, index: int
    ) -> None:
        hook = invocation.hook
        try:
            await self._call(invocation, request, mutating=False)
        except _Failed as failure:
            if hook.ignores_failures:
                self._fail_open(hook, failure.reason)
                request.annotate(f"{VALIDATION_FAILED_OPEN}round_0_index_{index}", hook.name)
                return
            log.warning("Failed calling webhook, failing closed %s: %s", hook.name, failure.reason)
            raise review.call_failed(hook.name, failure.reason) from None


def options_for(operation: str, *, dry_run: bool, field_manager: str = "") -> Obj | None:
    """The options object a review carries (``CreateOptions``, ``UpdateOptions``, …)."""
    kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}.get(
        operation
    )
    if kind is None:
        return None
    options: dict[str, Any] = {"kind": kind, "apiVersion": "meta.k8s.io/v1"}
    if dry_run:
        options["dryRun"] = ["All"]
    if field_manager and operation != "DELETE":
        options["fieldManager"] = field_manager
    return options
