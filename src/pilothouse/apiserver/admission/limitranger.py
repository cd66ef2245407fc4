"""LimitRanger (upstream's plugin of the same name).

Mutating: a new pod's containers get the ``default``/``defaultRequest`` of the
namespace's LimitRanges for what they leave out, noted in the
``kubernetes.io/limit-ranger`` annotation. Validating: pods and claims must keep
within each LimitRange's ``min``, ``max`` and ``maxLimitRequestRatio``; a refusal
lists every violation. Pod updates are left alone (containers' resources cannot
change), and so is an object being deleted.
"""

from __future__ import annotations

from pilothouse.api import limitrange, resources
from pilothouse.apiserver.admission import lookup
from pilothouse.apiserver.admission.chain import Deps
from pilothouse.apiserver.admission.interface import CREATE, UPDATE, Attributes, Plugin


class LimitRanger(Plugin):
    name = "LimitRanger"

    def __init__(self, deps: Deps) -> None:
        self.cache = deps.cache

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        if subresource or resource.group != "":
            return False
        if resource.plural == "pods":
            return operation == CREATE
        return resource.plural == "persistentvolumeclaims" and operation in (CREATE, UPDATE)

    def _ranges(self, a: Attributes) -> list[dict[str, object]]:
        if a.old is not None and (a.old.get("metadata") or {}).get("deletionTimestamp"):
            return []
        return lookup.in_namespace(self.cache, lookup.LIMIT_RANGES, a.namespace)

    async def admit(self, a: Attributes) -> None:
        if a.plural != "pods" or a.obj is None:
            return
        for limit_range in self._ranges(a):
            limitrange.default_pod(limit_range, a.obj)

    async def validate(self, a: Attributes) -> None:
        if a.obj is None:
            return
        check = limitrange.validate_pod if a.plural == "pods" else limitrange.validate_claim
        for limit_range in self._ranges(a):
            problems = check(limit_range, a.obj)
            if problems:
                raise a.forbidden(limitrange.aggregate(problems))
