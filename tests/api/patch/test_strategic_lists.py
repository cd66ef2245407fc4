"""Strategic merge patch of lists: merge keys, ``$patch`` items, ``$retainKeys``, order.

Cases from apimachinery's ``strategicpatch/patch_test.go`` moved onto real kinds:
``mergingList`` → containers, env, ports, volumeMounts, ownerReferences,
conditions; ``mergingIntList`` → finalizers, podCIDRs; ``retainKeysMergingList``
→ volumes. Each expected result, list order included, is what upstream's own
code gives for the same input.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pilothouse.api import patch

DEPLOYMENT = ("apps", "v1", "Deployment")
POD = ("", "v1", "Pod")
SERVICE = ("", "v1", "Service")
NODE = ("", "v1", "Node")


def deployment(containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "patch-demo"},
        "spec": {"template": {"spec": {"containers": containers}}},
    }


def pod_spec_patch(**fields: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": fields}}}


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def with_meta(obj: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"].update(metadata)
    return out


NGINX = {"name": "patch-demo-ctr", "image": "nginx"}
REDIS = {"name": "patch-demo-ctr-2", "image": "redis"}

# (id, kind, original, patch, expected)
CASES: list[tuple[str, tuple[str, str, str], dict[str, Any], Any, dict[str, Any]]] = [
    # --- containers by name ---------------------------------------------------------
    (
        "replace a container's image by name",
        DEPLOYMENT,
        deployment([NGINX, REDIS]),
        pod_spec_patch(containers=[{"name": "patch-demo-ctr-2", "image": "redis:7"}]),
        deployment([NGINX, {"name": "patch-demo-ctr-2", "image": "redis:7"}]),
    ),
    (
        "delete a container with $patch: delete",
        DEPLOYMENT,
        deployment([NGINX, REDIS]),
        pod_spec_patch(containers=[{"name": "patch-demo-ctr", "$patch": "delete"}]),
        deployment([REDIS]),
    ),
    (
        "$patch: delete removes every item with that key",
        POD,
        pod(containers=[{"name": "a"}, {"name": "a"}, {"name": "b", "image": "x"}, {"name": "c"}]),
        {
            "spec": {
                "containers": [{"name": "a", "$patch": "delete"}, {"name": "c", "$patch": "delete"}]
            }
        },
        pod(containers=[{"name": "b", "image": "x"}]),
    ),
    (
        "$patch: replace on a list replaces the whole list",
        POD,
        pod(containers=[{"name": "a", "image": "x"}, {"name": "b"}]),
        {"spec": {"containers": [{"name": "c", "image": "y"}, {"$patch": "replace"}]}},
        pod(containers=[{"name": "c", "image": "y"}]),
    ),
    (
        "$patch: replace alone empties a merged list",
        POD,
        pod(containers=[{"name": "a"}, {"name": "b"}]),
        {"spec": {"containers": [{"$patch": "replace"}]}},
        pod(containers=[]),
    ),
    (
        "patch order wins over the live order",
        POD,
        pod(containers=[{"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"}]),
        {
            "spec": {
                "containers": [
                    {"name": "3", "image": "c"},
                    {"name": "1", "image": "a"},
                    {"name": "2", "tty": True},
                ]
            }
        },
        pod(
            containers=[
                {"name": "3", "image": "c"},
                {"name": "1", "image": "a"},
                {"name": "2", "image": "b", "tty": True},
            ]
        ),
    ),
    (
        "items only the server has keep their place among the patched ones",
        POD,
        pod(containers=[{"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"}]),
        {"spec": {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}},
        pod(
            containers=[
                {"name": "2", "image": "b"},
                {"name": "3", "image": "c"},
                {"name": "1", "image": "a"},
            ]
        ),
    ),
    # --- env by name, with valueFrom -----------------------------------------------
    (
        "add an env var and remove another with $patch: delete",
        DEPLOYMENT,
        deployment(
            [{"name": "app", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]
        ),
        pod_spec_patch(
            containers=[
                {
                    "name": "app",
                    "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "A"}],
                }
            ]
        ),
        # C has no place in the live order, so it goes before the server-only B.
        deployment(
            [{"name": "app", "env": [{"name": "C", "value": "3"}, {"name": "B", "value": "2"}]}]
        ),
    ),
    (
        "switch an env var from value to valueFrom (value: null removes the old source)",
        POD,
        pod(containers=[{"name": "app", "env": [{"name": "POD_IP", "value": "x"}]}]),
        {
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "env": [
                            {
                                "name": "POD_IP",
                                "value": None,
                                "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                            }
                        ],
                    }
                ]
            }
        },
        pod(
            containers=[
                {
                    "name": "app",
                    "env": [
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
                    ],
                }
            ]
        ),
    ),
    (
        "without value: null both value and valueFrom remain (validation's problem)",
        POD,
        pod(containers=[{"name": "app", "env": [{"name": "POD_IP", "value": "x"}]}]),
        {
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "env": [
                            {
                                "name": "POD_IP",
                                "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                            }
                        ],
                    }
                ]
            }
        },
        pod(
            containers=[
                {
                    "name": "app",
                    "env": [
                        {
                            "name": "POD_IP",
                            "value": "x",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        }
                    ],
                }
            ]
        ),
    ),
    (
        "$setElementOrder/env reorders the env list",
        POD,
        pod(containers=[{"name": "app", "env": [{"name": "A"}, {"name": "B"}, {"name": "C"}]}]),
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "app"}],
                "containers": [
                    {
                        "name": "app",
                        "$setElementOrder/env": [{"name": "C"}, {"name": "A"}, {"name": "B"}],
                    }
                ],
            }
        },
        pod(containers=[{"name": "app", "env": [{"name": "C"}, {"name": "A"}, {"name": "B"}]}]),
    ),
    (
        "$setElementOrder with an addition and a deletion",
        POD,
        pod(containers=[{"name": "app", "env": [{"name": "A"}, {"name": "B"}, {"name": "C"}]}]),
        {
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "$setElementOrder/env": [{"name": "D"}, {"name": "A"}, {"name": "C"}],
                        "env": [{"name": "D", "value": "4"}, {"$patch": "delete", "name": "B"}],
                    }
                ]
            }
        },
        pod(
            containers=[
                {"name": "app", "env": [{"name": "D", "value": "4"}, {"name": "A"}, {"name": "C"}]}
            ]
        ),
    ),
    (
        "$setElementOrder naming items that do not exist",
        POD,
        pod(containers=[{"name": "1"}, {"name": "3"}]),
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
                "containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}],
            }
        },
        pod(containers=[{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]),
    ),
    (
        "server-only items and a deletion plus an addition (Go's shared array decides)",
        POD,
        pod(containers=[{"name": "c"}, {"name": "b"}, {"name": "d"}]),
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "d"}],
                "containers": [
                    {"name": "a", "image": "new"},
                    {"name": "d", "image": "x"},
                    {"name": "c", "$patch": "delete"},
                ],
            }
        },
        pod(containers=[{"name": "b"}, {"name": "a", "image": "new"}, {"name": "d", "image": "x"}]),
    ),
    # --- other merge keys -------------------------------------------------------------
    (
        "container ports merge by containerPort",
        POD,
        pod(containers=[{"name": "app", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]),
        {
            "spec": {
                "containers": [{"name": "app", "ports": [{"containerPort": 443, "name": "https"}]}]
            }
        },
        pod(
            containers=[
                {
                    "name": "app",
                    "ports": [
                        {"containerPort": 443, "name": "https"},
                        {"containerPort": 80, "protocol": "TCP"},
                    ],
                }
            ]
        ),
    ),
    (
        "ports with the same containerPort merge even with another protocol (upstream's known flaw)",
        POD,
        pod(containers=[{"name": "app", "ports": [{"containerPort": 53, "protocol": "TCP"}]}]),
        {
            "spec": {
                "containers": [{"name": "app", "ports": [{"containerPort": 53, "protocol": "UDP"}]}]
            }
        },
        pod(containers=[{"name": "app", "ports": [{"containerPort": 53, "protocol": "UDP"}]}]),
    ),
    (
        "a float merge key value is not the same as an integer one",
        POD,
        pod(containers=[{"name": "app", "ports": [{"containerPort": 80}]}]),
        {
            "spec": {
                "containers": [{"name": "app", "ports": [{"containerPort": 80.0, "name": "x"}]}]
            }
        },
        pod(
            containers=[
                {
                    "name": "app",
                    "ports": [{"containerPort": 80.0, "name": "x"}, {"containerPort": 80}],
                }
            ]
        ),
    ),
    (
        "volumeMounts merge by mountPath",
        POD,
        pod(containers=[{"name": "app", "volumeMounts": [{"name": "a", "mountPath": "/a"}]}]),
        {
            "spec": {
                "containers": [{"name": "app", "volumeMounts": [{"name": "b", "mountPath": "/a"}]}]
            }
        },
        pod(containers=[{"name": "app", "volumeMounts": [{"name": "b", "mountPath": "/a"}]}]),
    ),
    (
        "Service ports merge by port",
        SERVICE,
        {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}},
    ),
    (
        "imagePullSecrets merge by name",
        POD,
        pod(imagePullSecrets=[{"name": "a"}]),
        {"spec": {"imagePullSecrets": [{"name": "b"}]}},
        pod(imagePullSecrets=[{"name": "b"}, {"name": "a"}]),
    ),
    (
        "ownerReferences merge by uid",
        POD,
        with_meta(pod(), ownerReferences=[{"uid": "u1", "name": "rs-1", "kind": "ReplicaSet"}]),
        {"metadata": {"ownerReferences": [{"uid": "u2", "name": "rs-2", "kind": "ReplicaSet"}]}},
        with_meta(
            pod(),
            ownerReferences=[
                {"uid": "u2", "name": "rs-2", "kind": "ReplicaSet"},
                {"uid": "u1", "name": "rs-1", "kind": "ReplicaSet"},
            ],
        ),
    ),
    (
        "status.conditions merge by type",
        DEPLOYMENT,
        {
            "status": {
                "conditions": [
                    {"type": "Available", "status": "True"},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
                ]
            }
        },
        {
            "status": {
                "conditions": [
                    {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}
                ]
            }
        },
        {
            "status": {
                "conditions": [
                    {
                        "type": "Available",
                        "status": "False",
                        "reason": "MinimumReplicasUnavailable",
                    },
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
                ]
            }
        },
    ),
    # --- volumes: merge by name with $retainKeys ---------------------------------------
    (
        "switch a volume from emptyDir to hostPath with $retainKeys",
        POD,
        pod(volumes=[{"name": "data", "emptyDir": {}}, {"name": "other", "emptyDir": {}}]),
        {
            "spec": {
                "volumes": [
                    {
                        "name": "data",
                        "hostPath": {"path": "/srv"},
                        "$retainKeys": ["hostPath", "name"],
                    }
                ]
            }
        },
        pod(
            volumes=[
                {"name": "data", "hostPath": {"path": "/srv"}},
                {"name": "other", "emptyDir": {}},
            ]
        ),
    ),
    (
        "without $retainKeys the old volume source stays",
        POD,
        pod(volumes=[{"name": "data", "emptyDir": {}}]),
        {"spec": {"volumes": [{"name": "data", "hostPath": {"path": "/srv"}}]}},
        pod(volumes=[{"name": "data", "emptyDir": {}, "hostPath": {"path": "/srv"}}]),
    ),
    (
        "a null member needs no place in $retainKeys",
        POD,
        pod(volumes=[{"name": "data", "emptyDir": {}}]),
        {"spec": {"volumes": [{"name": "data", "emptyDir": None, "$retainKeys": ["name"]}]}},
        pod(volumes=[{"name": "data"}]),
    ),
    # --- primitive lists -----------------------------------------------------------------
    (
        "finalizers (strategy merge) merge as a set",
        POD,
        with_meta(pod(), finalizers=["a", "b"]),
        {"metadata": {"finalizers": ["b", "c"]}},
        with_meta(pod(), finalizers=["a", "b", "c"]),
    ),
    (
        "a merged primitive list takes the patch's order",
        POD,
        with_meta(pod(), finalizers=["1", "2", "3"]),
        {"metadata": {"finalizers": ["3", "1"]}},
        with_meta(pod(), finalizers=["2", "3", "1"]),
    ),
    (
        "$deleteFromPrimitiveList/finalizers removes values",
        POD,
        with_meta(pod(), finalizers=["a", "b", "c"]),
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "x"]}},
        with_meta(pod(), finalizers=["a", "c"]),
    ),
    (
        "$deleteFromPrimitiveList of a missing list adds nothing",
        POD,
        pod(),
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}},
        pod(),
    ),
    (
        "$deleteFromPrimitiveList works on lists without merge strategy too",
        POD,
        pod(containers=[{"name": "app", "args": ["1", "2", "3"]}]),
        {"spec": {"containers": [{"name": "app", "$deleteFromPrimitiveList/args": ["2"]}]}},
        pod(containers=[{"name": "app", "args": ["1", "3"]}]),
    ),
    (
        "$setElementOrder/finalizers orders a primitive list",
        POD,
        with_meta(pod(), finalizers=["a", "b", "c"]),
        {"metadata": {"$setElementOrder/finalizers": ["c", "a", "b"]}},
        with_meta(pod(), finalizers=["c", "a", "b"]),
    ),
    (
        "Node podCIDRs (strategy merge, primitives)",
        NODE,
        {"spec": {"podCIDRs": ["10.0.0.0/24"]}},
        {"spec": {"podCIDRs": ["fd00::/64"]}},
        {"spec": {"podCIDRs": ["fd00::/64", "10.0.0.0/24"]}},
    ),
    (
        "lists without strategy are replaced (container args)",
        POD,
        pod(containers=[{"name": "app", "args": ["a", "b"]}]),
        {"spec": {"containers": [{"name": "app", "args": ["c"]}]}},
        pod(containers=[{"name": "app", "args": ["c"]}]),
    ),
]


@pytest.mark.parametrize(
    ("kind", "original", "body", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_strategic_merge_patch_of_lists(
    kind: tuple[str, str, str], original: dict[str, Any], body: Any, expected: dict[str, Any]
) -> None:
    before = copy.deepcopy((original, body))
    group, version, name = kind
    result = patch.apply_strategic_merge_patch(
        original, body, group=group, version=version, kind=name
    )
    assert result == expected
    assert (original, body) == before  # inputs untouched
