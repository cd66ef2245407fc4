"""What each kind of object consumes under a ResourceQuota (upstream's quota evaluators).

An :class:`Evaluator` answers, for one resource: whether an operation can change
usage (``handles``), which quota resource names it tracks (``matching_resources``),
whether an object falls under a quota scope (``matches_scope``), what an object
uses (``usage``) and whether an object may be charged at all (``constraints``: a
quota on ``requests.cpu`` needs every container to ask for cpu). Pods, Services and
PersistentVolumeClaims have their own; every other namespaced resource is counted
as ``count/<resource>.<group>`` (core resources without the group), and ConfigMaps,
Secrets, ResourceQuotas and ReplicationControllers under their legacy names too.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from pilothouse.api import qos, resources
from pilothouse.api.quota import resourcelist
from pilothouse.api.quota.resourcelist import ResourceList

Obj = dict[str, Any]

CREATE = "CREATE"
UPDATE = "UPDATE"

# Scopes (corev1.ResourceQuotaScope).
TERMINATING = "Terminating"
NOT_TERMINATING = "NotTerminating"
BEST_EFFORT = "BestEffort"
NOT_BEST_EFFORT = "NotBestEffort"
PRIORITY_CLASS = "PriorityClass"
CROSS_NAMESPACE_POD_AFFINITY = "CrossNamespacePodAffinity"
STANDARD_SCOPES = frozenset(
    {
        TERMINATING,
        NOT_TERMINATING,
        BEST_EFFORT,
        NOT_BEST_EFFORT,
        PRIORITY_CLASS,
        CROSS_NAMESPACE_POD_AFFINITY,
    }
)

# Resources never charged to a quota (upstream's DefaultIgnoredResources).
IGNORED = frozenset({("", "events")})

STANDARD_QUOTA_RESOURCES = frozenset(
    {
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.storage",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
        "resourcequotas",
        "services",
        "replicationcontrollers",
        "secrets",
        "persistentvolumeclaims",
        "configmaps",
        "services.nodeports",
        "services.loadbalancers",
    }
)
HUGEPAGES_PREFIX = "hugepages-"
REQUESTS_HUGEPAGES_PREFIX = "requests.hugepages-"
REQUESTS_PREFIX = "requests."
LIMITS_PREFIX = "limits."

_POD_OBJECT_COUNT = frozenset({"pods"})
_POD_COMPUTE = frozenset(
    {"cpu", "memory", "limits.cpu", "limits.memory", "requests.cpu", "requests.memory"}
)

LEGACY_COUNT_NAMES = {
    ("", "configmaps"): "configmaps",
    ("", "resourcequotas"): "resourcequotas",
    ("", "replicationcontrollers"): "replicationcontrollers",
    ("", "secrets"): "secrets",
}


def is_standard_quota_resource(name: str) -> bool:
    return name in STANDARD_QUOTA_RESOURCES or name.startswith(
        (HUGEPAGES_PREFIX, REQUESTS_HUGEPAGES_PREFIX)
    )


def scope_valid_for_resource(scope: str, name: str) -> bool:
    """IsResourceQuotaScopeValidForResource."""
    if scope in (
        TERMINATING,
        NOT_TERMINATING,
        NOT_BEST_EFFORT,
        PRIORITY_CLASS,
        CROSS_NAMESPACE_POD_AFFINITY,
    ):
        return name in _POD_OBJECT_COUNT or name in _POD_COMPUTE
    if scope == BEST_EFFORT:
        return name in _POD_OBJECT_COUNT
    return True


def object_count_name(group: str, plural: str) -> str:
    """``count/pods``, ``count/deployments.apps``."""
    return f"count/{plural}.{group}" if group else f"count/{plural}"


def scope_selectors(quota: Obj) -> list[Obj]:
    """The quota's scopes and scope selector, as one list of requirements."""
    spec = quota.get("spec") or {}
    out: list[Obj] = [{"scopeName": s, "operator": "Exists"} for s in spec.get("scopes") or []]
    selector = spec.get("scopeSelector") or {}
    out.extend(e for e in selector.get("matchExpressions") or [] if isinstance(e, dict))
    return out


