"""Building blocks for the registry strategies' ``PrepareForCreate``/``PrepareForUpdate``.

These are the pieces of upstream's strategies that compute something from the
object (a Job's generated selector, a Service's cluster IP pair, a gated Pod's
condition); a Pod's QoS class is :func:`pilothouse.api.qos.pod_qos_class`;
resetting status and bumping ``metadata.generation`` are left to the strategies.
Each function changes the object in place.
"""

from __future__ import annotations

from typing import Any

JOB_NAME_LABELS = ("job-name", "batch.kubernetes.io/job-name")
CONTROLLER_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")
SCHEDULING_GATED_MESSAGE = "Scheduling is blocked due to non-empty scheduling gates"


def scheduling_gated_condition(pod: dict[str, Any]) -> None:
    """A gated pod is created with a ``PodScheduled=False`` condition (reason SchedulingGated)."""
    spec = pod.get("spec")
    if not isinstance(spec, dict) or not spec.get("schedulingGates"):
        return
    status = pod.setdefault("status", {})
    conditions = status.setdefault("conditions", [])
    if any(isinstance(c, dict) and c.get("type") == "PodScheduled" for c in conditions):
        return
    conditions.append(
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "SchedulingGated",
            "message": SCHEDULING_GATED_MESSAGE,
        }
    )


def generate_job_selector(job: dict[str, Any]) -> None:
    """Label the template with the job's name and uid and select on the uid.

    Upstream does this on create unless ``spec.manualSelector`` is true; the object's
    ``metadata.uid`` must already be set. Labels the user set are left alone (a
    conflict then fails validation).
    """
    spec = job.get("spec")
    metadata = job.get("metadata")
    if not isinstance(spec, dict) or not isinstance(metadata, dict):
        return
    if spec.get("manualSelector") is True:
        return
    template = spec.setdefault("template", {})
    template_meta = template.setdefault("metadata", {})
    labels = template_meta.get("labels")
    if not isinstance(labels, dict):
        labels = template_meta["labels"] = {}
    for key in JOB_NAME_LABELS:
        labels.setdefault(key, metadata.get("name", ""))
    for key in CONTROLLER_UID_LABELS:
        labels.setdefault(key, metadata.get("uid", ""))
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        selector = spec["selector"] = {}
    match_labels = selector.get("matchLabels")
    if not isinstance(match_labels, dict):
        match_labels = selector["matchLabels"] = {}
    match_labels.setdefault(CONTROLLER_UID_LABELS[1], metadata.get("uid", ""))


def normalize_cluster_ips(service: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    """Keep ``spec.clusterIP`` and ``spec.clusterIPs`` in step (upstream's normalizeClusterIPs).

    On create a lone ``clusterIP`` (an old client) fills ``clusterIPs``. On update a
    client that omitted ``clusterIPs`` keeps the old ones, and a changed or cleared
    ``clusterIP`` carries ``clusterIPs`` along when the client left those as they were.
    """
    spec = service.get("spec")
    if not isinstance(spec, dict):
        return
    ip = spec.get("clusterIP") or ""
    ips = spec.get("clusterIPs") or []
    old_spec = old.get("spec") if isinstance(old, dict) else None
    if not isinstance(old_spec, dict):
        if ip and not ips:
            spec["clusterIPs"] = [ip]
        return
    old_ip = old_spec.get("clusterIP") or ""
    old_ips = old_spec.get("clusterIPs") or []
    if old_ips and not ips and old_ip == ip:
        spec["clusterIPs"] = ips = list(old_ips)
    if old_ip != ip and ips == old_ips:
        if old_ip and not ip:
            spec.pop("clusterIPs", None)
        else:
            spec["clusterIPs"] = [ip]


def ensure_namespace_finalizer(namespace: dict[str, Any]) -> None:
    """New namespaces carry the ``kubernetes`` finalizer in ``spec.finalizers``."""
    spec = namespace.setdefault("spec", {})
    finalizers = spec.get("finalizers")
    if not isinstance(finalizers, list):
        finalizers = spec["finalizers"] = []
    if "kubernetes" not in finalizers:
        finalizers.append("kubernetes")
