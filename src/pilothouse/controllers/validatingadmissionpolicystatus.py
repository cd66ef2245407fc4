"""The ValidatingAdmissionPolicy status controller (upstream's
``validatingadmissionpolicystatus``, a kube-controller-manager controller).

Every policy whose ``metadata.generation`` is ahead of ``status.observedGeneration``
is type-checked against the schemas of the kinds it matches
(:mod:`pilothouse.api.admission_typecheck`) and its status written:
``observedGeneration`` and ``typeChecking.expressionWarnings``. One policy per key at
a time; policies in parallel. Type checking is CPU work of a few milliseconds per
kind, done in the controller so admission never pays for it.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import admission_typecheck, errors
from pilothouse.client import informer, rest
from pilothouse.controllers import base

Obj = dict[str, Any]


def needs_check(policy: Obj) -> bool:
    generation = int((policy.get("metadata") or {}).get("generation") or 0)
    observed = int((policy.get("status") or {}).get("observedGeneration") or 0)
    return generation > observed


class ValidatingAdmissionPolicyStatusController(base.Controller):
    name = "validatingadmissionpolicy-status"
    workers = 2

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.registry = ctx.registry
        self.resource = ctx.resource(
            "admissionregistration.k8s.io", "v1", "validatingadmissionpolicies"
        )
        self.policies: informer.Informer = ctx.informers.informer(self.resource)
        self.policies.add_handlers(
            on_add=self._changed, on_update=lambda _o, new: self._changed(new)
        )

    async def wait_ready(self) -> None:
        await self.policies.wait_synced()

    def _changed(self, policy: Obj) -> None:
        if needs_check(policy):
            self.enqueue(policy)

    async def sync(self, key: str) -> None:
        policy = self.policies.indexer.get(key)
        if policy is None or not needs_check(policy):
            return
        warnings = admission_typecheck.check(policy, self.registry)
        updated = {
            **policy,
            "status": {
                **(policy.get("status") or {}),
                "observedGeneration": policy["metadata"]["generation"],
                "typeChecking": {"expressionWarnings": warnings} if warnings else {},
            },
        }
        try:
            await self.client.update_status(self.resource, updated)
        except errors.StatusError as exc:
            if errors.is_not_found(exc):
                return
            raise  # a conflict: the informer brings the new version and it is checked again
