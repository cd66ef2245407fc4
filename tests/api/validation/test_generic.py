"""The generic checks of every create and update, status writes, and speed."""

from __future__ import annotations

import copy
import time
from typing import Any

from pilothouse.api import errors
from pilothouse.api.defaults import apply_defaults
from pilothouse.api.validation import validate_create, validate_status_update, validate_update

Obj = dict[str, Any]


def codes(errs: list[errors.FieldError]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in errs]


def config_map(**meta: Any) -> Obj:
    return {
        "metadata": {
            "name": "cfg",
            "namespace": "default",
            "uid": "u",
            "resourceVersion": "1",
            **meta,
        },
        "data": {"a": "b"},
    }


def test_identity_fields_are_immutable() -> None:
    old = config_map(creationTimestamp="2024-01-01T00:00:00Z")
    for key, value in (
        ("name", "other"),
        ("namespace", "kube-system"),
        ("uid", "v"),
        ("creationTimestamp", "2025-01-01T00:00:00Z"),
    ):
        new = copy.deepcopy(old)
        new["metadata"][key] = value
        assert (f"metadata.{key}", errors.INVALID_VALUE) in codes(
            validate_update("", "v1", "ConfigMap", new, old)
        ), key


def test_include_generic_false_leaves_identity_to_the_caller() -> None:
    old = config_map()
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"a": "b"}
    assert validate_update("", "v1", "ConfigMap", new, old, include_generic=False) == []
    renamed = copy.deepcopy(old)
    renamed["metadata"]["namespace"] = "x"
    # The kind's own rules still include upstream's ValidateObjectMetaUpdate.
    assert ("metadata.namespace", errors.INVALID_VALUE) in codes(
        validate_update("", "v1", "ConfigMap", renamed, old, include_generic=False)
    )


def test_generic_create_runs_only_when_kind_rules_pass() -> None:
    bad = {"metadata": {"name": "Bad/Name", "namespace": "default"}}
    # The kind's DNS-subdomain rule reports first; the path-segment rule is not repeated.
    assert codes(validate_create("", "v1", "ConfigMap", bad)) == [
        ("metadata.name", errors.INVALID_VALUE)
    ]
    cluster_scoped_with_ns = {
        "metadata": {"name": "ok", "namespace": "default"},
        "provisioner": "x",
        "volumeBindingMode": "Immediate",
    }
    assert codes(
        validate_create("storage.k8s.io", "v1", "StorageClass", cluster_scoped_with_ns)
    ) == [("metadata.namespace", errors.FIELD_FORBIDDEN)]


def test_no_new_finalizers_while_deleting() -> None:
    old = config_map(deletionTimestamp="2024-01-01T00:00:00Z", finalizers=["a.io/x"])
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"].append("a.io/y")
    assert ("metadata.finalizers", errors.FIELD_FORBIDDEN) in codes(
        validate_update("", "v1", "ConfigMap", new, old)
    )


def test_invalid_status_message_is_deduplicated() -> None:
    old = config_map()
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "x"
    errs = validate_update("", "v1", "ConfigMap", new, old)
    assert len(errs) > 1
    status = errors.invalid("ConfigMap", "", "x", errs)
    assert status.message.count("metadata.name") == 1
    assert len(status.details["causes"]) == len(errs)  # type: ignore[index]


def deployment() -> Obj:
    obj: Obj = {
        "metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "1"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.25",
                            "ports": [{"containerPort": 80}],
                            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                            "livenessProbe": {"httpGet": {"port": 80}},
                            "env": [
                                {
                                    "name": "POD",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                }
                            ],
                        }
                    ]
                },
            },
        },
    }
    apply_defaults("apps", "v1", "Deployment", obj)
    return obj


def test_status_updates() -> None:
    old = deployment()
    new = copy.deepcopy(old)
    new["status"] = {"replicas": 1, "readyReplicas": 2, "availableReplicas": 1}
    assert codes(validate_status_update("apps", "v1", "Deployment", new, old)) == [
        ("status.readyReplicas", errors.INVALID_VALUE)
    ]
    new["status"] = {
        "replicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "observedGeneration": 1,
    }
    assert validate_status_update("apps", "v1", "Deployment", new, old) == []
    pod_old: Obj = {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"nodeName": "a"},
        "status": {"qosClass": "BestEffort"},
    }
    pod_new = copy.deepcopy(pod_old)
    pod_new["spec"]["nodeName"] = "b"
    pod_new["status"]["podIPs"] = [{"ip": "10.0.0.1"}, {"ip": "10.0.0.1"}]
    assert codes(validate_status_update("", "v1", "Pod", pod_new, pod_old)) == [
        ("status.nodeName", errors.FIELD_FORBIDDEN),
        ("status.podIPs[1]", errors.DUPLICATE),
    ]
    ns_old: Obj = {"metadata": {"name": "a"}, "status": {"phase": "Active"}}
    ns_new = copy.deepcopy(ns_old)
    ns_new["status"]["phase"] = "Terminating"
    assert codes(validate_status_update("", "v1", "Namespace", ns_new, ns_old)) == [
        ("status.Phase", errors.INVALID_VALUE)
    ]


def test_defaults_and_validation_are_fast() -> None:
    template = deployment()
    raw = copy.deepcopy(template)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(50):
            obj = copy.deepcopy(raw)
            apply_defaults("apps", "v1", "Deployment", obj)
            assert not validate_create("apps", "v1", "Deployment", obj)
        best = min(best, (time.perf_counter() - start) / 50)
    assert best < 1e-3


def test_scale_subresource() -> None:
    scale: Obj = {"metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 3}}
    assert validate_create("autoscaling", "v1", "Scale", scale) == []
    scale["spec"]["replicas"] = -1
    assert [e.message() for e in validate_create("autoscaling", "v1", "Scale", scale)] == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    ]
