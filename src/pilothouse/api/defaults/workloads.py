"""Defaults for apps/v1 and batch/v1 kinds (``pkg/apis/{apps,batch}/v1/defaults.go``).

Every pod template gets the pod-spec defaults of :mod:`.podspec`; StatefulSet
volume claim templates get the PVC defaults (including ``status.phase: Pending``,
which upstream shows there too).
"""

from __future__ import annotations

from typing import Any

from pilothouse.api.defaults import core, podspec


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    if spec is None:
        spec = obj["spec"] = {}
    return spec if isinstance(spec, dict) else {}


def _child(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    """``obj[key]`` as a dict, created when missing; None when it holds another type."""
    value = obj.get(key)
    if value is None:
        value = obj[key] = {}
    return value if isinstance(value, dict) else None


def deployment(obj: dict[str, Any]) -> None:
    spec = _spec(obj)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = _child(spec, "strategy")
    if strategy is not None:
        if not strategy.get("type"):
            strategy["type"] = "RollingUpdate"
        if strategy["type"] == "RollingUpdate":
            rolling = _child(strategy, "rollingUpdate")
            if rolling is not None:
                if rolling.get("maxUnavailable") is None:
                    rolling["maxUnavailable"] = "25%"
                if rolling.get("maxSurge") is None:
                    rolling["maxSurge"] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    podspec.default_pod_template(spec.get("template"))


def replica_set(obj: dict[str, Any]) -> None:
    spec = _spec(obj)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    podspec.default_pod_template(spec.get("template"))


def replication_controller(obj: dict[str, Any]) -> None:
    """core/v1 ReplicationController: a missing selector and missing object labels
    are the template's labels (``SetDefaults_ReplicationController``)."""
    spec = _spec(obj)
    template = spec.get("template")
    template_meta = template.get("metadata") if isinstance(template, dict) else None
    labels = template_meta.get("labels") if isinstance(template_meta, dict) else None
    if isinstance(labels, dict):
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        metadata = obj.get("metadata")
        if isinstance(metadata, dict) and not metadata.get("labels"):
            metadata["labels"] = dict(labels)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    podspec.default_pod_template(template)


def daemon_set(obj: dict[str, Any]) -> None:
    spec = _spec(obj)
    strategy = _child(spec, "updateStrategy")
    if strategy is not None:
        if not strategy.get("type"):
            strategy["type"] = "RollingUpdate"
        if strategy["type"] == "RollingUpdate":
            rolling = _child(strategy, "rollingUpdate")
            if rolling is not None:
                if rolling.get("maxUnavailable") is None:
                    rolling["maxUnavailable"] = 1
                if rolling.get("maxSurge") is None:
                    rolling["maxSurge"] = 0
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    podspec.default_pod_template(spec.get("template"))


def stateful_set(obj: dict[str, Any]) -> None:
    spec = _spec(obj)
    if spec.get("serviceName") is None:
        # Optional, but not omitempty in 1.32's apps/v1 (it became omitempty in 1.33):
        # a set without one is served with ``serviceName: ""`` and its pods get no subdomain.
        spec["serviceName"] = ""
    if not spec.get("podManagementPolicy"):
        spec["podManagementPolicy"] = "OrderedReady"
    strategy = _child(spec, "updateStrategy")
    if strategy is not None:
        if not strategy.get("type"):
            strategy["type"] = "RollingUpdate"
            if strategy.get("rollingUpdate") is None:
                strategy["rollingUpdate"] = {}
        rolling = strategy.get("rollingUpdate")
        if strategy["type"] != "RollingUpdate" or not isinstance(rolling, dict):
            rolling = {}
        if rolling.get("partition") is None:
            rolling["partition"] = 0
    retention = _child(spec, "persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        if not retention.get("whenDeleted"):
            retention["whenDeleted"] = "Retain"
        if not retention.get("whenScaled"):
            retention["whenScaled"] = "Retain"
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    podspec.default_pod_template(spec.get("template"))
    templates = spec.get("volumeClaimTemplates")
    for template in templates if isinstance(templates, list) else ():
        core.claim_template(template)


def _default_pod_failure_policy(spec: dict[str, Any]) -> None:
    policy = spec.get("podFailurePolicy")
    rules = policy.get("rules") if isinstance(policy, dict) else None
    for rule in rules if isinstance(rules, list) else ():
        patterns = rule.get("onPodConditions") if isinstance(rule, dict) else None
        for pattern in patterns if isinstance(patterns, list) else ():
            if isinstance(pattern, dict) and not pattern.get("status"):
                pattern["status"] = "True"


def job(obj: dict[str, Any]) -> None:
    spec = _spec(obj)
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        # With a per-index limit the global one is effectively unbounded.
        spec["backoffLimit"] = 2**31 - 1 if spec.get("backoffLimitPerIndex") is not None else 6
    template = spec.get("template")
    template_meta = template.get("metadata") if isinstance(template, dict) else None
    template_labels = template_meta.get("labels") if isinstance(template_meta, dict) else None
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    if isinstance(template_labels, dict) and not metadata.get("labels"):
        metadata["labels"] = dict(template_labels)
    if spec.get("completionMode") is None:
        spec["completionMode"] = "NonIndexed"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    _default_pod_failure_policy(spec)
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = (
            "Failed" if spec.get("podFailurePolicy") is not None else "TerminatingOrFailed"
        )
    if spec.get("manualSelector") is None:
        spec["manualSelector"] = False
    podspec.default_pod_template(template)


def cron_job(obj: dict[str, Any]) -> None:
    spec = _spec(obj)
    if not spec.get("concurrencyPolicy"):
        spec["concurrencyPolicy"] = "Allow"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    job_template = spec.get("jobTemplate")
    job_spec = job_template.get("spec") if isinstance(job_template, dict) else None
    if isinstance(job_spec, dict):
        _default_pod_failure_policy(job_spec)
        podspec.default_pod_template(job_spec.get("template"))


APPS = {
    "Deployment": deployment,
    "ReplicaSet": replica_set,
    "DaemonSet": daemon_set,
    "StatefulSet": stateful_set,
}

BATCH = {"Job": job, "CronJob": cron_job}
