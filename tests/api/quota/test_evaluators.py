"""What pods, Services, claims and other objects use under a quota (upstream's evaluators)."""

from __future__ import annotations

from typing import Any

from pilothouse.api import resources
from pilothouse.api.quota import evaluators, resourcelist

NOW = 1_800_000_000.0


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"containers": list(containers), **spec}}


def container(name: str = "c", requests: Any = None, limits: Any = None) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if requests:
        res["requests"] = requests
    if limits:
        res["limits"] = limits
    return {"name": name, "image": "busybox", "resources": res}


def usage(evaluator: evaluators.Evaluator, obj: dict[str, Any]) -> dict[str, str]:
    return resourcelist.dump(evaluator.usage(obj, NOW))


def test_pod_usage_counts_requests_limits_and_the_pod() -> None:
    p = pod(
        container("a", {"cpu": "100m", "memory": "64Mi"}, {"cpu": "200m"}),
        container("b", {"cpu": "150m"}, {"cpu": "300m", "memory": "128Mi"}),
    )
    assert usage(evaluators.PodEvaluator(), p) == {
        "count/pods": "1",
        "cpu": "250m",
        "limits.cpu": "500m",
        "limits.memory": "128Mi",
        "memory": "64Mi",
        "pods": "1",
        "requests.cpu": "250m",
        "requests.memory": "64Mi",
    }


def test_init_containers_and_sidecars_as_upstreams_pod_requests() -> None:
    p = pod(
        container("app", {"cpu": "100m"}),
        initContainers=[
            {**container("setup", {"cpu": "1"})},
            {**container("sidecar", {"cpu": "50m"}), "restartPolicy": "Always"},
        ],
    )
    # The sidecar runs beside the app (150m); the setup step needed 1 CPU alone.
    assert usage(evaluators.PodEvaluator(), p)["requests.cpu"] == "1"
    p["spec"]["initContainers"].reverse()  # sidecar first: setup runs beside it
    assert usage(evaluators.PodEvaluator(), p)["requests.cpu"] == "1050m"


def test_finished_pods_count_only_as_objects() -> None:
    p = pod(container(requests={"cpu": "1"}))
    p["status"] = {"phase": "Succeeded"}
    assert usage(evaluators.PodEvaluator(), p) == {"count/pods": "1"}
    p["status"] = {"phase": "Running"}
    p["metadata"].update(deletionTimestamp="2020-01-01T00:00:00Z", deletionGracePeriodSeconds=30)
    assert usage(evaluators.PodEvaluator(), p) == {"count/pods": "1"}


def test_extended_and_hugepages_resources() -> None:
    p = pod(
        container(
            requests={"example.com/gpu": "1", "hugepages-2Mi": "4Mi", "memory": "1Gi"},
            limits={"example.com/gpu": "1", "hugepages-2Mi": "4Mi", "memory": "1Gi"},
        )
    )
    got = usage(evaluators.PodEvaluator(), p)
    assert got["requests.example.com/gpu"] == "1"
    assert got["hugepages-2Mi"] == got["requests.hugepages-2Mi"] == "4Mi"
    assert got["limits.hugepages-2Mi"] == "4Mi"
    assert "example.com/gpu" not in got


def test_scopes() -> None:
    e = evaluators.PodEvaluator()
    best_effort = pod(container())
    burstable = pod(container(requests={"cpu": "1"}))
    terminating = pod(container(), activeDeadlineSeconds=30)
    critical = pod(container(), priorityClassName="high")

    def scope(name: str, op: str = "Exists", values: Any = None) -> dict[str, Any]:
        return {"scopeName": name, "operator": op, "values": values or []}

    assert e.matches_scope(scope("BestEffort"), best_effort)
    assert not e.matches_scope(scope("BestEffort"), burstable)
    assert e.matches_scope(scope("NotBestEffort"), burstable)
    assert e.matches_scope(scope("Terminating"), terminating)
    assert not e.matches_scope(scope("Terminating"), best_effort)
    assert e.matches_scope(scope("NotTerminating"), best_effort)
    assert e.matches_scope(scope("PriorityClass"), critical)
    assert not e.matches_scope(scope("PriorityClass"), best_effort)
    assert e.matches_scope(scope("PriorityClass", "In", ["high", "low"]), critical)
    assert not e.matches_scope(scope("PriorityClass", "NotIn", ["high"]), critical)
    assert e.matches_scope(scope("PriorityClass", "NotIn", ["high"]), best_effort)
    assert e.matches_scope(scope("PriorityClass", "DoesNotExist"), best_effort)


