"""The real kubectl sends built-in kinds as protobuf; those creates must just work.

kubectl 1.32's typed clients POST ``application/vnd.kubernetes.protobuf`` bodies for
``kubectl create <kind>``; the answers stay JSON.
"""

from __future__ import annotations

import base64
import uuid

import pytest

pytestmark = pytest.mark.kubectl


def test_create_namespace(kubectl) -> None:
    name = "pb-" + uuid.uuid4().hex[:10]
    out = kubectl("create", "namespace", name, "-v=6").stderr
    try:
        assert "201 Created" in out
        assert kubectl.json("get", "namespace", name)["metadata"]["name"] == name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_request_bodies_are_protobuf(kubectl, namespace) -> None:
    # Guards the premise of this file: if kubectl stopped sending protobuf, the
    # other tests here would prove nothing.
    out = kubectl(
        "create", "configmap", "probe", "-n", namespace, "--from-literal=a=b", "-v=8"
    ).stderr
    assert "Content-Type: application/vnd.kubernetes.protobuf" in out


def test_create_configmap(kubectl, namespace) -> None:
    kubectl("create", "configmap", "c", "-n", namespace, "--from-literal=a=b")
    assert kubectl.json("get", "configmap", "c", "-n", namespace)["data"] == {"a": "b"}


def test_create_secret_keeps_bytes(kubectl, namespace) -> None:
    kubectl("create", "secret", "generic", "s", "-n", namespace, "--from-literal=p=q")
    out = kubectl("get", "secret", "s", "-n", namespace, "-o", "jsonpath={.data.p}").stdout
    assert out == base64.b64encode(b"q").decode()
    assert kubectl.json("get", "secret", "s", "-n", namespace)["type"] == "Opaque"


def test_create_deployment(kubectl, namespace) -> None:
    kubectl("create", "deployment", "d", "-n", namespace, "--image=busybox", "--replicas=3")
    deploy = kubectl.json("get", "deployment", "d", "-n", namespace)
    spec = deploy["spec"]
    assert deploy["metadata"]["labels"] == {"app": "d"}
    assert spec["replicas"] == 3
    assert spec["selector"] == {"matchLabels": {"app": "d"}}
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    container = spec["template"]["spec"]["containers"][0]
    assert container["name"] == "busybox"
    assert container["image"] == "busybox"
    assert container["resources"] == {}
    assert spec["template"]["metadata"]["labels"] == {"app": "d"}


def test_create_job(kubectl, namespace) -> None:
    kubectl("create", "job", "j", "-n", namespace, "--image=busybox", "--", "echo", "hi")
    job = kubectl.json("get", "job", "j", "-n", namespace)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["echo", "hi"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_create_service(kubectl, namespace) -> None:
    kubectl("create", "service", "clusterip", "s", "-n", namespace, "--tcp=80:8080")
    svc = kubectl.json("get", "service", "s", "-n", namespace)
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [
        {"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}
    ]
    assert svc["spec"]["selector"] == {"app": "s"}
