"""Per-kind strategies, listed explicitly (no registration by import side effect).

Kinds not listed use :class:`~pilothouse.apiserver.registry.strategy.Strategy`
with generation tracking switched on where upstream's strategy sets it.
"""

from __future__ import annotations

from pilothouse.api import resources
from pilothouse.apiserver.registry import deletion
from pilothouse.apiserver.registry.strategies import (
    certificates,
    customresourcedefinition,
    namespace,
    node,
    pod,
    service,
    storage,
    workload,
)
from pilothouse.apiserver.registry.strategy import Strategy

_BY_RESOURCE: dict[tuple[str, str], type[Strategy]] = {
    ("", "pods"): pod.PodStrategy,
    ("", "namespaces"): namespace.NamespaceStrategy,
    ("", "nodes"): node.NodeStrategy,
    ("", "services"): service.ServiceStrategy,
    ("", "persistentvolumes"): storage.PersistentVolumeStrategy,
    ("", "endpoints"): workload.CreateOnUpdateStrategy,
    ("", "replicationcontrollers"): workload.GenerationStrategy,
    ("apps", "deployments"): workload.DeploymentStrategy,
    ("apps", "replicasets"): workload.GenerationStrategy,
    ("apps", "statefulsets"): workload.GenerationStrategy,
    ("apps", "daemonsets"): workload.DaemonSetStrategy,
    ("batch", "jobs"): workload.JobStrategy,
    ("batch", "cronjobs"): workload.GenerationStrategy,
    ("policy", "poddisruptionbudgets"): workload.GenerationStrategy,
    ("certificates.k8s.io", "certificatesigningrequests"): certificates.CSRStrategy,
    # Its status controller compares status.observedGeneration with the generation.
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"): workload.GenerationStrategy,
    (
        "apiextensions.k8s.io",
        "customresourcedefinitions",
    ): customresourcedefinition.CustomResourceDefinitionStrategy,
}


# Kinds whose DELETE answers with the object (deleted, or marked for deletion)
# rather than a success Status: upstream's ``ReturnDeletedObject: true`` in
# pkg/registry/<group>/<kind>/storage/storage.go. Every other kind answers an
# immediate deletion with ``{"kind":"Status",…,"status":"Success","details":…}``
# and a deferred one (finalizers) with the object.
RETURN_DELETED_OBJECT: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "pods"),
        ("", "services"),
        ("", "namespaces"),
        ("", "serviceaccounts"),
        ("", "persistentvolumes"),
        ("", "persistentvolumeclaims"),
        ("", "podtemplates"),
        ("", "resourcequotas"),
        ("storage.k8s.io", "storageclasses"),
        ("storage.k8s.io", "volumeattachments"),
        ("storage.k8s.io", "csidrivers"),
        ("storage.k8s.io", "csinodes"),
        ("storage.k8s.io", "volumeattributesclasses"),
    }
)

# Kinds whose DELETE without a propagation policy orphans dependents (upstream's
# DefaultGarbageCollectionPolicy returning OrphanDependents, kept for clients
# older than server-side garbage collection), with the warning upstream sends then.
ORPHAN_BY_DEFAULT: dict[tuple[str, str], str] = {
    ("", "replicationcontrollers"): "",
    ("batch", "jobs"): (
        "child pods are preserved by default when jobs are deleted; set "
        "propagationPolicy=Background to remove them or set propagationPolicy=Orphan "
        "to suppress this warning"
    ),
}


def for_resource(resource: resources.Resource, registry: resources.Registry) -> Strategy:
    """The strategy of a resource. Resources stored in another version's shape
    (events.k8s.io Events, autoscaling/v1 HorizontalPodAutoscalers) validate and
    default as their storage kind."""
    if resource.group == "events.k8s.io":
        core = registry.by_path("", "v1", "events")
        assert core is not None
        return Strategy(core)
    key = (resource.group, resource.plural)
    if (resource.group, resource.version, resource.plural) == (
        "autoscaling",
        "v1",
        "horizontalpodautoscalers",
    ):
        stored = registry.by_path("autoscaling", "v2", "horizontalpodautoscalers")
        assert stored is not None
        strategy = Strategy(stored)
    else:
        strategy = _BY_RESOURCE.get(key, Strategy)(resource)
    strategy.return_deleted_object = key in RETURN_DELETED_OBJECT
    if key in ORPHAN_BY_DEFAULT:
        strategy.default_gc_policy = deletion.ORPHAN_POLICY
        strategy.default_gc_warning = ORPHAN_BY_DEFAULT[key]
    return strategy
