"""Tables of Leases, EndpointSlices, StorageClasses, PriorityClasses and PDBs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pilothouse.apiserver.table import other

NOW = 1_764_088_762.0
AGE = datetime.fromtimestamp(NOW - 7200, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
META = {"name": "x", "creationTimestamp": AGE}


def test_lease() -> None:
    obj = {"metadata": META, "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}
    assert other.lease_cells(obj, NOW) == ["x", "node-1", "120m"]
    assert other.lease_cells({"metadata": META, "spec": {}}, NOW) == ["x", "", "120m"]


@pytest.mark.parametrize(
    ("ports", "want"),
    [
        ([], "<unset>"),
        ([{"port": 80, "name": "http"}], "80"),
        ([{"name": "http"}], "http"),
        ([{}], "*"),
        ([{"port": p} for p in (80, 443, 8080, 9090, 9443)], "80,443,8080 + 2 more..."),
    ],
)
def test_endpointslice_ports(ports: list[dict[str, Any]], want: str) -> None:
    assert other.slice_ports(ports) == want


@pytest.mark.parametrize(
    ("endpoints", "want"),
    [
        ([], "<unset>"),
        ([{"addresses": ["10.42.0.5"]}, {"addresses": ["10.42.0.6"]}], "10.42.0.5,10.42.0.6"),
        (
            [{"addresses": ["10.42.0.5", "10.42.0.6"]}, {"addresses": ["10.42.0.7", "10.42.0.8"]}],
            "10.42.0.5,10.42.0.6,10.42.0.7 + 1 more...",
        ),
    ],
)
def test_endpointslice_endpoints(endpoints: list[dict[str, Any]], want: str) -> None:
    assert other.slice_endpoints(endpoints) == want


def test_endpointslice() -> None:
    obj = {
        "metadata": {"name": "web-abc12", "creationTimestamp": AGE},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.42.0.5"], "conditions": {"ready": True}}],
    }
    assert other.endpointslice_cells(obj, NOW) == ["web-abc12", "IPv4", "8080", "10.42.0.5", "120m"]


def test_storageclass() -> None:
    obj = {
        "metadata": {
            "name": "local-path",
            "creationTimestamp": AGE,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "rancher.io/local-path",
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
    }
    assert other.storageclass_cells(obj, NOW) == [
        "local-path (default)", "rancher.io/local-path", "Retain", "WaitForFirstConsumer", True, "120m",
    ]  # fmt: skip
    bare: dict[str, Any] = {"metadata": {"name": "slow", "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "false"}},
            "provisioner": "p"}  # fmt: skip
    assert other.storageclass_cells(bare, NOW) == [
        "slow",
        "p",
        "Delete",
        "Immediate",
        False,
        "<unknown>",
    ]
    bare["metadata"]["annotations"]["storageclass.beta.kubernetes.io/is-default-class"] = "true"
    assert other.storageclass_cells(bare, NOW)[0] == "slow (default)"


def test_priorityclass() -> None:
    obj = {"metadata": {"name": "system-node-critical", "creationTimestamp": AGE}, "value": 2000001000,
           "preemptionPolicy": "PreemptLowerPriority"}  # fmt: skip
    assert other.priorityclass_cells(obj, NOW) == [
        "system-node-critical", 2000001000, False, "120m", "PreemptLowerPriority",
    ]  # fmt: skip
    obj = {"metadata": {"name": "default"}, "value": 0, "globalDefault": True}
    assert other.priorityclass_cells(obj, NOW) == ["default", 0, True, "<unknown>", ""]


@pytest.mark.parametrize(
    ("spec", "allowed", "want"),
    [
        ({"minAvailable": 2}, 1, ["2", "N/A", 1]),
        ({"maxUnavailable": "25%"}, 0, ["N/A", "25%", 0]),
        ({}, None, ["N/A", "N/A", 0]),
    ],
)
def test_pod_disruption_budget(spec: dict[str, Any], allowed: int | None, want: list[Any]) -> None:
    status = {} if allowed is None else {"disruptionsAllowed": allowed}
    obj = {"metadata": META, "spec": spec, "status": status}
    assert other.pdb_cells(obj, NOW) == ["x", *want, "120m"]
