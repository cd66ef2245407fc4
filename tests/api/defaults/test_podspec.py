"""Pod and pod template defaults (upstream's SetDefaults_Pod/PodSpec/Container/Volume...)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pilothouse.api.defaults import apply_defaults, podspec


def pod(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"containers": [{"name": "app", "image": "nginx:1.25"}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": base}


def defaulted_pod(**spec: Any) -> dict[str, Any]:
    obj = pod(**spec)
    apply_defaults("", "v1", "Pod", obj)
    return obj


def test_pod_spec_defaults() -> None:
    spec = defaulted_pod()["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    container = spec["containers"][0]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert container["imagePullPolicy"] == "IfNotPresent"


def test_explicit_values_are_kept() -> None:
    spec = defaulted_pod(
        restartPolicy="Never", dnsPolicy="Default", terminationGracePeriodSeconds=0
    )["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["dnsPolicy"] == "Default"
    assert spec["terminationGracePeriodSeconds"] == 0


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("docker.io/library/nginx", "Always"),
        ("localhost:5000/app", "Always"),
        ("localhost:5000/app:v1", "IfNotPresent"),
        ("nginx:1.25", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
        ("nginx:latest@sha256:" + "a" * 64, "Always"),
        ("Nginx", "IfNotPresent"),
        ("", "IfNotPresent"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    assert podspec.default_pull_policy(image) == policy


def test_container_parts() -> None:
    container = {
        "name": "app",
        "image": "app:v1",
        "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
        "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "livenessProbe": {"httpGet": {"port": 8080}},
        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 5},
        "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/stop"}}},
        "resources": {"limits": {"cpu": "0.5", "memory": "1024Mi"}},
    }
    spec = defaulted_pod(containers=[container])["spec"]
    c = spec["containers"][0]
    assert [p["protocol"] for p in c["ports"]] == ["TCP", "UDP"]
    assert c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert c["livenessProbe"] == {
        "httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert c["readinessProbe"]["periodSeconds"] == 5
    assert c["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/stop", "scheme": "HTTP"}
    assert c["resources"] == {
        "limits": {"cpu": "500m", "memory": "1Gi"},
        "requests": {"cpu": "500m", "memory": "1Gi"},
    }


def test_requests_keep_their_own_values() -> None:
    resources = {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "100m"}}
    spec = defaulted_pod(containers=[{"name": "a", "image": "a:1", "resources": resources}])["spec"]
    assert spec["containers"][0]["resources"]["requests"] == {"cpu": "100m", "memory": "1Gi"}


def test_volumes() -> None:
    volumes = [
        {"name": "scratch"},
        {"name": "cfg", "configMap": {"name": "c"}},
        {"name": "sec", "secret": {"secretName": "s", "defaultMode": 256}},
        {"name": "host", "hostPath": {"path": "/var"}},
        {
            "name": "info",
            "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]},
        },
        {"name": "proj", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
        {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1024Mi"}},
        {
            "name": "eph",
            "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}},
        },
    ]
    spec = defaulted_pod(volumes=volumes)["spec"]
    by_name = {v["name"]: v for v in spec["volumes"]}
    assert by_name["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert by_name["cfg"]["configMap"]["defaultMode"] == 420
    assert by_name["sec"]["secret"]["defaultMode"] == 256
    assert by_name["host"]["hostPath"]["type"] == ""
    assert by_name["info"]["downwardAPI"]["defaultMode"] == 420
    assert by_name["info"]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"] == "v1"
    assert by_name["proj"]["projected"]["defaultMode"] == 420
    assert (
        by_name["proj"]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"]
        == 3600
    )
    assert by_name["mem"]["emptyDir"]["sizeLimit"] == "1Gi"
    assert by_name["eph"]["ephemeral"]["volumeClaimTemplate"]["spec"]["volumeMode"] == "Filesystem"


def test_host_network_sets_host_ports_on_pods_only() -> None:
    ports = [{"containerPort": 8080}]
    spec = defaulted_pod(
        hostNetwork=True, containers=[{"name": "a", "image": "a:1", "ports": ports}]
    )["spec"]
    assert spec["containers"][0]["ports"][0]["hostPort"] == 8080
    template = {
        "spec": copy.deepcopy(
            pod(
                hostNetwork=True,
                containers=[{"name": "a", "image": "a:1", "ports": [{"containerPort": 8080}]}],
            )["spec"]
        )
    }
    podspec.default_pod_template(template)
    assert "hostPort" not in template["spec"]["containers"][0]["ports"][0]
    assert "enableServiceLinks" not in template["spec"]


def test_pod_template_kind() -> None:
    obj: dict[str, Any] = {
        "kind": "PodTemplate",
        "metadata": {"name": "t"},
        "template": {"spec": pod()["spec"]},
    }
    apply_defaults("", "v1", "PodTemplate", obj)
    assert obj["template"]["spec"]["restartPolicy"] == "Always"


def test_defaults_are_idempotent() -> None:
    once = defaulted_pod(
        volumes=[{"name": "v"}],
        containers=[{"name": "a", "image": "a", "resources": {"limits": {"cpu": "0.1"}}}],
    )
    twice = copy.deepcopy(once)
    apply_defaults("", "v1", "Pod", twice)
    assert twice == once


def test_bad_values_are_left_for_validation() -> None:
    obj = defaulted_pod(
        containers=[{"name": "a", "image": "a", "resources": {"limits": {"cpu": "lots"}}}],
        volumes="nope",
    )
    assert obj["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "lots"
    assert obj["spec"]["volumes"] == "nope"
