"""Priority (upstream's admission plugin of the same name).

A new pod's ``spec.priorityClassName`` (or, when it names none, the global default
class: of several, the lowest value) becomes its ``spec.priority`` and
``spec.preemptionPolicy``; an unknown class, or a priority or preemption policy
that disagrees with the class, is refused. An update keeps what creation set. A
second ``globalDefault`` PriorityClass is refused. The built-in classes
``system-node-critical`` and ``system-cluster-critical`` exist from the start and
cannot be deleted (upstream refuses that in the PriorityClass storage; here it is
this plugin's validation of a delete).
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import resources
from pilothouse.apiserver.admission import lookup
from pilothouse.apiserver.admission.chain import Deps
from pilothouse.apiserver.admission.interface import CREATE, DELETE, UPDATE, Attributes, Plugin

DEFAULT_PRIORITY = 0  # scheduling.DefaultPriorityWhenNoDefaultClassExists
SYSTEM_PRIORITY_CLASSES = (
    (
        "system-node-critical",
        2000001000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2000000000,
        "Used for system critical pods that must run in the cluster, but can be moved to "
        "another node if necessary.",
    ),
)


SYSTEM_NAMES = frozenset(name for name, _, _ in SYSTEM_PRIORITY_CLASSES)


def system_priority_classes() -> list[dict[str, Any]]:
    """The classes every cluster has (made at first start)."""
    return [
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            "description": description,
        }
        for name, value, description in SYSTEM_PRIORITY_CLASSES
    ]


class Priority(Plugin):
    name = "Priority"

    def __init__(self, deps: Deps) -> None:
        self.cache = deps.cache

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        if subresource:
            return False
        if (resource.group, resource.plural) == ("scheduling.k8s.io", "priorityclasses"):
            # Deletion too: upstream's PriorityClass storage keeps the system classes.
            return operation in (CREATE, UPDATE, DELETE)
        return (resource.group, resource.plural) == ("", "pods") and operation in (CREATE, UPDATE)

    def _default_class(self) -> dict[str, Any] | None:
        chosen: dict[str, Any] | None = None
        classes = self.cache.caches.get(lookup.PRIORITY_CLASSES)
        for entry in classes.objects.values() if classes is not None else ():
            pc = entry.obj
            if pc.get("globalDefault") and (
                chosen is None or int(pc.get("value") or 0) < int(chosen.get("value") or 0)
            ):
                chosen = pc
        return chosen

    async def admit(self, a: Attributes) -> None:
        if a.plural != "pods" or a.obj is None:
            return
        spec = a.obj.setdefault("spec", {})
        if a.operation == UPDATE:
            old_spec = (a.old or {}).get("spec") or {}
            for key in ("priority", "preemptionPolicy"):
                if spec.get(key) is None and old_spec.get(key) is not None:
                    spec[key] = old_spec[key]
            return
        name = spec.get("priorityClassName") or ""
        if name:
            chosen = lookup.get(self.cache, lookup.PRIORITY_CLASSES, name)
            if chosen is None:
                raise a.forbidden(f"no PriorityClass with name {name} was found")
            priority = int(chosen.get("value") or 0)
            policy = chosen.get("preemptionPolicy")
        else:
            chosen = self._default_class()
            if chosen is not None:
                spec["priorityClassName"] = chosen["metadata"]["name"]
                priority = int(chosen.get("value") or 0)
                policy = chosen.get("preemptionPolicy")
            else:
                priority, policy = DEFAULT_PRIORITY, "PreemptLowerPriority"
        given = spec.get("priority")
        if given is not None and given != priority:
            raise a.forbidden(
                f"the integer value of priority ({given}) must not be provided in pod spec; "
                f"priority admission controller computed {priority} from the given "
                "PriorityClass name"
            )
        spec["priority"] = priority
        if policy:
            given_policy = spec.get("preemptionPolicy")
            if given_policy is not None and given_policy != policy:
                raise a.forbidden(
                    f"the string value of PreemptionPolicy ({given_policy}) must not be provided "
                    f"in pod spec; priority admission controller computed {policy} from the "
                    "given PriorityClass name"
                )
            spec["preemptionPolicy"] = policy

    async def validate(self, a: Attributes) -> None:
        if a.plural != "priorityclasses":
            return
        if a.operation == DELETE:
            if a.name in SYSTEM_NAMES:
                raise a.forbidden("this is a system priority class and cannot be deleted")
            return
        if a.obj is None or not a.obj.get("globalDefault"):
            return
        current = self._default_class()
        if current is None:
            return
        own = (a.obj.get("metadata") or {}).get("name")
        if a.operation == CREATE or current["metadata"]["name"] != own:
            raise a.forbidden(
                f"PriorityClass {current['metadata']['name']} is already marked as default. "
                "Only one default can exist"
            )
