"""Service and Endpoints validation."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from pilothouse.api import errors
from pilothouse.api.defaults import apply_defaults
from pilothouse.api.validation import validate_create, validate_update

Obj = dict[str, Any]


def service(**spec: Any) -> Obj:
    obj: Obj = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec},
    }
    apply_defaults("", "v1", "Service", obj)
    return obj


def codes(errs: list[errors.FieldError]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in errs]


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"]},
        {"clusterIP": "None", "clusterIPs": ["None"], "ports": []},
        {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]},
        {"type": "LoadBalancer"},
        {"type": "ExternalName", "externalName": "example.com.", "selector": None},
        {
            "ports": [
                {"name": "http", "port": 80},
                {"name": "https", "port": 443, "targetPort": "tls"},
            ]
        },
        {"sessionAffinity": "ClientIP"},
        {
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "clusterIP": "10.43.0.2",
            "clusterIPs": ["10.43.0.2"],
        },
    ],
)
def test_valid_services(spec: Obj) -> None:
    assert validate_create("", "v1", "Service", service(**spec)) == []


CASES: list[tuple[str, Callable[[Obj], Any], str, str]] = [
    (
        "name not DNS-1035",
        lambda s: s["metadata"].update(name="1web"),
        "metadata.name",
        errors.INVALID_VALUE,
    ),
    ("no ports", lambda s: s["spec"].update(ports=[]), "spec.ports", errors.REQUIRED),
    (
        "port zero",
        lambda s: s["spec"]["ports"][0].update(port=0),
        "spec.ports[0].port",
        errors.INVALID_VALUE,
    ),
    (
        "unnamed ports",
        lambda s: s["spec"]["ports"].append({"port": 81, "protocol": "TCP", "targetPort": 81}),
        "spec.ports[0].name",
        errors.REQUIRED,
    ),
    (
        "duplicate port names",
        lambda s: s["spec"].update(
            ports=[
                {"name": "a", "port": 1, "protocol": "TCP", "targetPort": 1},
                {"name": "a", "port": 2, "protocol": "TCP", "targetPort": 2},
            ]
        ),
        "spec.ports[1].name",
        errors.DUPLICATE,
    ),
    (
        "duplicate ports",
        lambda s: s["spec"].update(
            ports=[
                {"name": "a", "port": 1, "protocol": "TCP", "targetPort": 1},
                {"name": "b", "port": 1, "protocol": "TCP", "targetPort": 2},
            ]
        ),
        "spec.ports[1]",
        errors.DUPLICATE,
    ),
    (
        "bad protocol",
        lambda s: s["spec"]["ports"][0].update(protocol="ICMP"),
        "spec.ports[0].protocol",
        errors.NOT_SUPPORTED,
    ),
    (
        "bad target port",
        lambda s: s["spec"]["ports"][0].update(targetPort="Not_A_Name"),
        "spec.ports[0].targetPort",
        errors.INVALID_VALUE,
    ),
    ("bad type", lambda s: s["spec"].update(type="Internal"), "spec.type", errors.NOT_SUPPORTED),
    (
        "node port on ClusterIP",
        lambda s: s["spec"]["ports"][0].update(nodePort=30001),
        "spec.ports[0].nodePort",
        errors.FIELD_FORBIDDEN,
    ),
    (
        "bad cluster IP",
        lambda s: s["spec"].update(clusterIP="10.0.0.300", clusterIPs=["10.0.0.300"]),
        "spec.clusterIPs[0]",
        errors.INVALID_VALUE,
    ),
    (
        "cluster IPs mismatch",
        lambda s: s["spec"].update(clusterIP="10.0.0.1", clusterIPs=["10.0.0.2"]),
        "spec.clusterIPs",
        errors.INVALID_VALUE,
    ),
    (
        "headless node port",
        lambda s: s["spec"].update(
            type="NodePort", clusterIP="None", clusterIPs=["None"], externalTrafficPolicy="Cluster"
        ),
        "spec.clusterIPs[0]",
        errors.INVALID_VALUE,
    ),
    (
        "external name required",
        lambda s: s["spec"].update(type="ExternalName", internalTrafficPolicy=None),
        "spec.externalName",
        errors.REQUIRED,
    ),
    (
        "bad selector",
        lambda s: s["spec"].update(selector={"app": "not valid"}),
        "spec.selector",
        errors.INVALID_VALUE,
    ),
    (
        "affinity config with None",
        lambda s: s["spec"].update(sessionAffinityConfig={"clientIP": {"timeoutSeconds": 1}}),
        "spec.sessionAffinityConfig",
        errors.FIELD_FORBIDDEN,
    ),
    (
        "bad affinity timeout",
        lambda s: s["spec"].update(
            sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}}
        ),
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        errors.INVALID_VALUE,
    ),
    (
        "bad external IP",
        lambda s: s["spec"].update(externalIPs=["127.0.0.1"], externalTrafficPolicy="Cluster"),
        "spec.externalIPs[0]",
        errors.INVALID_VALUE,
    ),
    (
        "traffic policy on ClusterIP",
        lambda s: s["spec"].update(externalTrafficPolicy="Local"),
        "spec.externalTrafficPolicy",
        errors.INVALID_VALUE,
    ),
    (
        "bad internal policy",
        lambda s: s["spec"].update(internalTrafficPolicy="Node"),
        "spec.internalTrafficPolicy",
        errors.NOT_SUPPORTED,
    ),
    (
        "source ranges on ClusterIP",
        lambda s: s["spec"].update(loadBalancerSourceRanges=["10.0.0.0/8"]),
        "spec.LoadBalancerSourceRanges",
        errors.FIELD_FORBIDDEN,
    ),
    (
        "bad family",
        lambda s: s["spec"].update(ipFamilies=["IPv5"]),
        "spec.ipFamilies[0]",
        errors.NOT_SUPPORTED,
    ),
]


@pytest.mark.parametrize(("name", "mutate", "field", "kind"), CASES, ids=[c[0] for c in CASES])
def test_invalid_services(name: str, mutate: Callable[[Obj], Any], field: str, kind: str) -> None:
    obj = service()
    mutate(obj)
    assert (field, kind) in codes(validate_create("", "v1", "Service", obj))


def test_cluster_ip_is_immutable() -> None:
    old = service(clusterIP="10.43.0.5", clusterIPs=["10.43.0.5"])
    new = copy.deepcopy(old)
    new["spec"].update(clusterIP="10.43.0.6", clusterIPs=["10.43.0.6"])
    errs = validate_update("", "v1", "Service", new, old)
    assert [e.message() for e in errs] == [
        'spec.clusterIPs[0]: Invalid value: []string{"10.43.0.6"}: may not change once set'
    ]


def test_service_updates() -> None:
    old = service(clusterIP="10.43.0.5", clusterIPs=["10.43.0.5"])
    new = copy.deepcopy(old)
    new["spec"]["ports"][0]["port"] = 8080
    assert validate_update("", "v1", "Service", new, old) == []
    cleared = copy.deepcopy(old)
    cleared["spec"].pop("clusterIP")
    cleared["spec"].pop("clusterIPs")
    assert ("spec.clusterIPs[0]", errors.INVALID_VALUE) in codes(
        validate_update("", "v1", "Service", cleared, old)
    )


def endpoints(**subset: Any) -> Obj:
    obj: Obj = {
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "10.42.0.5"}], "ports": [{"port": 80}], **subset}],
    }
    apply_defaults("", "v1", "Endpoints", obj)
    return obj


def test_endpoints() -> None:
    assert validate_create("", "v1", "Endpoints", endpoints()) == []
    assert (
        validate_create(
            "", "v1", "Endpoints", endpoints(addresses=[], notReadyAddresses=[{"ip": "10.42.0.6"}])
        )
        == []
    )
    checks = [
        (endpoints(addresses=[]), "subsets[0]", errors.REQUIRED),
        (endpoints(addresses=[{"ip": "nope"}]), "subsets[0].addresses[0].ip", errors.INVALID_VALUE),
        (
            endpoints(addresses=[{"ip": "127.0.0.1"}]),
            "subsets[0].addresses[0].ip",
            errors.INVALID_VALUE,
        ),
        (
            endpoints(addresses=[{"ip": "169.254.1.1"}]),
            "subsets[0].addresses[0].ip",
            errors.INVALID_VALUE,
        ),
        (
            endpoints(ports=[{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]),
            "subsets[0].ports[0].name",
            errors.REQUIRED,
        ),
        (
            endpoints(ports=[{"port": 0, "protocol": "TCP"}]),
            "subsets[0].ports[0].port",
            errors.INVALID_VALUE,
        ),
    ]
    for obj, field, kind in checks:
        assert (field, kind) in codes(validate_create("", "v1", "Endpoints", obj)), field
