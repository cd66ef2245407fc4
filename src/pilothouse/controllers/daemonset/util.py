"""DaemonSet arithmetic without I/O (upstream's ``daemon/util/daemonset_util.go`` and the
pure helpers of ``daemon_controller.go``).

Which nodes should run a daemon pod (and which may keep one), the tolerations every
daemon pod gets, the node-affinity term that pins a pod to its node for the
scheduler, the template pods are made from, and the rolling-update counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pilothouse.api import intstr, meta, nodeaffinity
from pilothouse.api.meta import Obj
from pilothouse.controllers.history import revisions

KIND = "DaemonSet"
REVISION_LABEL = revisions.REVISION_LABEL  # "controller-revision-hash"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"


def spec(obj: Obj | None) -> Obj:
    return (obj or {}).get("spec") or {}


def status(obj: Obj | None) -> Obj:
    return (obj or {}).get("status") or {}


def name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def namespace(obj: Obj) -> str:
    return str(obj["metadata"].get("namespace", ""))


def uid(obj: Obj) -> str:
    return str(obj["metadata"].get("uid", ""))


def min_ready_seconds(ds: Obj) -> int:
    return int(spec(ds).get("minReadySeconds") or 0)


def strategy_type(ds: Obj) -> str:
    return str((spec(ds).get("updateStrategy") or {}).get("type") or "RollingUpdate")


# --- tolerations and placement -------------------------------------------------------------
def _toleration(key: str, effect: str) -> Obj:
    return {"key": key, "operator": "Exists", "effect": effect}


def add_or_update_toleration(pod_spec: Obj, toleration: Obj) -> None:
    """``AddOrUpdateTolerationInPodSpec``: replace a toleration that matches it, or add it."""
    tolerations: list[Obj] = list(pod_spec.get("tolerations") or [])
    for i, existing in enumerate(tolerations):
        if nodeaffinity.matches_toleration(existing, toleration):
            if existing != toleration:
                tolerations[i] = toleration
            break
    else:
        tolerations.append(toleration)
    pod_spec["tolerations"] = tolerations


def add_daemon_tolerations(pod_spec: Obj) -> None:
    """The tolerations upstream gives every daemon pod: it survives node problems
    (not-ready and unreachable NoExecute) and is placed whatever the node's pressure
    or cordon (NoSchedule), and without a network too when it uses the host's."""
    add_or_update_toleration(pod_spec, _toleration(TAINT_NOT_READY, "NoExecute"))
    add_or_update_toleration(pod_spec, _toleration(TAINT_UNREACHABLE, "NoExecute"))
    add_or_update_toleration(pod_spec, _toleration(TAINT_DISK_PRESSURE, "NoSchedule"))
    add_or_update_toleration(pod_spec, _toleration(TAINT_MEMORY_PRESSURE, "NoSchedule"))
    add_or_update_toleration(pod_spec, _toleration(TAINT_PID_PRESSURE, "NoSchedule"))
    add_or_update_toleration(pod_spec, _toleration(TAINT_UNSCHEDULABLE, "NoSchedule"))
    if pod_spec.get("hostNetwork"):
        add_or_update_toleration(pod_spec, _toleration(TAINT_NETWORK_UNAVAILABLE, "NoSchedule"))


def new_pod_spec(ds: Obj, node_name: str) -> Obj:
    """The pod spec as the node would see it (``NewPod``): the template with the daemon
    tolerations and the node's name."""
    pod_spec = dict(spec(ds).get("template", {}).get("spec") or {})
    pod_spec["nodeName"] = node_name
    add_daemon_tolerations(pod_spec)
    return pod_spec


def _schedules(taint: Mapping[str, Any]) -> bool:
    return taint.get("effect") in ("NoSchedule", "NoExecute")


def _executes(taint: Mapping[str, Any]) -> bool:
    return taint.get("effect") == "NoExecute"


@dataclass(frozen=True)
class Placement:
    """What decides, for one DaemonSet, whether a node should run its pod — worked out
    once per set (the tolerations every daemon pod gets do not depend on the node)."""

    template_node: str
    pod_spec: Obj

    @classmethod
    def of(cls, ds: Obj) -> Placement:
        template_spec = spec(ds).get("template", {}).get("spec") or {}
        return cls(str(template_spec.get("nodeName") or ""), new_pod_spec(ds, ""))

    def decide(self, node: Obj) -> tuple[bool, bool]:
        """(should run, should continue running) — ``NodeShouldRunDaemonPod``: the node
        fits the template's nodeName, nodeSelector and required affinity and has no
        untolerated NoSchedule/NoExecute taint; a pod already there may stay unless a
        NoExecute taint is untolerated."""
        node_name = str((node.get("metadata") or {}).get("name", ""))
        if self.template_node and self.template_node != node_name:
            return False, False
        if not nodeaffinity.required_node_affinity_matches(self.pod_spec, node):
            return False, False
        taints = spec(node).get("taints") or []
        if not taints:
            return True, True
        tolerations = self.pod_spec.get("tolerations") or []
        if nodeaffinity.find_untolerated_taint(taints, tolerations, _schedules) is None:
            return True, True
        return False, nodeaffinity.find_untolerated_taint(taints, tolerations, _executes) is None


