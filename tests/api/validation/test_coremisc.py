"""Namespaces, Nodes, ConfigMaps, Secrets, ServiceAccounts, Events and Bindings."""

from __future__ import annotations

import base64
import copy
from typing import Any

from pilothouse.api import errors
from pilothouse.api.defaults import apply_defaults
from pilothouse.api.validation import validate_create, validate_update

Obj = dict[str, Any]


def codes(errs: list[errors.FieldError]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in errs]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_namespaces() -> None:
    ns: Obj = {"metadata": {"name": "team-a"}}
    apply_defaults("", "v1", "Namespace", ns)
    assert validate_create("", "v1", "Namespace", ns) == []
    dotted = {"metadata": {"name": "team.a"}}
    assert [e.message() for e in validate_create("", "v1", "Namespace", dotted)] == [
        'metadata.name: Invalid value: "team.a": must not contain dots'
    ]
    with_ns = {"metadata": {"name": "a", "namespace": "b"}}
    assert codes(validate_create("", "v1", "Namespace", with_ns)) == [
        ("metadata.namespace", errors.FIELD_FORBIDDEN)
    ]
    finalizer = {"metadata": {"name": "a"}, "spec": {"finalizers": ["custom"]}}
    assert codes(validate_create("", "v1", "Namespace", finalizer)) == [
        ("spec.finalizers", errors.INVALID_VALUE)
    ]


def node(**spec: Any) -> Obj:
    obj: Obj = {
        "metadata": {"name": "node-1"},
        "spec": spec,
        "status": {"capacity": {"cpu": "4", "pods": "110"}},
    }
    apply_defaults("", "v1", "Node", obj)
    return obj


def test_nodes() -> None:
    assert (
        validate_create(
            "",
            "v1",
            "Node",
            node(podCIDR="10.42.1.0/24", taints=[{"key": "k", "effect": "NoSchedule"}]),
        )
        == []
    )
    assert codes(validate_create("", "v1", "Node", node(podCIDR="10.42.1.0/33"))) == [
        ("spec.podCIDRs[0]", errors.INVALID_VALUE)
    ]
    assert codes(
        validate_create("", "v1", "Node", node(taints=[{"key": "k", "effect": "Sometimes"}]))
    ) == [("metadata.taints[0].effect", errors.NOT_SUPPORTED)]
    duplicate = node(
        taints=[
            {"key": "k", "effect": "NoSchedule"},
            {"key": "k", "effect": "NoSchedule", "value": "v"},
        ]
    )
    assert codes(validate_create("", "v1", "Node", duplicate)) == [
        ("metadata.taints[1]", errors.DUPLICATE)
    ]
    fractional = node()
    fractional["status"]["capacity"]["pods"] = "1.5"
    assert codes(validate_create("", "v1", "Node", fractional)) == [
        ("status.capacity.pods", errors.INVALID_VALUE)
    ]


def test_node_updates() -> None:
    old = node(podCIDR="10.42.1.0/24")
    changed = copy.deepcopy(old)
    changed["spec"]["podCIDRs"] = ["10.42.2.0/24"]
    assert codes(validate_update("", "v1", "Node", changed, old)) == [
        ("spec.podCIDRs", errors.FIELD_FORBIDDEN)
    ]
    unschedulable = copy.deepcopy(old)
    unschedulable["spec"]["unschedulable"] = True
    assert validate_update("", "v1", "Node", unschedulable, old) == []
    fresh = node()
    assigned = copy.deepcopy(fresh)
    assigned["spec"]["podCIDR"] = "10.42.3.0/24"
    assert validate_update("", "v1", "Node", assigned, fresh) == []


def config_map(**fields: Any) -> Obj:
    return {"metadata": {"name": "cfg", "namespace": "default"}, **fields}


def test_config_maps() -> None:
    assert (
        validate_create(
            "", "v1", "ConfigMap", config_map(data={"a.conf": "x"}, binaryData={"b.bin": b64("y")})
        )
        == []
    )
    assert codes(validate_create("", "v1", "ConfigMap", config_map(data={"a/b": "x"}))) == [
        ("data[a/b]", errors.INVALID_VALUE)
    ]
    assert codes(
        validate_create(
            "", "v1", "ConfigMap", config_map(data={"k": "x"}, binaryData={"k": b64("y")})
        )
    ) == [("data[k]", errors.INVALID_VALUE)]
    big = config_map(data={"k": "x" * (1024 * 1024 + 1)})
    assert [e.message() for e in validate_create("", "v1", "ConfigMap", big)] == [
        ": Too long: may not be more than 1048576 bytes"
    ]


def test_immutable_config_maps_and_secrets() -> None:
    old = config_map(data={"a": "1"}, immutable=True)
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    assert codes(validate_update("", "v1", "ConfigMap", new, old)) == [
        ("data", errors.FIELD_FORBIDDEN)
    ]
    unset = copy.deepcopy(old)
    unset["immutable"] = False
    assert codes(validate_update("", "v1", "ConfigMap", unset, old)) == [
        ("immutable", errors.FIELD_FORBIDDEN)
    ]
    labels = copy.deepcopy(old)
    labels["metadata"]["labels"] = {"a": "b"}
    assert validate_update("", "v1", "ConfigMap", labels, old) == []
    secret_old = secret(data={"a": b64("1")}, immutable=True)
    secret_new = copy.deepcopy(secret_old)
    secret_new["data"]["a"] = b64("2")
    assert codes(validate_update("", "v1", "Secret", secret_new, secret_old)) == [
        ("data", errors.FIELD_FORBIDDEN)
    ]


