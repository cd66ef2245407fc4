"""Bad input, tried as a new user would: every answer is a Status, none a 500."""

from __future__ import annotations

import json

import pytest

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p"},
    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
}


def _status(api, method: str, path: str, body=None, **kw) -> tuple[int, dict]:
    code, got = api.json(method, path, body, **kw)
    assert isinstance(got, dict), f"not JSON: {got!r}"
    assert got.get("kind") == "Status", got
    assert got["code"] == code
    assert code < 500, got
    assert "Traceback" not in json.dumps(got)
    return code, got


def test_malformed_json_and_yaml(api, namespace: str) -> None:
    code, st = _status(
        api, "POST", f"/api/v1/namespaces/{namespace}/pods", raw=b'{"apiVersion": "v1", "kind":'
    )
    assert code == 400 and st["reason"] == "BadRequest"
    code, st = _status(
        api,
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        raw=b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n data: [",
        content_type="application/yaml",
    )
    assert code == 400 and st["reason"] == "BadRequest"
    code, st = _status(api, "POST", f"/api/v1/namespaces/{namespace}/configmaps", raw=b"[1, 2]")
    assert code == 400


def test_wrong_api_version_for_path(api, namespace: str) -> None:
    body = {**POD, "apiVersion": "apps/v1"}
    code, st = _status(api, "POST", f"/api/v1/namespaces/{namespace}/pods", body)
    assert code == 400
    assert (
        st["message"]
        == "the API version in the data (apps/v1) does not match the expected API version (v1)"
    )


def test_invalid_names(api, namespace: str) -> None:
    for bad in ("Bad_Name", "-leading", "a" * 254, "UPPER", "trailing-newline\n"):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": bad}}
        code, st = _status(api, "POST", f"/api/v1/namespaces/{namespace}/configmaps", body)
        assert code == 422 and st["reason"] == "Invalid", st
        assert st["details"]["causes"][0]["field"] == "metadata.name"
    # Namespaces are DNS labels: no dots.
    code, st = _status(api, "POST", "/api/v1/namespaces", {"metadata": {"name": "has.dot"}})
    assert code == 422 and st["details"]["causes"][0]["field"] == "metadata.name"
    code, st = _status(api, "POST", f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {}})
    assert code == 422
    assert "name or generateName is required" in st["message"]


def test_missing_required_fields(api, namespace: str) -> None:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nocontainers"}, "spec": {}}
    code, st = _status(api, "POST", f"/api/v1/namespaces/{namespace}/pods", body)
    assert code == 422
    assert any(c["field"] == "spec.containers" for c in st["details"]["causes"])
    body = {**POD, "spec": {"containers": [{"name": "c"}]}}
    code, st = _status(api, "POST", f"/api/v1/namespaces/{namespace}/pods", body)
    assert code == 422
    assert any(c["field"] == "spec.containers[0].image" for c in st["details"]["causes"])


def test_unknown_fields_under_strict_warn_ignore(api, namespace: str) -> None:
    body = {**POD, "metadata": {"name": "strict"}, "spec": {**POD["spec"], "bogus": 1}}
    code, st = _status(
        api, "POST", f"/api/v1/namespaces/{namespace}/pods?fieldValidation=Strict", body
    )
    assert code == 400
    assert 'strict decoding error: unknown field "spec.bogus"' in st["message"]
    resp = api.request("POST", f"/api/v1/namespaces/{namespace}/pods?fieldValidation=Warn", body)
    assert resp.status == 201
    assert 'unknown field \\"spec.bogus\\"' in resp.headers.get("Warning", "")
    body["metadata"] = {"name": "ignored"}
    resp = api.request("POST", f"/api/v1/namespaces/{namespace}/pods?fieldValidation=Ignore", body)
    assert resp.status == 201 and "Warning" not in resp.headers
    dup = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d","name":"e"}}'
    code, st = _status(
        api, "POST", f"/api/v1/namespaces/{namespace}/configmaps?fieldValidation=Strict", raw=dup
    )
    assert code == 400 and 'duplicate field "metadata.name"' in st["message"]


def test_wrong_types_are_bad_requests(api, namespace: str) -> None:
    body = {**POD, "metadata": {"name": "types"}, "spec": {"containers": "nope"}}
    code, st = _status(api, "POST", f"/api/v1/namespaces/{namespace}/pods", body)
    assert code == 400
    assert "cannot be handled as a Pod" in st["message"] and "spec.containers" in st["message"]
    assert "cannot be handled as a Pod" in st["message"] and "spec.containers" in st["message"]


