"""What the scheduler knows about a pod, computed once when the pod is seen.

A :class:`PodInfo` holds the parsed pod: its resource requests (containers,
init containers and sidecars, overhead — upstream's ``resourcehelper.PodRequests``),
host ports, tolerations, affinity terms with their selectors compiled, and
signatures that let plugins reuse per-node results for pods of the same shape
(pods from one template share them).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import orjson

from pilothouse.api import meta, quantity, selectors

Obj = dict[str, Any]

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"
# Upstream's defaults for pods that ask for nothing (used when scoring only).
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

HOSTNAME_LABEL = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"


@functools.lru_cache(maxsize=4096)
def resource_value(name: str, text: str) -> int:
    """A quantity in the unit the scheduler counts: millicores for cpu, else ``Value()``."""
    try:
        value = quantity.parse_quantity(text)
    except (quantity.QuantityError, ValueError):
        return 0
    return quantity.milli(value) if name == CPU else quantity.to_int(value)


def resource_list(values: Any) -> dict[str, int]:
    if not isinstance(values, dict):
        return {}
    return {str(k): resource_value(str(k), str(v)) for k, v in values.items()}


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + v


def _max(into: dict[str, int], other: dict[str, int]) -> None:
    for k, v in other.items():
        if v > into.get(k, 0):
            into[k] = v


def pod_requests(spec: Obj, *, non_zero: bool = False) -> dict[str, int]:
    """Effective requests (upstream 1.32 ``PodRequests``): the sum of the containers, the
    larger of that and any init container (with the sidecars started before it), plus
    overhead. With ``non_zero``, a container that asks no cpu or memory counts as
    100m / 200Mi, as upstream does for scoring."""

    def container(c: Obj) -> dict[str, int]:
        reqs = resource_list((c.get("resources") or {}).get("requests"))
        if non_zero:
            # Only a missing request gets the default; an explicit zero stays zero.
            reqs.setdefault(CPU, DEFAULT_MILLI_CPU_REQUEST)
            reqs.setdefault(MEMORY, DEFAULT_MEMORY_REQUEST)
        return reqs

    total: dict[str, int] = {}
    for c in spec.get("containers") or []:
        _add(total, container(c))
    sidecars: dict[str, int] = {}
    init_max: dict[str, int] = {}
    for c in spec.get("initContainers") or []:
        reqs = container(c)
        if c.get("restartPolicy") == "Always":
            _add(total, reqs)
            _add(sidecars, reqs)
            reqs = dict(sidecars)
        else:
            _add(reqs, sidecars)
        _max(init_max, reqs)
    _max(total, init_max)
    _add(total, resource_list(spec.get("overhead")))
    return total


@dataclass(frozen=True, slots=True)
class AffinityTerm:
    """One pod (anti-)affinity term, with namespaces resolved as upstream's ``AffinityTerm``."""

    namespaces: frozenset[str]
    selector: selectors.LabelSelector
    topology_key: str
    namespace_selector: selectors.LabelSelector  # NOTHING when the term has none

    def matches(self, pod: PodInfo, namespace_labels: dict[str, str] | None) -> bool:
        if pod.namespace in self.namespaces or (
            not self.namespace_selector.nothing
            and self.namespace_selector.matches(namespace_labels or {})
        ):
            return self.selector.matches(pod.labels)
        return False


@dataclass(frozen=True, slots=True)
class WeightedTerm:
    term: AffinityTerm
    weight: int


def _affinity_term(pod_ns: str, labels: dict[str, str], raw: Obj) -> AffinityTerm:
    try:
        sel = selectors.from_label_selector_dict(raw.get("labelSelector"))
        # matchLabelKeys / mismatchLabelKeys (1.31+): pin keys to this pod's values.
        extra = []
        for key in raw.get("matchLabelKeys") or []:
            if key in labels:
                extra.append(selectors.Requirement(key, "in", (labels[key],)))
        for key in raw.get("mismatchLabelKeys") or []:
            if key in labels:
                extra.append(selectors.Requirement(key, "notin", (labels[key],)))
        if extra:
            sel = sel.add(*extra)
        ns_raw = raw.get("namespaceSelector")
        ns_sel = selectors.from_label_selector_dict(ns_raw)
    except selectors.SelectorError:
        sel = ns_sel = selectors.from_label_selector_dict(None)
        ns_raw = None
    names = raw.get("namespaces") or []
    namespaces = frozenset(names) if (names or ns_raw is not None) else frozenset((pod_ns,))
    return AffinityTerm(namespaces, sel, str(raw.get("topologyKey") or ""), ns_sel)


def _terms(
    pod_ns: str, labels: dict[str, str], block: Obj | None
) -> tuple[tuple[AffinityTerm, ...], tuple[WeightedTerm, ...]]:
    if not block:
        return (), ()
    required = tuple(
        _affinity_term(pod_ns, labels, t)
        for t in block.get("requiredDuringSchedulingIgnoredDuringExecution") or []
    )
    preferred = tuple(
        WeightedTerm(
            _affinity_term(pod_ns, labels, t.get("podAffinityTerm") or {}),
            int(t.get("weight") or 0),
        )
        for t in block.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        if t.get("weight")
    )
    return required, preferred


def _signature(value: Any) -> bytes:
    if not value:
        return b""
    # A copy of exactly its size: the bytes orjson returns keep the buffer it grew
    # (4 KB for a 100-byte signature), and every pod keeps two signatures.
    return bytes(memoryview(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)))