def secret(**fields: Any) -> Obj:
    obj: Obj = {"metadata": {"name": "s", "namespace": "default"}, **fields}
    apply_defaults("", "v1", "Secret", obj)
    return obj


def test_secrets() -> None:
    assert validate_create("", "v1", "Secret", secret(data={"password": b64("x")})) == []
    tls = secret(type="kubernetes.io/tls", data={"tls.crt": b64("c")})
    assert [e.message() for e in validate_create("", "v1", "Secret", tls)] == [
        "data[tls.key]: Required value"
    ]
    docker = secret(type="kubernetes.io/dockerconfigjson", data={})
    assert codes(validate_create("", "v1", "Secret", docker)) == [
        ("data[.dockerconfigjson]", errors.REQUIRED)
    ]
    bad_json = secret(
        type="kubernetes.io/dockerconfigjson", data={".dockerconfigjson": b64("{nope")}
    )
    assert codes(validate_create("", "v1", "Secret", bad_json)) == [
        ("data[.dockerconfigjson]", errors.INVALID_VALUE)
    ]
    token = secret(type="kubernetes.io/service-account-token")
    assert codes(validate_create("", "v1", "Secret", token)) == [
        ("metadata.annotations[kubernetes.io/service-account.name]", errors.REQUIRED)
    ]
    basic = secret(type="kubernetes.io/basic-auth", data={})
    assert codes(validate_create("", "v1", "Secret", basic)) == [
        ("data[username]", errors.REQUIRED),
        ("data[password]", errors.REQUIRED),
    ]
    ssh = secret(type="kubernetes.io/ssh-auth", data={"ssh-privatekey": ""})
    assert codes(validate_create("", "v1", "Secret", ssh)) == [
        ("data[ssh-privatekey]", errors.REQUIRED)
    ]
    old = secret(data={})
    retyped = copy.deepcopy(old)
    retyped["type"] = "kubernetes.io/tls"
    assert ("type", errors.INVALID_VALUE) in codes(
        validate_update("", "v1", "Secret", retyped, old)
    )


def test_service_accounts_and_bindings() -> None:
    sa = {"metadata": {"name": "builder", "namespace": "default"}}
    assert validate_create("", "v1", "ServiceAccount", sa) == []
    assert codes(
        validate_create(
            "", "v1", "ServiceAccount", {"metadata": {"name": "Bad", "namespace": "default"}}
        )
    ) == [("metadata.name", errors.INVALID_VALUE)]
    binding = {"metadata": {"name": "web"}, "target": {"kind": "Node", "name": "node-1"}}
    assert validate_create("", "v1", "Binding", binding) == []
    assert codes(validate_create("", "v1", "Binding", {"target": {"kind": "Pod"}})) == [
        ("target.kind", errors.NOT_SUPPORTED),
        ("target.name", errors.REQUIRED),
    ]


def test_core_events() -> None:
    event: Obj = {
        "metadata": {"name": "web.1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Started",
        "message": "started",
    }
    assert validate_create("", "v1", "Event", event) == []
    other_ns = copy.deepcopy(event)
    other_ns["involvedObject"]["namespace"] = "other"
    assert codes(validate_create("", "v1", "Event", other_ns)) == [
        ("involvedObject.namespace", errors.INVALID_VALUE)
    ]
    new_style = copy.deepcopy(event)
    new_style["eventTime"] = "2024-01-01T00:00:00.000000Z"
    assert codes(validate_create("", "v1", "Event", new_style)) == [
        ("reportingController", errors.REQUIRED),
        ("reportingController", errors.INVALID_VALUE),
        ("reportingController", errors.INVALID_VALUE),
        ("reportingInstance", errors.REQUIRED),
        ("action", errors.REQUIRED),
    ]


def test_events_k8s_io() -> None:
    event = {
        "metadata": {"name": "web.1", "namespace": "default"},
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Started",
        "action": "Start",
        "type": "Normal",
        "reportingController": "kubelet",
        "reportingInstance": "node-1",
        "note": "started",
    }
    assert validate_create("events.k8s.io", "v1", "Event", event) == []
    no_time = {**event, "eventTime": None, "type": "Info"}
    assert ("eventTime", errors.REQUIRED) in codes(
        validate_create("events.k8s.io", "v1", "Event", no_time)
    )
    assert ("type", errors.INVALID_VALUE) in codes(
        validate_create("events.k8s.io", "v1", "Event", no_time)
    )
    changed = {**event, "note": "different"}
    assert ("message", errors.INVALID_VALUE) in codes(
        validate_update("events.k8s.io", "v1", "Event", changed, event)
    )