def test_huge_body_is_413(api, namespace: str) -> None:
    big = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "big"},
        "data": {"x": "a" * (4 * 1024 * 1024)},
    }
    code, st = _status(api, "POST", f"/api/v1/namespaces/{namespace}/configmaps", big)
    assert code == 413 and st["reason"] == "RequestEntityTooLarge"


@pytest.mark.parametrize(
    "query",
    [
        "limit=abc",
        "watch=maybe",
        "resourceVersion=xyz",
        "labelSelector=a%20in%20(",
        "labelSelector=%21%21",
        "fieldSelector=spec.foo%3Dbar",
        "timeoutSeconds=soon",
        "continue=not-a-token",
        "resourceVersionMatch=Sideways&resourceVersion=1",
        "includeObject=Everything",
    ],
)
def test_garbage_query_parameters(api, namespace: str, query: str) -> None:
    code, st = _status(api, "GET", f"/api/v1/namespaces/{namespace}/configmaps?{query}")
    assert code == 400, st


def test_garbage_write_options(api, namespace: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "opts"}}
    code, st = _status(
        api, "POST", f"/api/v1/namespaces/{namespace}/configmaps?dryRun=Sometimes", body
    )
    assert code == 422 and "dryRun" in st["message"]
    code, st = _status(
        api, "POST", f"/api/v1/namespaces/{namespace}/configmaps?fieldValidation=Loose", body
    )
    assert code == 422 and "fieldValidation" in st["message"]


def test_methods_media_types_and_paths(api, namespace: str) -> None:
    code, st = _status(
        api, "PUT", f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "x"}}
    )
    assert code == 405 and st["reason"] == "MethodNotAllowed"
    code, st = _status(
        api,
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        raw=b"name=x",
        content_type="text/plain",
    )
    assert code == 415
    code, st = _status(
        api, "GET", f"/api/v1/namespaces/{namespace}/configmaps", headers={"Accept": "image/png"}
    )
    assert code == 406
    code, st = _status(api, "GET", "/api/v1/namespaces/default/widgets")
    assert code == 404
    code, st = _status(api, "GET", "/apis/nothere.example.com/v1/things")
    assert code == 404
    code, st = _status(api, "GET", f"/api/v1/namespaces/{namespace}/configmaps/absent")
    assert code == 404 and st["message"] == 'configmaps "absent" not found'
    code, st = _status(
        api, "POST", "/api/v1/namespaces/no-such-ns/configmaps", {"metadata": {"name": "x"}}
    )
    assert code == 404 and st["message"] == 'namespaces "no-such-ns" not found'


def test_name_mismatch_and_namespace_mismatch(api, namespace: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "n1", "namespace": "elsewhere"},
    }
    code, st = _status(api, "POST", f"/api/v1/namespaces/{namespace}/configmaps", body)
    assert code == 400 and "does not match the namespace" in st["message"]
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n1"}}
    assert api.json("POST", f"/api/v1/namespaces/{namespace}/configmaps", body)[0] == 201
    code, st = _status(api, "PUT", f"/api/v1/namespaces/{namespace}/configmaps/n2", body)
    assert code == 400 and "does not match the name on the URL" in st["message"]


def test_anonymous_requests_are_403_and_bad_tokens_401(api_server) -> None:
    import ssl

    import urllib3

    ctx = ssl.create_default_context(cafile=str(api_server.server.pki.ca_cert))
    pool = urllib3.PoolManager(ssl_context=ctx, retries=False)
    # No credential: system:anonymous, whom RBAC refuses (upstream's wording).
    resp = pool.request("GET", api_server.url + "/api/v1/namespaces")
    assert resp.status == 403
    assert json.loads(resp.data)["message"] == (
        'namespaces is forbidden: User "system:anonymous" cannot list resource "namespaces" '
        'in API group "" at the cluster scope'
    )
    # A credential nobody accepts is a 401, never anonymous.
    resp = pool.request(
        "GET",
        api_server.url + "/api/v1/namespaces",
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert resp.status == 401
    assert json.loads(resp.data)["reason"] == "Unauthorized"
    assert pool.request("GET", api_server.url + "/healthz").data == b"ok"