@dataclass(slots=True, eq=False)
class PodInfo:
    """A pod as the scheduler sees it; ``pod`` is the (read-only) object from the API."""

    pod: Obj
    key: str
    uid: str
    namespace: str
    name: str
    labels: dict[str, str]
    node_name: str
    scheduler_name: str
    priority: int
    requests: dict[str, int]
    non_zero_cpu: int
    non_zero_memory: int
    host_ports: tuple[tuple[str, str, int], ...]
    tolerations: tuple[Obj, ...]
    terminating: bool
    start_time: float
    preemption_policy: str
    nominated_node: str
    required_affinity: tuple[AffinityTerm, ...]
    preferred_affinity: tuple[WeightedTerm, ...]
    required_anti_affinity: tuple[AffinityTerm, ...]
    preferred_anti_affinity: tuple[WeightedTerm, ...]
    spread_constraints: tuple[Obj, ...]
    node_selector: dict[str, str]
    node_affinity: Obj
    scheduling_gates: tuple[str, ...]
    # Signatures: equal for pods whose answers per node are equal.
    node_affinity_sig: bytes
    tolerations_sig: bytes
    # The request vector in the node table's column layout, cached per layout.
    vector_cache: tuple[int, Any] | None = field(default=None)

    @property
    def has_affinity_terms(self) -> bool:
        return bool(
            self.required_affinity
            or self.preferred_affinity
            or self.required_anti_affinity
            or self.preferred_anti_affinity
        )


def host_ports(spec: Obj) -> tuple[tuple[str, str, int], ...]:
    ports = []
    for c in spec.get("containers") or []:
        for p in c.get("ports") or []:
            host_port = int(p.get("hostPort") or 0)
            if host_port > 0:
                ports.append(
                    (str(p.get("hostIP") or "0.0.0.0"), str(p.get("protocol") or "TCP"), host_port)
                )
    return tuple(ports)


def make_pod_info(pod: Obj, *, priority: int | None = None) -> PodInfo:
    """Parse a pod. ``priority`` overrides ``spec.priority`` (resolved from its PriorityClass)."""
    md = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    namespace = md.get("namespace") or ""
    name = md.get("name") or ""
    labels = md.get("labels") or {}
    affinity = spec.get("affinity") or {}
    req_aff, pref_aff = _terms(namespace, labels, affinity.get("podAffinity"))
    req_anti, pref_anti = _terms(namespace, labels, affinity.get("podAntiAffinity"))
    node_affinity = affinity.get("nodeAffinity") or {}
    node_selector = spec.get("nodeSelector") or {}
    tolerations = tuple(spec.get("tolerations") or ())
    requests = pod_requests(spec)
    non_zero = pod_requests(spec, non_zero=True) if spec.get("containers") else {}
    if priority is None:
        priority = int(spec.get("priority") or 0)
    start = (
        meta.parse_time(status.get("startTime"))
        or meta.parse_time(md.get("creationTimestamp"))
        or 0.0
    )
    return PodInfo(
        pod=pod,
        key=f"{namespace}/{name}",
        uid=md.get("uid") or "",
        namespace=namespace,
        name=name,
        labels=labels,
        node_name=spec.get("nodeName") or "",
        scheduler_name=spec.get("schedulerName") or "default-scheduler",
        priority=priority,
        requests=requests,
        non_zero_cpu=non_zero.get(CPU, 0),
        non_zero_memory=non_zero.get(MEMORY, 0),
        host_ports=host_ports(spec),
        tolerations=tolerations,
        terminating=bool(md.get("deletionTimestamp")),
        start_time=start,
        preemption_policy=spec.get("preemptionPolicy") or "PreemptLowerPriority",
        nominated_node=status.get("nominatedNodeName") or "",
        required_affinity=req_aff,
        preferred_affinity=pref_aff,
        required_anti_affinity=req_anti,
        preferred_anti_affinity=pref_anti,
        spread_constraints=tuple(spec.get("topologySpreadConstraints") or ()),
        node_selector=node_selector,
        node_affinity=node_affinity,
        scheduling_gates=tuple(g.get("name", "") for g in spec.get("schedulingGates") or ()),
        node_affinity_sig=_signature(
            [node_selector, node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")]
        ),
        tolerations_sig=_signature(list(tolerations)),
    )


def take_status(info: PodInfo, pod: Obj, *, priority: int) -> None:
    """Make ``info`` that of ``pod``, a later version of its pod with the same spec,
    labels and deletion state, and no affinity terms or host ports: what is read from
    the status (and the priority, resolved by the caller) is read again; the costly
    parts (requests, signatures) are kept; every other field is taken from ``pod`` —
    equal values, but the previous version's dicts and strings are then no longer held
    (30,000 pods' worth was ~20 MB)."""
    md = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    info.pod = pod
    info.priority = priority
    info.start_time = (
        meta.parse_time(status.get("startTime"))
        or meta.parse_time(md.get("creationTimestamp"))
        or 0.0
    )
    info.nominated_node = status.get("nominatedNodeName") or ""
    info.uid = md.get("uid") or ""
    info.namespace = md.get("namespace") or ""
    info.name = md.get("name") or ""
    info.labels = md.get("labels") or {}
    info.node_name = spec.get("nodeName") or ""
    info.scheduler_name = spec.get("schedulerName") or "default-scheduler"
    info.preemption_policy = spec.get("preemptionPolicy") or "PreemptLowerPriority"
    info.tolerations = tuple(spec.get("tolerations") or ())
    info.spread_constraints = tuple(spec.get("topologySpreadConstraints") or ())
    info.node_selector = spec.get("nodeSelector") or {}
    info.node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Upstream's ``Toleration.ToleratesTaint``."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerates_any(tolerations: tuple[Obj, ...], taint: Obj) -> bool:
    return any(tolerates(t, taint) for t in tolerations)