class Evaluator:
    """Counts objects of one resource: ``count/<resource>.<group>`` (and a legacy name)."""

    def __init__(self, group: str, plural: str) -> None:
        self.group = group
        self.plural = plural
        self.count_name = object_count_name(group, plural)
        alias = LEGACY_COUNT_NAMES.get((group, plural))
        self.names = (self.count_name, alias) if alias else (self.count_name,)

    def handles(self, operation: str) -> bool:
        return operation == CREATE

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if n in self.names]

    def matches_scope(self, selector: Obj, obj: Obj) -> bool:
        """Scopes are about pods: no other object falls under one (MatchesNoScopeFunc), so
        a scoped quota never counts them."""
        return False

    def usage(self, obj: Obj, now: float) -> ResourceList:
        return {name: resourcelist.one() for name in self.names}

    def constraints(self, required: list[str], obj: Obj) -> str | None:
        return None

    def matches(self, quota: Obj, obj: Obj) -> bool:
        """Whether the quota tracks something of this resource and its scopes take ``obj``."""
        hard = (quota.get("status") or {}).get("hard") or {}
        if not self.matching_resources(hard):
            return False
        return all(self.matches_scope(s, obj) for s in scope_selectors(quota))


# --- pods ---------------------------------------------------------------------------


def _container_lists(c: Obj) -> tuple[ResourceList, ResourceList]:
    res = c.get("resources") or {}
    return resourcelist.parse(res.get("requests")), resourcelist.parse(res.get("limits"))


def _pod_totals(spec: Obj, which: int) -> ResourceList:
    """Effective pod requests (``which`` 0) or limits (1) as upstream's PodRequests/PodLimits:
    containers and sidecars summed, the largest init container step, plus overhead."""
    total: ResourceList = {}
    for c in spec.get("containers") or []:
        resourcelist.add_into(total, _container_lists(c)[which])
    sidecars: ResourceList = {}
    init_max: ResourceList = {}
    for c in spec.get("initContainers") or []:
        own = _container_lists(c)[which]
        if c.get("restartPolicy") == "Always":
            resourcelist.add_into(total, own)
            resourcelist.add_into(sidecars, own)
            step = dict(sidecars)
        else:
            step = dict(own)
            resourcelist.add_into(step, sidecars)
        resourcelist.max_into(init_max, step)
    resourcelist.max_into(total, init_max)
    overhead = resourcelist.parse(spec.get("overhead"))
    if overhead:
        resourcelist.add_into(total, overhead)
    return total


def pod_requests(pod: Obj) -> ResourceList:
    return _pod_totals(pod.get("spec") or {}, 0)


def pod_limits(pod: Obj) -> ResourceList:
    return _pod_totals(pod.get("spec") or {}, 1)


def _is_extended(name: str) -> bool:
    # Native names have no domain or a kubernetes.io one; requests.* are quota names.
    native = "/" not in name or "kubernetes.io/" in name
    return not native and not name.startswith(REQUESTS_PREFIX)


