"""Defaults of every kind other than Pods: what users read back after a create."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from pilothouse.api.defaults import apply_defaults, defaulter

TEMPLATE = {
    "metadata": {"labels": {"app": "x"}},
    "spec": {"containers": [{"name": "c", "image": "c:1"}]},
}


def defaulted(group: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    apply_defaults(group, "v1", kind, obj)
    return obj


def workload(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "w"}, "spec": {"template": copy.deepcopy(TEMPLATE), **spec}}


def test_deployment() -> None:
    spec = defaulted("apps", "Deployment", workload())["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    assert "enableServiceLinks" not in spec["template"]["spec"]


def test_deployment_recreate_gets_no_rolling_update() -> None:
    spec = defaulted("apps", "Deployment", workload(strategy={"type": "Recreate"}, replicas=0))[
        "spec"
    ]
    assert spec["strategy"] == {"type": "Recreate"}
    assert spec["replicas"] == 0


def test_replica_set() -> None:
    spec = defaulted("apps", "ReplicaSet", workload())["spec"]
    assert spec["replicas"] == 1
    assert spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_stateful_set() -> None:
    claim = {
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1024Mi"}},
        },
    }
    spec = defaulted("apps", "StatefulSet", workload(volumeClaimTemplates=[claim]))["spec"]
    assert spec["replicas"] == 1
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    template = spec["volumeClaimTemplates"][0]
    assert template["spec"]["volumeMode"] == "Filesystem"
    assert template["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert template["status"] == {"phase": "Pending"}


def test_stateful_set_on_delete_strategy() -> None:
    spec = defaulted("apps", "StatefulSet", workload(updateStrategy={"type": "OnDelete"}))["spec"]
    assert spec["updateStrategy"] == {"type": "OnDelete"}


def test_daemon_set() -> None:
    spec = defaulted("apps", "DaemonSet", workload())["spec"]
    assert spec["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert spec["revisionHistoryLimit"] == 10


def test_job() -> None:
    obj = defaulted("batch", "Job", workload())
    spec = obj["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert spec["manualSelector"] is False
    assert obj["metadata"]["labels"] == {"app": "x"}


@pytest.mark.parametrize(
    ("given", "completions", "parallelism"),
    [
        ({"completions": 5}, 5, 1),
        ({"parallelism": 3}, None, 3),
        ({"completions": 2, "parallelism": 4}, 2, 4),
    ],
)
def test_job_completions_and_parallelism(
    given: dict[str, int], completions: int | None, parallelism: int
) -> None:
    spec = defaulted("batch", "Job", workload(**given))["spec"]
    assert spec.get("completions") == completions
    assert spec["parallelism"] == parallelism


def test_job_with_pod_failure_policy() -> None:
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
    spec = defaulted("batch", "Job", workload(podFailurePolicy=policy, backoffLimitPerIndex=1))[
        "spec"
    ]
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["backoffLimit"] == 2**31 - 1
    assert spec["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"] == "True"


def test_cron_job() -> None:
    obj = {
        "metadata": {"name": "c"},
        "spec": {
            "schedule": "@hourly",
            "jobTemplate": {"spec": {"template": copy.deepcopy(TEMPLATE)}},
        },
    }
    spec = defaulted("batch", "CronJob", obj)["spec"]
    assert spec["concurrencyPolicy"] == "Allow"
    assert spec["suspend"] is False
    assert spec["successfulJobsHistoryLimit"] == 3
    assert spec["failedJobsHistoryLimit"] == 1
    job_spec = spec["jobTemplate"]["spec"]
    assert job_spec["template"]["spec"]["restartPolicy"] == "Always"
    assert "backoffLimit" not in job_spec


def test_service() -> None:
    obj = {
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]},
    }
    spec = defaulted("", "Service", obj)["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in spec
    assert spec["ports"] == [
        {"port": 80, "protocol": "TCP", "targetPort": 80},
        {"port": 53, "protocol": "UDP", "targetPort": "dns"},
    ]


def test_service_node_port_and_load_balancer() -> None:
    node_port = defaulted("", "Service", {"spec": {"type": "NodePort", "ports": [{"port": 80}]}})[
        "spec"
    ]
    assert node_port["externalTrafficPolicy"] == "Cluster"
    assert "allocateLoadBalancerNodePorts" not in node_port
    lb = defaulted(
        "",
        "Service",
        {
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}},
        },
    )
    assert lb["spec"]["allocateLoadBalancerNodePorts"] is True
    assert lb["status"]["loadBalancer"]["ingress"][0]["ipMode"] == "VIP"
    external_name = defaulted(
        "", "Service", {"spec": {"type": "ExternalName", "externalName": "a.b"}}
    )["spec"]
    assert "internalTrafficPolicy" not in external_name


def test_service_session_affinity() -> None:
    client_ip = defaulted(
        "", "Service", {"spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 1}]}}
    )["spec"]
    assert client_ip["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    none = defaulted(
        "", "Service", {"spec": {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}}
    )["spec"]
    assert "sessionAffinityConfig" not in none


def test_endpoints_and_endpoint_slices() -> None:
    ep = defaulted(
        "", "Endpoints", {"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}
    )
    assert ep["subsets"][0]["ports"][0]["protocol"] == "TCP"
    eps = defaulted(
        "discovery.k8s.io", "EndpointSlice", {"addressType": "IPv4", "ports": [{"port": 80}]}
    )
    assert eps["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]


def test_namespace() -> None:
    ns = defaulted("", "Namespace", {"metadata": {"name": "team-a"}})
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert ns["status"] == {"phase": "Active"}


def test_node() -> None:
    node = defaulted(
        "",
        "Node",
        {"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "4", "memory": "8192Mi"}}},
    )
    assert node["status"]["capacity"] == {"cpu": "4", "memory": "8Gi"}
    assert node["status"]["allocatable"] == {"cpu": "4", "memory": "8Gi"}


def test_secret() -> None:
    secret = defaulted(
        "",
        "Secret",
        {"metadata": {"name": "s"}, "data": {"a": "YQ=="}, "stringData": {"b": "hello"}},
    )
    assert secret["type"] == "Opaque"
    assert "stringData" not in secret
    assert secret["data"] == {"a": "YQ==", "b": base64.b64encode(b"hello").decode()}


def test_persistent_volumes_and_claims() -> None:
    pv = defaulted(
        "",
        "PersistentVolume",
        {"spec": {"capacity": {"storage": "1024Mi"}, "hostPath": {"path": "/d"}}},
    )
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["volumeMode"] == "Filesystem"
    assert pv["spec"]["capacity"] == {"storage": "1Gi"}
    assert pv["spec"]["hostPath"]["type"] == ""
    assert pv["status"] == {"phase": "Pending"}
    pvc = defaulted(
        "", "PersistentVolumeClaim", {"spec": {"resources": {"requests": {"storage": "1.5Gi"}}}}
    )
    assert pvc["spec"]["volumeMode"] == "Filesystem"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1536Mi"
    assert pvc["status"] == {"phase": "Pending"}


def test_storage_and_priority_classes() -> None:
    sc = defaulted("storage.k8s.io", "StorageClass", {"provisioner": "x"})
    assert (sc["reclaimPolicy"], sc["volumeBindingMode"]) == ("Delete", "Immediate")
    pc = defaulted("scheduling.k8s.io", "PriorityClass", {"value": 10})
    assert pc["preemptionPolicy"] == "PreemptLowerPriority"


@pytest.mark.parametrize(
    ("group", "kind"),
    [
        ("", "ConfigMap"),
        ("coordination.k8s.io", "Lease"),
        ("policy", "PodDisruptionBudget"),
        ("", "Event"),
        ("apps", "ControllerRevision"),
    ],
)
def test_kinds_without_defaults(group: str, kind: str) -> None:
    obj = {"metadata": {"name": "x"}, "spec": {}}
    assert defaulter(group, "v1", kind) is None
    assert defaulted(group, kind, obj) == obj


def test_unknown_version_is_untouched() -> None:
    obj: dict[str, Any] = {"spec": {}}
    apply_defaults("apps", "v1beta1", "Deployment", obj)
    assert obj == {"spec": {}}


def test_read_back_conversions() -> None:
    node = defaulted("", "Node", {"spec": {"podCIDR": "10.42.1.0/24"}})
    assert node["spec"]["podCIDRs"] == ["10.42.1.0/24"]
    node = defaulted("", "Node", {"spec": {"podCIDRs": ["10.42.2.0/24", "fd00::/64"]}})
    assert node["spec"]["podCIDR"] == "10.42.2.0/24"
    deployment = workload()
    deployment["spec"]["template"]["spec"]["serviceAccountName"] = "builder"
    spec = defaulted("apps", "Deployment", deployment)["spec"]["template"]["spec"]
    assert spec["serviceAccount"] == "builder"
    legacy = workload()
    legacy["spec"]["template"]["spec"]["serviceAccount"] = "old"
    spec = defaulted("apps", "Deployment", legacy)["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "old"
