"""Per-kind strategies, listed explicitly (no registration by import side effect).

Kinds not listed use :class:`~pilothouse.apiserver.registry.strategy.Strategy`
with generation tracking switched on where upstream's strategy sets it.
"""

from __future__ import annotations

from pilothouse.api import resources
from pilothouse.apiserver.registry.strategies import (
    certificates,
    customresourcedefinition,
    namespace,
    node,
    pod,
    service,
    workload,
)
from pilothouse.apiserver.registry.strategy import Strategy

_BY_RESOURCE: dict[tuple[str, str], type[Strategy]] = {
    ("", "pods"): pod.PodStrategy,
    ("", "namespaces"): namespace.NamespaceStrategy,
    ("", "nodes"): node.NodeStrategy,
    ("", "services"): service.ServiceStrategy,
    ("", "endpoints"): workload.CreateOnUpdateStrategy,
    ("apps", "deployments"): workload.DeploymentStrategy,
    ("apps", "replicasets"): workload.GenerationStrategy,
    ("apps", "statefulsets"): workload.GenerationStrategy,
    ("apps", "daemonsets"): workload.DaemonSetStrategy,
    ("batch", "jobs"): workload.JobStrategy,
    ("batch", "cronjobs"): workload.GenerationStrategy,
    ("policy", "poddisruptionbudgets"): workload.GenerationStrategy,
    ("certificates.k8s.io", "certificatesigningrequests"): certificates.CSRStrategy,
    (
        "apiextensions.k8s.io",
        "customresourcedefinitions",
    ): customresourcedefinition.CustomResourceDefinitionStrategy,
}


def for_resource(resource: resources.Resource, registry: resources.Registry) -> Strategy:
    """The strategy of a resource. Resources stored in another version's shape
    (events.k8s.io Events, autoscaling/v1 HorizontalPodAutoscalers) validate and
    default as their storage kind."""
    if resource.group == "events.k8s.io":
        core = registry.by_path("", "v1", "events")
        assert core is not None
        return Strategy(core)
    if (resource.group, resource.version, resource.plural) == (
        "autoscaling",
        "v1",
        "horizontalpodautoscalers",
    ):
        stored = registry.by_path("autoscaling", "v2", "horizontalpodautoscalers")
        assert stored is not None
        return Strategy(stored)
    cls = _BY_RESOURCE.get((resource.group, resource.plural), Strategy)
    return cls(resource)
