"""Response bodies byte for byte as upstream writes them: every JSON body ends
with a newline (Go's ``json.Encoder``), Status fields and object fields come in
the order of upstream's structs, watch events are one JSON document a line."""

from __future__ import annotations

import json
from typing import Any

import pytest

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def _cm(namespace: str, name: str) -> tuple[str, dict[str, Any]]:
    return f"/api/v1/namespaces/{namespace}/configmaps", {
        # Written in an order no Go struct has; answered in ConfigMap's.
        "data": {"k": "v"},
        "metadata": {"labels": {"a": "b"}, "name": name},
        "kind": "ConfigMap",
        "apiVersion": "v1",
    }


def test_every_kind_of_json_body_ends_with_one_newline(api: Any, namespace: str) -> None:
    base, body = _cm(namespace, "nl")
    bodies = {
        "create": api.request("POST", base, body),
        "get": api.request("GET", base + "/nl"),
        "list": api.request("GET", base),
        "table": api.request("GET", base, headers={"Accept": TABLE}),
        "patch": api.request(
            "PATCH",
            base + "/nl",
            {"data": {"k": "w"}},
            content_type="application/merge-patch+json",
        ),
        "conflict": api.request("POST", base, body),
        "not found": api.request("GET", base + "/missing"),
        "invalid": api.request("POST", base, {"metadata": {"name": "Bad_Name"}}),
        "bad request": api.request("POST", base, raw=b"{nope"),
        "discovery /api": api.request("GET", "/api"),
        "discovery /apis": api.request("GET", "/apis"),
        "discovery /api/v1": api.request("GET", "/api/v1"),
        "aggregated discovery": api.request("GET", "/apis", headers={"Accept": AGGREGATED}),
        "unknown path": api.request("GET", "/api/v1/nonsense"),
        "delete": api.request("DELETE", base + "/nl"),
    }
    for what, resp in bodies.items():
        assert resp.data.endswith(b"}\n") and not resp.data.endswith(b"\n\n"), what
        json.loads(resp.data)  # still one JSON document


def test_status_bodies_are_upstreams_bytes(api: Any, namespace: str) -> None:
    base, body = _cm(namespace, "dup")
    api.request("POST", base, body)
    resp = api.request("POST", base, body)
    assert resp.status == 409
    assert resp.data == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"configmaps \\"dup\\" already exists","reason":"AlreadyExists",'
        b'"details":{"name":"dup","kind":"configmaps"},"code":409}\n'
    )
    resp = api.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/none")
    assert resp.data == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"deployments.apps \\"none\\" not found","reason":"NotFound",'
        b'"details":{"name":"none","group":"apps","kind":"deployments"},"code":404}\n'
    )


def test_objects_come_back_in_struct_order(api: Any, namespace: str) -> None:
    base, body = _cm(namespace, "order")
    created = json.loads(api.request("POST", base, body).data)
    assert list(created) == ["kind", "apiVersion", "metadata", "data"]
    assert list(created["metadata"]) == [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "labels",
        "managedFields",
    ]
    for got in (
        json.loads(api.request("GET", base + "/order").data),
        json.loads(api.request("GET", base).data)["items"][0],
    ):
        assert list(got) == ["kind", "apiVersion", "metadata", "data"]
        assert list(got["metadata"])[:3] == ["name", "namespace", "uid"]
    pod = json.loads(
        api.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods",
            {
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                "metadata": {"name": "p"},
            },
        ).data
    )
    assert list(pod) == ["kind", "apiVersion", "metadata", "spec", "status"]


def test_version_is_indented_like_upstreams(api: Any) -> None:
    resp = api.request("GET", "/version")
    assert resp.data.startswith(b'{\n  "major": "1",\n  "minor": "32",')
    assert resp.data.endswith(b"\n}")


@pytest.mark.parametrize("accept", ["application/json", TABLE])
def test_watch_events_are_newline_delimited(api: Any, namespace: str, accept: str) -> None:
    base, body = _cm(namespace, "w1")
    api.request("POST", base, body)
    api.request("POST", base, _cm(namespace, "w2")[1])
    resp = api.request(
        "GET",
        base + "?watch=true&timeoutSeconds=1&labelSelector=a%3Db",
        headers={"Accept": accept},
        preload=False,
    )
    raw = resp.read()
    resp.release_conn()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    assert len(lines) == 2
    for line in lines:
        event = json.loads(line)
        assert list(event) == ["type", "object"] and event["type"] == "ADDED"
        if accept == "application/json":
            assert list(event["object"])[:3] == ["kind", "apiVersion", "metadata"]
        else:
            assert event["object"]["kind"] == "Table"