def compute_usage(requests: ResourceList, limits: ResourceList) -> ResourceList:
    """podComputeUsageHelper: quota names charged for these requests and limits."""
    result: ResourceList = {}
    for base in ("cpu", "memory", "ephemeral-storage"):
        if base in requests:
            result[base] = requests[base]
            result[REQUESTS_PREFIX + base] = requests[base]
        if base in limits:
            result[LIMITS_PREFIX + base] = limits[base]
    for name, value in requests.items():
        if name.startswith(HUGEPAGES_PREFIX):
            result[name] = value
            result[REQUESTS_PREFIX + name] = value
        if _is_extended(name):
            result[REQUESTS_PREFIX + name] = value
    for name, value in limits.items():
        if name.startswith(HUGEPAGES_PREFIX):
            result[LIMITS_PREFIX + name] = value
    return result


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def counts_for_compute(pod: Obj, now: float) -> bool:
    """QuotaV1Pod: finished pods, and pods past their deletion grace, are not charged."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    md = pod.get("metadata") or {}
    deleted = _parse_time(md.get("deletionTimestamp"))
    grace = md.get("deletionGracePeriodSeconds")
    return not (deleted is not None and isinstance(grace, int) and now > deleted + grace)


def _terminating(pod: Obj) -> bool:
    deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    return isinstance(deadline, int) and deadline >= 0


def _cross_namespace_affinity(pod: Obj) -> bool:
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        section = affinity.get(kind) or {}
        terms = list(section.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        terms += [
            (t or {}).get("podAffinityTerm") or {}
            for t in section.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        ]
        for term in terms:
            if (term or {}).get("namespaces") or (term or {}).get("namespaceSelector") is not None:
                return True
    return False


def scope_requirement_matches(selector: Obj, values: dict[str, str]) -> bool:
    """A scope selector requirement as a label requirement over ``{scopeName: value}``."""
    op = selector.get("operator") or ""
    key = selector.get("scopeName") or ""
    wanted = [str(v) for v in selector.get("values") or []]
    present = key in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op == "In":
        return present and values[key] in wanted
    if op == "NotIn":
        return not present or values[key] not in wanted
    return False


class PodEvaluator(Evaluator):
    """Pods: ``pods`` and compute resources while the pod runs, ``count/pods`` always."""

    RESOURCES = frozenset(
        {
            "count/pods",
            "cpu",
            "memory",
            "ephemeral-storage",
            "requests.cpu",
            "requests.memory",
            "requests.ephemeral-storage",
            "limits.cpu",
            "limits.memory",
            "limits.ephemeral-storage",
            "pods",
        }
    )
    # A quota on these makes every container state them (a compatibility rule upstream keeps).
    EXPLICIT = frozenset(
        {"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"}
    )

    def __init__(self) -> None:
        super().__init__("", "pods")

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        out: list[str] = []
        for name in names:
            if (
                name in self.RESOURCES
                or name.startswith((HUGEPAGES_PREFIX, REQUESTS_HUGEPAGES_PREFIX))
                or (name.startswith(REQUESTS_PREFIX) and _is_extended(name[len(REQUESTS_PREFIX) :]))
            ):
                out.append(name)
        return out

    def matches_scope(self, selector: Obj, obj: Obj) -> bool:
        scope = selector.get("scopeName")
        if scope == TERMINATING:
            return _terminating(obj)
        if scope == NOT_TERMINATING:
            return not _terminating(obj)
        if scope == BEST_EFFORT:
            return qos.pod_qos_class(obj) == "BestEffort"
        if scope == NOT_BEST_EFFORT:
            return qos.pod_qos_class(obj) != "BestEffort"
        if scope == PRIORITY_CLASS:
            name = (obj.get("spec") or {}).get("priorityClassName") or ""
            if selector.get("operator") == "Exists":
                return bool(name)
            return scope_requirement_matches(selector, {PRIORITY_CLASS: name} if name else {})
        if scope == CROSS_NAMESPACE_POD_AFFINITY:
            return _cross_namespace_affinity(obj)
        return False

    def usage(self, obj: Obj, now: float) -> ResourceList:
        result: ResourceList = {"count/pods": resourcelist.one()}
        if not counts_for_compute(obj, now):
            return result
        result["pods"] = resourcelist.one()
        result.update(compute_usage(pod_requests(obj), pod_limits(obj)))
        return result

    def constraints(self, required: list[str], obj: Obj) -> str | None:
        wanted = set(required) & self.EXPLICIT
        if not wanted:
            return None
        missing: dict[str, set[str]] = {}
        spec = obj.get("spec") or {}
        for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
            requests, limits = _container_lists(c)
            have = set(compute_usage(requests, limits))
            for name in wanted - have:
                missing.setdefault(name, set()).add(str(c.get("name") or ""))
        if not missing:
            return None
        parts = [f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing)]
        return "must specify " + "; ".join(parts)


# --- services -----------------------------------------------------------------------


class ServiceEvaluator(Evaluator):
    """Services: ``services``, ``services.nodeports``, ``services.loadbalancers``."""

    RESOURCES = frozenset(
        {"count/services", "services", "services.nodeports", "services.loadbalancers"}
    )

    def __init__(self) -> None:
        super().__init__("", "services")

    def handles(self, operation: str) -> bool:
        return operation in (CREATE, UPDATE)

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if n in self.RESOURCES]

    def usage(self, obj: Obj, now: float) -> ResourceList:
        spec = obj.get("spec") or {}
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        result: ResourceList = {
            "count/services": resourcelist.one(),
            "services": resourcelist.one(),
            "services.loadbalancers": resourcelist.ZERO,
            "services.nodeports": resourcelist.ZERO,
        }
        kind = spec.get("type")
        if kind == "NodePort":
            result["services.nodeports"] = resourcelist.count(len(ports))
        elif kind == "LoadBalancer":
            if spec.get("allocateLoadBalancerNodePorts") is False:
                with_ports = sum(1 for p in ports if p.get("nodePort"))
                result["services.nodeports"] = resourcelist.count(with_ports)
            else:
                result["services.nodeports"] = resourcelist.count(len(ports))
            result["services.loadbalancers"] = resourcelist.one()
        return result


# --- persistent volume claims -------------------------------------------------------

STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"


class PersistentVolumeClaimEvaluator(Evaluator):
    """Claims: ``persistentvolumeclaims``, ``requests.storage``, and both per storage class
    (``<class>.storageclass.storage.k8s.io/requests.storage``)."""

    RESOURCES = ("persistentvolumeclaims", "requests.storage")

    def __init__(self) -> None:
        super().__init__("", "persistentvolumeclaims")

    def handles(self, operation: str) -> bool:
        return operation in (CREATE, UPDATE)

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        out: list[str] = []
        for name in names:
            if (
                name == self.count_name
                or name in self.RESOURCES
                or any(name.endswith(STORAGE_CLASS_SUFFIX + r) for r in self.RESOURCES)
            ):
                out.append(name)
        return out

    def usage(self, obj: Obj, now: float) -> ResourceList:
        spec = obj.get("spec") or {}
        result: ResourceList = {
            "persistentvolumeclaims": resourcelist.one(),
            self.count_name: resourcelist.one(),
        }
        storage_class = spec.get("storageClassName") or (
            (obj.get("metadata") or {}).get("annotations") or {}
        ).get("volume.beta.kubernetes.io/storage-class", "")
        if storage_class:
            result[storage_class + STORAGE_CLASS_SUFFIX + "persistentvolumeclaims"] = (
                resourcelist.one()
            )
        requested = resourcelist.parse(((spec.get("resources") or {}).get("requests")) or {})
        storage = requested.get("storage")
        if storage is not None:
            result["requests.storage"] = storage
            if storage_class:
                result[storage_class + STORAGE_CLASS_SUFFIX + "requests.storage"] = storage
        return result


def quotable(resource: resources.Resource) -> bool:
    """Whether objects of this resource can be charged to a namespace's quota."""
    return (
        resource.namespaced
        and resource.stored
        and "create" in resource.verbs
        and (resource.group, resource.plural) not in IGNORED
        and resource.storage_group is None  # one storage, counted once (core Events)
    )


