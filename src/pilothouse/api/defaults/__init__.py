"""Upstream's defaulting (``SetObjectDefaults_*``) for every kind pilothouse serves.

:func:`apply_defaults` changes an object in place exactly as upstream's decoder does,
so users read back what they would read from Kubernetes 1.32 (``restartPolicy:
Always``, ``protocol: TCP``, ``replicas: 1``, quantities in canonical spelling…).
It is idempotent: running it again on a defaulted object changes nothing.

What upstream sets elsewhere is not done here (the registry and admission own it):
cluster IPs, IP families and node ports of Services; ``spec.finalizers:
[kubernetes]`` of Namespaces; a Pod's ``priority``, ``preemptionPolicy``, service
account and its token volume, and default tolerations; a Job's generated selector.

No I/O here: this package is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pilothouse.api.defaults import admissionregistration, autoscaling, core, workloads

Defaulter = Callable[[dict[str, Any]], None]


def _storage_class(obj: dict[str, Any]) -> None:
    if obj.get("reclaimPolicy") is None:
        obj["reclaimPolicy"] = "Delete"
    if obj.get("volumeBindingMode") is None:
        obj["volumeBindingMode"] = "Immediate"


def _priority_class(obj: dict[str, Any]) -> None:
    if obj.get("preemptionPolicy") is None:
        obj["preemptionPolicy"] = "PreemptLowerPriority"


def _endpoint_slice(obj: dict[str, Any]) -> None:
    ports = obj.get("ports")
    for port in ports if isinstance(ports, list) else ():
        if isinstance(port, dict):
            if port.get("name") is None:
                port["name"] = ""
            if port.get("protocol") is None:
                port["protocol"] = "TCP"


def _rbac_binding(obj: dict[str, Any]) -> None:
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = "rbac.authorization.k8s.io"
    subjects = obj.get("subjects")
    for subject in subjects if isinstance(subjects, list) else ():
        if (
            isinstance(subject, dict)
            and not subject.get("apiGroup")
            and subject.get("kind") in ("User", "Group")
        ):
            subject["apiGroup"] = "rbac.authorization.k8s.io"


def _csr(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict) and spec.get("usages") is None:
        spec["usages"] = ["digital signature", "key encipherment"]
    status = obj.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for condition in conditions if isinstance(conditions, list) else ():
        if isinstance(condition, dict) and not condition.get("status"):
            condition["status"] = "True"


_DEFAULTERS: dict[tuple[str, str], Defaulter] = {
    **{("", kind): fn for kind, fn in core.DEFAULTERS.items()},
    ("", "ReplicationController"): workloads.replication_controller,
    **{("apps", kind): fn for kind, fn in workloads.APPS.items()},
    **{("batch", kind): fn for kind, fn in workloads.BATCH.items()},
    ("storage.k8s.io", "StorageClass"): _storage_class,
    ("scheduling.k8s.io", "PriorityClass"): _priority_class,
    ("discovery.k8s.io", "EndpointSlice"): _endpoint_slice,
    ("rbac.authorization.k8s.io", "RoleBinding"): _rbac_binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _rbac_binding,
    ("certificates.k8s.io", "CertificateSigningRequest"): _csr,
    **admissionregistration.DEFAULTERS,
}


def defaulter(group: str, version: str, kind: str) -> Defaulter | None:
    """The defaulting function of a kind, or None when upstream defaults nothing."""
    if (group, kind) == ("autoscaling", "HorizontalPodAutoscaler"):
        # Kept in v2 whichever version is written: the stored form is defaulted.
        return autoscaling.horizontal_pod_autoscaler
    if version != "v1":
        return None
    return _DEFAULTERS.get((group, kind))


def apply_defaults(group: str, version: str, kind: str, obj: dict[str, Any]) -> None:
    """Set upstream's defaults on ``obj`` (a JSON-shaped dict) in place."""
    fn = defaulter(group, version, kind)
    if fn is not None and isinstance(obj, dict):
        fn(obj)