def test_quota_matches_by_its_status_hard_and_scopes() -> None:
    e = evaluators.PodEvaluator()
    quota = {
        "metadata": {"name": "q"},
        "spec": {"scopes": ["BestEffort"]},
        "status": {"hard": {"pods": "2"}},
    }
    assert e.matches(quota, pod(container()))
    assert not e.matches(quota, pod(container(requests={"cpu": "1"})))
    assert not e.matches({"spec": {}, "status": {"hard": {"services": "1"}}}, pod(container()))
    assert not e.matches({"spec": {"hard": {"pods": "1"}}}, pod(container()))  # no status yet


def test_constraints_words_missing_requests_as_upstream() -> None:
    e = evaluators.PodEvaluator()
    p = pod(container("a", {"cpu": "1"}), container("b"))
    message = e.constraints(["requests.cpu", "limits.memory", "pods"], p)
    assert message == "must specify limits.memory for: a,b; requests.cpu for: b"
    assert e.constraints(["pods", "count/pods"], p) is None


def test_services() -> None:
    e = evaluators.ServiceEvaluator()
    assert usage(e, {"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}) == {
        "count/services": "1",
        "services": "1",
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }
    nodeport = usage(e, {"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}})
    assert nodeport["services.nodeports"] == "2"
    lb = {
        "spec": {
            "type": "LoadBalancer",
            "allocateLoadBalancerNodePorts": False,
            "ports": [{"port": 80, "nodePort": 30001}, {"port": 81}],
        }
    }
    assert usage(e, lb)["services.nodeports"] == "1"
    assert usage(e, lb)["services.loadbalancers"] == "1"
    assert e.handles("UPDATE") and e.handles("CREATE")


def test_claims_per_storage_class() -> None:
    e = evaluators.PersistentVolumeClaimEvaluator()
    claim = {"spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "5Gi"}}}}
    assert usage(e, claim) == {
        "count/persistentvolumeclaims": "1",
        "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
        "gold.storageclass.storage.k8s.io/requests.storage": "5Gi",
        "persistentvolumeclaims": "1",
        "requests.storage": "5Gi",
    }
    assert e.matching_resources(
        ["requests.storage", "gold.storageclass.storage.k8s.io/requests.storage", "pods"]
    ) == ["requests.storage", "gold.storageclass.storage.k8s.io/requests.storage"]


def test_object_counts_and_legacy_names() -> None:
    registry = evaluators.Registry(resources.DEFAULT)
    configmaps = registry.for_resource("", "configmaps")
    assert usage(configmaps, {}) == {"configmaps": "1", "count/configmaps": "1"}
    deployments = registry.for_resource("apps", "deployments")
    assert deployments.matching_resources(["count/deployments.apps", "pods"]) == [
        "count/deployments.apps"
    ]
    assert registry.get("", "events") is None  # never charged
    assert registry.tracked(["pods", "count/widgets.example.com", "count/secrets"]) == [
        "pods",
        "count/secrets",
    ]
    assert not deployments.handles("UPDATE")


def test_scope_validity_per_resource() -> None:
    assert evaluators.scope_valid_for_resource("Terminating", "requests.cpu")
    assert not evaluators.scope_valid_for_resource("Terminating", "services")
    assert evaluators.scope_valid_for_resource("BestEffort", "pods")
    assert not evaluators.scope_valid_for_resource("BestEffort", "requests.cpu")
    assert evaluators.is_standard_quota_resource("requests.hugepages-2Mi")
    assert not evaluators.is_standard_quota_resource("storage")
