"""Strategic merge patch on real kinds: the Kubernetes docs' examples, maps, fallbacks.

The cases come from https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/
and from apimachinery's ``strategicpatch/patch_test.go``, moved onto the kinds
whose fields carry the same strategies (``retainKeysMap`` → a Deployment's
strategy, ``simpleMap`` → labels, ``replacingItem`` → a PodDisruptionBudget's
selector). Lists are in ``test_strategic_lists.py``. Each expected result is
what upstream's own code gives for the same input.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pilothouse.api import patch

DEPLOYMENT = ("apps", "v1", "Deployment")
POD = ("", "v1", "Pod")
PDB = ("policy", "v1", "PodDisruptionBudget")


def deployment(containers: list[dict[str, Any]], **pod_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "patch-demo", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": containers, **pod_spec},
            },
        },
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
TOLERATION = {"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}

# (id, kind, original, patch, expected)
CASES: list[tuple[str, tuple[str, str, str], dict[str, Any], Any, dict[str, Any]]] = [
    # --- the Kubernetes documentation's walk-through --------------------------------
    (
        "docs: a new container is merged into the list",
        DEPLOYMENT,
        deployment([NGINX], tolerations=[TOLERATION]),
        pod_spec_patch(containers=[REDIS]),
        deployment([REDIS, NGINX], tolerations=[TOLERATION]),
    ),
    (
        "docs: tolerations have no merge key and are replaced",
        DEPLOYMENT,
        deployment([NGINX], tolerations=[TOLERATION]),
        pod_spec_patch(tolerations=[{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]),
        deployment(
            [NGINX], tolerations=[{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]
        ),
    ),
    (
        "docs: strategy switch without $retainKeys keeps rollingUpdate",
        DEPLOYMENT,
        {
            "metadata": {"name": "retainkeys-demo"},
            "spec": {"strategy": {"rollingUpdate": {"maxSurge": "30%"}}},
        },
        {"spec": {"strategy": {"type": "Recreate"}}},
        {
            "metadata": {"name": "retainkeys-demo"},
            "spec": {"strategy": {"rollingUpdate": {"maxSurge": "30%"}, "type": "Recreate"}},
        },
    ),
    (
        "docs: strategy switch RollingUpdate to Recreate with $retainKeys drops rollingUpdate",
        DEPLOYMENT,
        {
            "metadata": {"name": "retainkeys-demo"},
            "spec": {
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "30%", "maxUnavailable": "25%"},
                }
            },
        },
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        {"metadata": {"name": "retainkeys-demo"}, "spec": {"strategy": {"type": "Recreate"}}},
    ),
    # --- maps ---------------------------------------------------------------------------
    (
        "labels and annotations merge; null deletes a key",
        POD,
        with_meta(pod(), labels={"app": "web", "tier": "fe"}, annotations={"a": "1"}),
        {"metadata": {"labels": {"tier": None, "team": "blue"}, "annotations": {"b": "2"}}},
        with_meta(pod(), labels={"app": "web", "team": "blue"}, annotations={"a": "1", "b": "2"}),
    ),
    (
        "null deletes a field; nulls in new subtrees are dropped",
        POD,
        pod(nodeName="n1", hostname="h"),
        {"spec": {"nodeName": None, "affinity": {"nodeAffinity": None}, "missing": None}},
        pod(hostname="h", affinity={}),
    ),
    (
        "$patch: replace on a map",
        POD,
        with_meta(pod(), labels={"a": "1", "b": "2"}),
        {"metadata": {"labels": {"c": "3", "$patch": "replace"}}},
        with_meta(pod(), labels={"c": "3"}),
    ),
    (
        "$patch: delete on a map empties it",
        POD,
        pod(nodeSelector={"disk": "ssd"}),
        {"spec": {"nodeSelector": {"$patch": "delete"}}},
        pod(nodeSelector={}),
    ),
    (
        "$patch: replace at the top replaces the object",
        POD,
        pod(hostname="h"),
        {"$patch": "replace", "kind": "Pod", "spec": {"nodeName": "n"}},
        {"kind": "Pod", "spec": {"nodeName": "n"}},
    ),
    (
        "new objects from the patch lose their $patch members",
        POD,
        pod(),
        {"spec": {"containers": [{"name": "a"}, {"name": "b", "$patch": "delete"}]}},
        pod(containers=[{"name": "a"}]),
    ),
    (
        "nodeSelector merges although its map type is atomic (SMP reads only the patch tags)",
        POD,
        pod(nodeSelector={"a": "1"}),
        {"spec": {"nodeSelector": {"b": "2"}}},
        pod(nodeSelector={"a": "1", "b": "2"}),
    ),
    (
        "a PodDisruptionBudget's selector (strategy replace) is replaced",
        PDB,
        {"spec": {"selector": {"matchLabels": {"a": "1"}}, "minAvailable": 1}},
        {"spec": {"selector": {"matchExpressions": [{"key": "b", "operator": "Exists"}]}}},
        {
            "spec": {
                "selector": {"matchExpressions": [{"key": "b", "operator": "Exists"}]},
                "minAvailable": 1,
            }
        },
    ),
    (
        "a value of another type replaces the old one",
        DEPLOYMENT,
        {"spec": {"replicas": 1, "strategy": {"type": "Recreate"}}},
        {"spec": {"replicas": 2.0, "strategy": "oops"}},
        {"spec": {"replicas": 2.0, "strategy": "oops"}},
    ),
    (
        "a null patch changes nothing",
        POD,
        pod(hostname="h"),
        None,
        pod(hostname="h"),
    ),
    (
        "unknown fields and unknown $-keys pass through to decoding",
        POD,
        pod(),
        {"spec": {"$foo": 1, "bogus": {"x": None}}},
        pod(**{"$foo": 1, "bogus": {}}),
    ),
]


@pytest.mark.parametrize(
    ("kind", "original", "body", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_strategic_merge_patch(
    kind: tuple[str, str, str], original: dict[str, Any], body: Any, expected: dict[str, Any]
) -> None:
    before = copy.deepcopy((original, body))
    group, version, name = kind
    result = patch.apply_strategic_merge_patch(
        original, body, group=group, version=version, kind=name
    )
    assert result == expected
    assert (original, body) == before  # inputs untouched


def test_result_shares_nothing_with_the_inputs() -> None:
    original = pod(containers=[{"name": "a", "env": [{"name": "X"}]}])
    body = {"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}
    result = patch.apply_strategic_merge_patch(original, body, group="", version="v1", kind="Pod")
    result["spec"]["containers"][0]["env"].append({"name": "Y"})
    result["spec"]["volumes"][0]["emptyDir"]["medium"] = "Memory"
    assert original["spec"]["containers"][0]["env"] == [{"name": "X"}]
    assert body["spec"]["volumes"][0]["emptyDir"] == {}


def test_kinds_without_schema_get_a_json_merge_patch() -> None:
    original = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "spec": {"items": [{"name": "a"}]},
    }
    body = {"spec": {"items": [{"name": "b"}], "size": None}}
    result = patch.apply_strategic_merge_patch(
        original, body, group="example.com", version="v1", kind="Widget"
    )
    assert result == {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "spec": {"items": [{"name": "b"}]},
    }


def test_which_kinds_support_strategic_merge() -> None:
    assert patch.strategic_merge_supported("apps", "v1", "Deployment")
    assert patch.strategic_merge_supported("", "v1", "Pod")
    assert not patch.strategic_merge_supported("example.com", "v1", "Widget")
    assert patch.UNSUPPORTED_MEDIA_TYPE.startswith(
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json"
    )