class Registry:
    """The evaluators of a cluster: the special ones, and object counting for the rest."""

    def __init__(self, registry: resources.Registry = resources.DEFAULT) -> None:
        self._by_resource: dict[tuple[str, str], Evaluator] = {}
        for evaluator in (PodEvaluator(), ServiceEvaluator(), PersistentVolumeClaimEvaluator()):
            self._by_resource[(evaluator.group, evaluator.plural)] = evaluator
        for r in registry.resources:
            if quotable(r):
                self._by_resource.setdefault((r.group, r.plural), Evaluator(r.group, r.plural))

    def get(self, group: str, plural: str) -> Evaluator | None:
        return self._by_resource.get((group, plural))

    def for_resource(self, group: str, plural: str) -> Evaluator:
        """The evaluator of a resource, an object counter made on first use if unknown
        (as upstream's quota admission does for resources it was not told about)."""
        evaluator = self._by_resource.get((group, plural))
        if evaluator is None:
            evaluator = self._by_resource[(group, plural)] = Evaluator(group, plural)
        return evaluator

    def all(self) -> list[Evaluator]:
        return list(self._by_resource.values())

    def tracked(self, hard: Iterable[str]) -> list[str]:
        """The names of ``hard`` some evaluator can measure (the rest stay out of used)."""
        names = list(hard)
        matched: set[str] = set()
        for evaluator in self._by_resource.values():
            matched.update(evaluator.matching_resources(names))
        return [n for n in names if n in matched]
