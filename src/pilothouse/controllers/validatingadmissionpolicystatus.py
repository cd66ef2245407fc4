"""The ValidatingAdmissionPolicy status controller (upstream's
``validatingadmissionpolicystatus``, a kube-controller-manager controller).

Every policy whose ``metadata.generation`` is ahead of ``status.observedGeneration``
is type-checked against the schemas of the kinds it matches
(:mod:`pilothouse.api.admission_typecheck`) and its status written:
``observedGeneration`` and ``typeChecking.expressionWarnings``. One policy per key at
a time; policies in parallel. Type checking is CPU work of a few milliseconds per
kind, done in the controller so admission never pays for it. Kinds the built-in
schemas lack (custom resources) are looked up as upstream's resolver looks them up:
the group-version's discovery and its ``/openapi/v3`` document, fetched per check.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import admission_typecheck, errors, resources
from pilothouse.client import informer, rest
from pilothouse.controllers import base

Obj = dict[str, Any]


class ServedSchemas:
    """The discovery and OpenAPI v3 documents of the group-versions a policy names that
    the built-in schemas do not cover (:class:`admission_typecheck.Schemas`)."""

    def __init__(self) -> None:
        self.kinds: dict[tuple[str, str, str], str] = {}
        self.docs: dict[tuple[str, str], Obj] = {}

    @staticmethod
    def group_versions(policy: Obj, registry: resources.Registry) -> set[tuple[str, str]]:
        spec = policy.get("spec") or {}
        wanted: set[tuple[str, str]] = set()
        for rule in (spec.get("matchConstraints") or {}).get("resourceRules") or []:
            for group in rule.get("apiGroups") or []:
                for version in rule.get("apiVersions") or []:
                    if not group or "*" in group or "*" in version:
                        continue
                    plurals = [r for r in rule.get("resources") or [] if "*" not in r]
                    if any(registry.by_path(group, version, p) is None for p in plurals):
                        wanted.add((group, version))
        kind = spec.get("paramKind")
        if isinstance(kind, dict):
            group, _, version = str(kind.get("apiVersion") or "").rpartition("/")
            if (
                group
                and registry.by_api_version(f"{group}/{version}", str(kind.get("kind"))) is None
            ):
                wanted.add((group, version))
        return wanted

    async def load(self, client: rest.Client, wanted: set[tuple[str, str]]) -> None:
        for group, version in sorted(wanted):
            try:
                found = await client.request("GET", f"/apis/{group}/{version}")
                doc = await client.request("GET", f"/openapi/v3/apis/{group}/{version}")
            except errors.StatusError:
                continue  # not served (yet): its kinds are skipped, as upstream's
            for r in found.get("resources") or []:
                name = str(r.get("name") or "")
                if name and "/" not in name:
                    self.kinds[(group, version, name)] = str(r.get("kind") or "")
            self.docs[(group, version)] = doc

    def kind_for(self, group: str, version: str, plural: str) -> str | None:
        return self.kinds.get((group, version, plural))

    def schema_for(
        self, group: str, version: str, kind: str
    ) -> tuple[Obj, admission_typecheck.Resolve] | None:
        doc = self.docs.get((group, version))
        if doc is None:
            return None
        components: Obj = (doc.get("components") or {}).get("schemas") or {}
        gvk = {"group": group, "version": version, "kind": kind}
        for found in components.values():
            if gvk in (found.get("x-kubernetes-group-version-kind") or []):

                def resolve(node: Obj) -> Obj:
                    name = str(node.get("$ref") or "").rsplit("/", 1)[-1]
                    target = components.get(name)
                    return target if isinstance(target, dict) else {}

                return found, resolve
        return None


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
        schemas = ServedSchemas()
        await schemas.load(self.client, ServedSchemas.group_versions(policy, self.registry))
        warnings = admission_typecheck.check(policy, self.registry, schemas)
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
