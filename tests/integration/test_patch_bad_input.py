"""Bad patches: clear Status errors, and nothing partially applied."""

from __future__ import annotations

import json

import pytest

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "d", "labels": {"a": "b"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "d"}},
        "template": {
            "metadata": {"labels": {"app": "d"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    },
}
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSONP = "application/json-patch+json"


@pytest.fixture
def deployment(api, namespace: str) -> str:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    code, body = api.json("POST", path, DEPLOYMENT)
    assert code == 201, body
    return f"{path}/d"


def _patch(api, path: str, body, content_type: str) -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    code, got = api.json("PATCH", path, raw=raw, content_type=content_type)
    assert isinstance(got, dict) and got.get("kind") == "Status", got
    assert code < 500 or got["code"] >= 500
    return code, got


def test_invalid_patch_documents(api, deployment: str) -> None:
    before = api.json("GET", deployment)[1]
    code, st = _patch(api, deployment, b"{not json", MERGE)
    assert code == 400 and st["reason"] == "BadRequest"
    code, st = _patch(api, deployment, {"op": "replace"}, JSONP)  # not a list
    assert code in (400, 422)
    code, st = _patch(api, deployment, [{"op": "frobnicate", "path": "/spec"}], JSONP)
    assert code in (400, 422)
    code, st = _patch(api, deployment, [{"op": "remove", "path": "/spec/nothing/here"}], JSONP)
    assert code == 422
    code, st = _patch(api, deployment, {"spec": {"$patch": "sideways"}}, STRATEGIC)
    assert code in (400, 422, 500)
    assert "sideways" in st["message"] or "patch" in st["message"]
    code, st = _patch(api, deployment, {"spec": {"replicas": 5}}, "application/x-yaml-patch")
    assert code == 415
    after = api.json("GET", deployment)[1]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_immutable_fields_are_refused_without_partial_changes(api, deployment: str) -> None:
    before = api.json("GET", deployment)[1]
    code, st = _patch(
        api, deployment, {"metadata": {"name": "other"}, "spec": {"replicas": 9}}, MERGE
    )
    assert code == 400 and "does not match the name on the URL" in st["message"]
    code, st = _patch(
        api, deployment, {"metadata": {"uid": "00000000-0000-0000-0000-000000000000"}}, MERGE
    )
    assert code == 409 and "Precondition failed: UID" in st["message"]
    code, st = _patch(
        api,
        deployment,
        {
            "spec": {
                "replicas": 9,
                "selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "x"}}},
            }
        },
        STRATEGIC,
    )
    assert code == 422 and st["reason"] == "Invalid"
    assert any(
        c["field"] == "spec.selector" and "field is immutable" in c["message"]
        for c in st["details"]["causes"]
    )
    after = api.json("GET", deployment)[1]
    assert after["spec"]["replicas"] == 2  # nothing partially applied
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_patch_of_missing_object_is_404(api, namespace: str) -> None:
    code, st = _patch(
        api,
        f"/apis/apps/v1/namespaces/{namespace}/deployments/ghost",
        {"spec": {"replicas": 1}},
        MERGE,
    )
    assert code == 404 and st["message"] == 'deployments.apps "ghost" not found'


def test_stale_resource_version_in_patch_conflicts(api, deployment: str) -> None:
    code, st = _patch(
        api, deployment, {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 3}}, MERGE
    )
    assert code == 409 and st["reason"] == "Conflict"


def test_apply_without_field_manager_and_force_on_merge(api, deployment: str) -> None:
    code, st = _patch(api, deployment, b"spec:\n  replicas: 3\n", "application/apply-patch+yaml")
    assert code == 422 and "fieldManager" in st["message"]
    code, st = _patch(api, deployment + "?force=true", {"spec": {"replicas": 3}}, MERGE)
    assert code == 422 and "force" in st["message"]
