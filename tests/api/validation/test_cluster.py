"""Leases, EndpointSlices, PriorityClasses and PodDisruptionBudgets."""

from __future__ import annotations

import copy
from typing import Any

from pilothouse.api import errors
from pilothouse.api.defaults import apply_defaults
from pilothouse.api.validation import validate_create, validate_update

Obj = dict[str, Any]


def codes(errs: list[errors.FieldError]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in errs]


def test_leases() -> None:
    lease: Obj = {
        "metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
    }
    assert validate_create("coordination.k8s.io", "v1", "Lease", lease) == []
    bad = copy.deepcopy(lease)
    bad["spec"].update(leaseDurationSeconds=0, leaseTransitions=-1, preferredHolder="b")
    assert codes(validate_create("coordination.k8s.io", "v1", "Lease", bad)) == [
        ("spec.leaseDurationSeconds", errors.INVALID_VALUE),
        ("spec.leaseTransitions", errors.INVALID_VALUE),
        ("spec.preferredHolder", errors.FIELD_FORBIDDEN),
    ]


def endpoint_slice(**fields: Any) -> Obj:
    obj: Obj = {
        "metadata": {"name": "web-abc", "namespace": "default"},
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": ["10.42.0.5"],
                "conditions": {"ready": True},
                "nodeName": "node-1",
                "zone": "a",
            }
        ],
        "ports": [{"name": "http", "port": 80}],
        **fields,
    }
    apply_defaults("discovery.k8s.io", "v1", "EndpointSlice", obj)
    return obj


def test_endpoint_slices() -> None:
    assert validate_create("discovery.k8s.io", "v1", "EndpointSlice", endpoint_slice()) == []
    fqdn = endpoint_slice(addressType="FQDN", endpoints=[{"addresses": ["db.example.com"]}])
    assert validate_create("discovery.k8s.io", "v1", "EndpointSlice", fqdn) == []
    checks = [
        (endpoint_slice(addressType=""), "addressType", errors.REQUIRED),
        (endpoint_slice(addressType="IP"), "addressType", errors.NOT_SUPPORTED),
        (endpoint_slice(endpoints=[{"addresses": []}]), "endpoints[0].addresses", errors.REQUIRED),
        (
            endpoint_slice(endpoints=[{"addresses": ["fd00::1"]}]),
            "endpoints[0].addresses[0]",
            errors.INVALID_VALUE,
        ),
        (
            endpoint_slice(endpoints=[{"addresses": ["127.0.0.1"]}]),
            "endpoints[0].addresses[0]",
            errors.INVALID_VALUE,
        ),
        (
            endpoint_slice(
                ports=[{"name": "a", "protocol": "TCP"}, {"name": "a", "protocol": "TCP"}]
            ),
            "ports[1].name",
            errors.DUPLICATE,
        ),
        (
            endpoint_slice(ports=[{"name": "a", "protocol": "QUIC"}]),
            "ports[0].protocol",
            errors.NOT_SUPPORTED,
        ),
        (
            endpoint_slice(endpoints=[{"addresses": ["10.0.0.1"], "hostname": "a.b"}]),
            "endpoints[0].hostname",
            errors.INVALID_VALUE,
        ),
    ]
    for obj, field, kind in checks:
        assert (field, kind) in codes(
            validate_create("discovery.k8s.io", "v1", "EndpointSlice", obj)
        ), field
    old = endpoint_slice()
    new = copy.deepcopy(old)
    new["addressType"] = "IPv6"
    new["endpoints"] = [{"addresses": ["fd00::5"]}]
    assert ("addressType", errors.INVALID_VALUE) in codes(
        validate_update("discovery.k8s.io", "v1", "EndpointSlice", new, old)
    )


def priority_class(name: str, value: int, **fields: Any) -> Obj:
    obj: Obj = {"metadata": {"name": name}, "value": value, **fields}
    apply_defaults("scheduling.k8s.io", "v1", "PriorityClass", obj)
    return obj


def test_priority_classes() -> None:
    assert (
        validate_create("scheduling.k8s.io", "v1", "PriorityClass", priority_class("high", 1000))
        == []
    )
    assert (
        validate_create(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            priority_class("system-node-critical", 2000001000),
        )
        == []
    )
    too_high = priority_class("high", 1_000_000_001)
    assert [
        e.message() for e in validate_create("scheduling.k8s.io", "v1", "PriorityClass", too_high)
    ] == ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
    reserved = priority_class("system-mine", 5)
    assert [
        e.message() for e in validate_create("scheduling.k8s.io", "v1", "PriorityClass", reserved)
    ] == [
        "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system "
        "use only. error: system-mine is not a known system priority class"
    ]
    policy = priority_class("high", 1, preemptionPolicy="Always")
    assert codes(validate_create("scheduling.k8s.io", "v1", "PriorityClass", policy)) == [
        ("preemptionPolicy", errors.NOT_SUPPORTED)
    ]
    old = priority_class("high", 1000)
    new = {**copy.deepcopy(old), "value": 2000}
    assert codes(validate_update("scheduling.k8s.io", "v1", "PriorityClass", new, old)) == [
        ("value", errors.FIELD_FORBIDDEN)
    ]


def test_pod_disruption_budgets() -> None:
    pdb: Obj = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}},
    }
    assert validate_create("policy", "v1", "PodDisruptionBudget", pdb) == []
    both = copy.deepcopy(pdb)
    both["spec"]["maxUnavailable"] = 1
    assert codes(validate_create("policy", "v1", "PodDisruptionBudget", both)) == [
        ("spec", errors.INVALID_VALUE)
    ]
    over = copy.deepcopy(pdb)
    over["spec"]["minAvailable"] = "120%"
    assert codes(validate_create("policy", "v1", "PodDisruptionBudget", over)) == [
        ("spec.minAvailable", errors.INVALID_VALUE)
    ]
    negative = copy.deepcopy(pdb)
    negative["spec"]["minAvailable"] = -1
    assert codes(validate_create("policy", "v1", "PodDisruptionBudget", negative)) == [
        ("spec.minAvailable", errors.INVALID_VALUE)
    ]
    policy = copy.deepcopy(pdb)
    policy["spec"]["unhealthyPodEvictionPolicy"] = "Never"
    assert codes(validate_create("policy", "v1", "PodDisruptionBudget", policy)) == [
        ("spec.unhealthyPodEvictionPolicy", errors.NOT_SUPPORTED)
    ]
    # No kind-specific name rule: only the generic path-segment one.
    upper = copy.deepcopy(pdb)
    upper["metadata"]["name"] = "Web_PDB"
    assert validate_create("policy", "v1", "PodDisruptionBudget", upper) == []
    slash = copy.deepcopy(pdb)
    slash["metadata"]["name"] = "a/b"
    assert [e.message() for e in validate_create("policy", "v1", "PodDisruptionBudget", slash)] == [
        "metadata.name: Invalid value: \"a/b\": may not contain '/'"
    ]
