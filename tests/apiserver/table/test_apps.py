"""Tables of apps/v1 kinds, with the cases of upstream's printers tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pilothouse.apiserver.table import apps

NOW = 1_764_088_762.0
FUTURE = datetime.fromtimestamp(NOW + 1.9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
TEMPLATE = {
    "spec": {
        "containers": [
            {"name": "fake-container1", "image": "fake-image1"},
            {"name": "fake-container2", "image": "fake-image2"},
        ]
    }
}
WIDE = ["fake-container1,fake-container2", "fake-image1,fake-image2"]


def test_deployment() -> None:
    obj = {
        "metadata": {"name": "test1", "creationTimestamp": FUTURE},
        "spec": {"replicas": 5, "template": TEMPLATE, "selector": {"matchLabels": {"foo": "bar"}}},
        "status": {
            "replicas": 10,
            "updatedReplicas": 2,
            "availableReplicas": 1,
            "unavailableReplicas": 4,
        },
    }
    assert apps.deployment_cells(obj, NOW) == ["test1", "0/5", 2, 1, "0s", *WIDE, "foo=bar"]


@pytest.mark.parametrize(
    ("selector", "want"),
    [
        (None, ""),
        ({}, ""),
        ({"matchLabels": {"app": "web", "a.b/c": "x"}}, "a.b/c=x,app=web"),
        (
            {
                "matchLabels": {"tier": "front"},
                "matchExpressions": [
                    {"key": "env", "operator": "NotIn", "values": ["qa", "dev"]},
                    {"key": "app", "operator": "In", "values": ["web"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                    {"key": "zone", "operator": "Exists"},
                ],
            },
            "app in (web),!canary,env notin (dev,qa),tier=front,zone",
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Near", "values": ["b"]}]}, "<invalid>"),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "<invalid>"),
    ],
)
def test_deployment_selector(selector: dict[str, Any] | None, want: str) -> None:
    obj = {"metadata": {"name": "d"}, "spec": {"selector": selector, "replicas": 1}, "status": {}}
    assert apps.deployment_cells(obj, NOW)[-1] == want


def test_deployment_defaults() -> None:
    cells = apps.deployment_cells({"metadata": {"name": "d"}}, NOW)
    assert cells == ["d", "0/1", 0, 0, "<unknown>", "", "", ""]


def test_replicaset() -> None:
    obj = {
        "metadata": {"name": "test1", "creationTimestamp": FUTURE},
        "spec": {"replicas": 5, "template": TEMPLATE, "selector": {"matchLabels": {"foo": "bar"}}},
        "status": {"replicas": 5, "readyReplicas": 2},
    }
    assert apps.replicaset_cells(obj, NOW) == ["test1", 5, 5, 2, "0s", *WIDE, "foo=bar"]
    obj = {"metadata": {"name": "replicaset2"}, "spec": {"replicas": 4}, "status": {"replicas": 3}}
    assert apps.replicaset_cells(obj, NOW) == [
        "replicaset2",
        4,
        3,
        0,
        "<unknown>",
        "",
        "",
        "<none>",
    ]


def test_statefulset() -> None:
    obj = {
        "metadata": {"name": "test1", "creationTimestamp": FUTURE},
        "spec": {"replicas": 5, "template": TEMPLATE},
        "status": {"replicas": 5, "readyReplicas": 2},
    }
    assert apps.statefulset_cells(obj, NOW) == ["test1", "2/5", "0s", *WIDE]
    obj = {"metadata": {"name": "zero"}, "spec": {"replicas": 0}}
    assert apps.statefulset_cells(obj, NOW)[1] == "0/0"


def test_daemonset() -> None:
    obj: dict[str, Any] = {
        "metadata": {"name": "test1", "creationTimestamp": FUTURE},
        "spec": {"template": TEMPLATE, "selector": {"matchLabels": {"foo": "bar"}}},
        "status": {
            "currentNumberScheduled": 2,
            "desiredNumberScheduled": 3,
            "numberReady": 1,
            "updatedNumberScheduled": 2,
            "numberAvailable": 0,
        },
    }
    assert apps.daemonset_cells(obj, NOW) == [
        "test1",
        3,
        2,
        1,
        2,
        0,
        "<none>",
        "0s",
        *WIDE,
        "foo=bar",
    ]
    obj["spec"]["template"] = {"spec": {"nodeSelector": {"kubernetes.io/os": "linux", "a": "b"}}}
    assert apps.daemonset_cells(obj, NOW)[6] == "a=b,kubernetes.io/os=linux"


@pytest.mark.parametrize(
    ("owners", "want"),
    [
        (None, "<none>"),
        ([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "controller": False}], "<none>"),
        ([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": True}],
         "statefulset.apps/web"),
        ([{"apiVersion": "v1", "kind": "Pod", "name": "p", "controller": True}], "pod/p"),
        ([{"apiVersion": "example.com/v1", "kind": "MyKind", "name": "m", "controller": True}],
         "mykind.example.com/m"),
    ],
)  # fmt: skip
def test_controller_revision(owners: list[dict[str, Any]] | None, want: str) -> None:
    meta: dict[str, Any] = {"name": "web-5d4b", "creationTimestamp": FUTURE}
    if owners is not None:
        meta["ownerReferences"] = owners
    obj = {"metadata": meta, "revision": 3, "data": {}}
    assert apps.controller_revision_cells(obj, NOW) == ["web-5d4b", want, 3, "0s"]
