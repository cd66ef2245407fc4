"""What client-side ``kubectl apply`` sends on a second and third apply, and what it yields.

kubectl (``pkg/cmd/apply/patcher.go``) computes a strategic merge patch with
apimachinery's ``CreateThreeWayMergePatch(original, modified, current)``:
*original* is the last-applied annotation, *modified* the new manifest with the
annotation set to itself, *current* the live object. The patch is the
additions and changes from current to modified, plus the deletions from
original to modified: a removed label becomes ``null``, a removed env var a
``{"$patch": "delete", "name": …}`` item, and every list touched gets a
``$setElementOrder/<list>`` naming the items of modified in order. The patches
below are written out from that logic (and are, byte for byte, what upstream's
``CreateThreeWayMergePatch`` produces for these objects).
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

from pilothouse.api import patch

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
POD_IP = {
    "name": "POD_IP",
    "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
}


def manifest(labels: dict[str, str], env: list[dict[str, Any]], image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": image,
                            "env": env,
                            "ports": [{"containerPort": 80}],
                        }
                    ]
                },
            },
        },
    }


def last_applied(obj: dict[str, Any]) -> str:
    # kubectl stores the manifest as its JSON encoder writes it: sorted keys, newline.
    return json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n"


FIRST = manifest(
    {"app": "web", "tier": "frontend", "team": "blue"},
    [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, POD_IP],
    "nginx:1.25",
)
SECOND = manifest(
    {"app": "web", "team": "blue"}, [{"name": "A", "value": "1"}, POD_IP], "nginx:1.25"
)
THIRD = manifest({"app": "web"}, [POD_IP], "nginx:1.27")


def live_after_create() -> dict[str, Any]:
    """The Deployment as the server stores FIRST: defaulted, with status."""
    live = copy.deepcopy(FIRST)
    live["metadata"].update(
        {
            "uid": "5b9b6c8e-0000-4000-8000-000000000001",
            "resourceVersion": "1001",
            "generation": 1,
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "annotations": {
                LAST_APPLIED: last_applied(FIRST),
                "deployment.kubernetes.io/revision": "1",
            },
        }
    )
    live["spec"].update(
        {
            "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 10,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
        }
    )
    pod_spec = live["spec"]["template"]["spec"]
    pod_spec.update(
        {
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30,
        }
    )
    container = pod_spec["containers"][0]
    container.update(
        {
            "imagePullPolicy": "IfNotPresent",
            "resources": {},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }
    )
    container["ports"][0]["protocol"] = "TCP"
    live["status"] = {
        "observedGeneration": 1,
        "replicas": 2,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    }
    return live


# Second apply: label "tier" and env var "B" removed from the manifest.
SECOND_PATCH = {
    "metadata": {
        "annotations": {LAST_APPLIED: last_applied(SECOND)},
        "labels": {"tier": None},
    },
    "spec": {
        "template": {
            "spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [
                    {
                        "$setElementOrder/env": [{"name": "A"}, {"name": "POD_IP"}],
                        "env": [{"$patch": "delete", "name": "B"}],
                        "name": "nginx",
                    }
                ],
            }
        }
    },
}

# Third apply: label "team" and env var "A" removed, image bumped.
THIRD_PATCH = {
    "metadata": {
        "annotations": {LAST_APPLIED: last_applied(THIRD)},
        "labels": {"team": None},
    },
    "spec": {
        "template": {
            "spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [
                    {
                        "$setElementOrder/env": [{"name": "POD_IP"}],
                        "env": [{"$patch": "delete", "name": "A"}],
                        "image": "nginx:1.27",
                        "name": "nginx",
                    }
                ],
            }
        }
    },
}


def apply(live: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return patch.apply_strategic_merge_patch(
        live, body, group="apps", version="v1", kind="Deployment"
    )


def test_second_apply_removes_the_label_and_the_env_var() -> None:
    live = live_after_create()
    second = apply(live, SECOND_PATCH)

    assert second["metadata"]["labels"] == {"app": "web", "team": "blue"}
    assert second["metadata"]["annotations"] == {
        LAST_APPLIED: last_applied(SECOND),
        "deployment.kubernetes.io/revision": "1",
    }
    container = second["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "A", "value": "1"}, POD_IP]
    # Everything the manifest does not mention stays as the server had it.
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert second["spec"]["strategy"] == live["spec"]["strategy"]
    assert second["status"] == live["status"]
    assert second["metadata"]["uid"] == live["metadata"]["uid"]


def test_third_apply_removes_more_and_changes_the_image() -> None:
    second = apply(live_after_create(), SECOND_PATCH)
    third = apply(second, THIRD_PATCH)

    assert third["metadata"]["labels"] == {"app": "web"}
    assert third["spec"]["template"]["spec"]["containers"] == [
        {
            "name": "nginx",
            "image": "nginx:1.27",
            "env": [POD_IP],
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "imagePullPolicy": "IfNotPresent",
            "resources": {},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }
    ]
    # The result is the manifest, plus what the server owns.
    assert {k: third["spec"][k] for k in THIRD["spec"] if k != "template"} == {
        k: v for k, v in THIRD["spec"].items() if k != "template"
    }


def test_reapplying_the_same_manifest_changes_nothing() -> None:
    # kubectl sends {} then; a patch of only the annotation is the next smallest.
    second = apply(live_after_create(), SECOND_PATCH)
    assert apply(second, {}) == second
    body = {"metadata": {"annotations": {LAST_APPLIED: last_applied(SECOND)}}}
    assert apply(second, body) == second


def test_an_apply_patch_takes_well_under_a_millisecond() -> None:
    live = live_after_create()
    best = float("inf")
    for _ in range(50):
        started = time.perf_counter()
        apply(live, SECOND_PATCH)
        best = min(best, time.perf_counter() - started)
    assert best < 0.001