def node_should_run_daemon_pod(node: Obj, ds: Obj) -> tuple[bool, bool]:
    """:meth:`Placement.decide` for one node (build a :class:`Placement` for many)."""
    return Placement.of(ds).decide(node)


def replace_node_name_affinity(affinity: Obj | None, node_name: str) -> Obj:
    """The pod's affinity with its required node-affinity terms replaced by one that
    selects ``node_name`` by ``metadata.name`` (``ReplaceDaemonSetPodNodeNameNodeAffinity``)."""
    term = {
        "matchFields": [
            {"key": nodeaffinity.NAME_FIELD, "operator": "In", "values": [node_name]},
        ]
    }
    out = dict(affinity or {})
    node_affinity = dict(out.get("nodeAffinity") or {})
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [term]
        }
    else:
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            **required,
            "nodeSelectorTerms": [term],
        }
    out["nodeAffinity"] = node_affinity
    return out


def target_node_name(pod: Obj) -> str | None:
    """The node a daemon pod is for: its nodeName, or the name its affinity pins
    (``GetTargetNodeName``); None when it names none."""
    pod_spec = spec(pod)
    if pod_spec.get("nodeName"):
        return str(pod_spec["nodeName"])
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for req in term.get("matchFields") or []:
            values = req.get("values") or []
            if (
                req.get("key") == nodeaffinity.NAME_FIELD
                and req.get("operator") == "In"
                and len(values) == 1
            ):
                return str(values[0])
    return None


# --- templates and revisions ---------------------------------------------------------------
def template_generation(ds: Obj) -> int | None:
    """The template generation annotation; None when absent or unparsable."""
    value = (ds["metadata"].get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def create_pod_template(ds: Obj, generation: int | None, hash_: str) -> Obj:
    """``CreatePodTemplate``: the template with the daemon tolerations, the generation
    and revision-hash labels."""
    template = meta.deep_copy(spec(ds).get("template") or {})
    add_daemon_tolerations(template.setdefault("spec", {}))
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    if generation is not None:
        labels[TEMPLATE_GENERATION_LABEL] = str(generation)
    if hash_:
        labels[REVISION_LABEL] = hash_
    return template


def is_pod_updated(pod: Obj, hash_: str, generation: int | None) -> bool:
    labels = pod["metadata"].get("labels") or {}
    template_matches = generation is not None and labels.get(TEMPLATE_GENERATION_LABEL) == str(
        generation
    )
    hash_matches = bool(hash_) and labels.get(REVISION_LABEL) == hash_
    return hash_matches or template_matches


def _rolling(ds: Obj) -> Obj | None:
    if strategy_type(ds) != "RollingUpdate":
        return None
    value = (spec(ds).get("updateStrategy") or {}).get("rollingUpdate")
    return value if isinstance(value, dict) else None


def surge_count(ds: Obj, number_to_schedule: int) -> int:
    rolling = _rolling(ds)
    if rolling is None or rolling.get("maxSurge") is None:
        return 0
    value: Any = rolling["maxSurge"]
    return intstr.scaled_value(value, number_to_schedule, True)


def unavailable_count(ds: Obj, number_to_schedule: int) -> int:
    rolling = _rolling(ds)
    if rolling is None:
        return 0
    value: Any = rolling.get("maxUnavailable")
    return intstr.scaled_value(0 if value is None else value, number_to_schedule, False)


def allows_surge(ds: Obj) -> bool:
    try:
        return surge_count(ds, 1) != 0
    except ValueError:
        return False


# --- ordering -----------------------------------------------------------------------------
def by_creation_and_phase(pods: list[Obj]) -> list[Obj]:
    """Scheduled pods first, then oldest first, then by name (podByCreationTimestampAndPhase)."""

    def key(pod: Obj) -> tuple[int, float, str]:
        created = meta.parse_time(pod["metadata"].get("creationTimestamp")) or 0.0
        return (0 if spec(pod).get("nodeName") else 1, created, name(pod))

    return sorted(pods, key=key)
