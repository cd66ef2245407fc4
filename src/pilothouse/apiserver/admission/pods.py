"""Admission for new pods: Priority and DefaultTolerationSeconds (the upstream plugins
of those names, in that order; ServiceAccount, which runs before them, is in
``serviceaccount``).

* Priority resolves ``spec.priorityClassName`` (or the global default class)
  to ``spec.priority`` and ``spec.preemptionPolicy``; an unknown class is 403.
* DefaultTolerationSeconds lets a pod stay 300 s on a node that goes NotReady
  or unreachable before it is evicted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilothouse.api import errors
from pilothouse.api.meta import Obj

if TYPE_CHECKING:
    from pilothouse.apiserver.registry.store import ResourceStore

PRIORITY_CLASSES = "/registry/scheduling.k8s.io/priorityclasses/"
DEFAULT_TOLERATION_SECONDS = 300
SYSTEM_PRIORITY_CLASSES = (
    (
        "system-node-critical",
        2000001000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2000000000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
)


async def pod_admission(store: ResourceStore, op: str, obj: Obj) -> None:
    r = store.resource
    if op != "create" or r.group != "" or r.plural != "pods":
        return
    await _priority(store, obj)
    _default_tolerations(obj)


async def _priority(store: ResourceStore, pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    name = spec.get("priorityClassName") or ""
    cache = store.watch_cache.caches.get(PRIORITY_CLASSES)
    classes = [e.obj for e in cache.objects.values()] if cache is not None else []
    chosen: Obj | None = None
    if name:
        chosen = next((c for c in classes if c["metadata"]["name"] == name), None)
        if chosen is None:
            raise errors.forbidden(
                "pods",
                "",
                pod["metadata"].get("name", ""),
                f"no PriorityClass with name {name} was found",
            )
    else:
        defaults = [c for c in classes if c.get("globalDefault")]
        if defaults:
            chosen = min(defaults, key=lambda c: int(c.get("value", 0)))
            spec["priorityClassName"] = chosen["metadata"]["name"]
    value = int(chosen.get("value", 0)) if chosen is not None else 0
    if "priority" in spec and spec["priority"] is not None and int(spec["priority"]) != value:
        raise errors.forbidden(
            "pods",
            "",
            pod["metadata"].get("name", ""),
            f"the integer value of priority ({spec['priority']}) must not be provided in pod spec; priority "
            f"admission controller computed {value} from the given PriorityClass name",
        )
    spec["priority"] = value
    spec["preemptionPolicy"] = (chosen or {}).get("preemptionPolicy") or "PreemptLowerPriority"


def _default_tolerations(pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    tolerations = list(spec.get("tolerations") or [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if any(
            t.get("key") == key and t.get("effect") in ("NoExecute", None, "") for t in tolerations
        ) or any(not t.get("key") and t.get("operator") == "Exists" for t in tolerations):
            continue
        tolerations.append(
            {
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }
        )
    spec["tolerations"] = tolerations
