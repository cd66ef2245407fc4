"""Serving CustomResourceDefinitions over HTTP: discovery, OpenAPI, tables, names,
deletion with objects' own finalizers, and a restart."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilothouse import testing

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def crd(
    group: str, *, plural: str = "widgets", kind: str = "Widget", columns: bool = False
) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "description": "What the widget should be.",
                        "properties": {"size": {"type": "integer"}},
                    }
                },
            }
        },
    }
    if columns:
        version["additionalPrinterColumns"] = [
            {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}
        ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "kind": kind,
                "shortNames": [plural[:3]],
                "categories": ["all"],
            },
            "versions": [version],
        },
    }


def widget(group: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": name, **extra},
        "spec": {"size": 3},
    }


def unique_group() -> str:
    return f"g{uuid.uuid4().hex[:8]}.example.com"


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_served_at_once_in_discovery_and_openapi(api: Any, namespace: str) -> None:
    group = unique_group()
    status, body = api.json("POST", CRDS, crd(group, columns=True))
    assert status == 201, body
    # Served as soon as the create was answered.
    status, body = api.json(
        "POST", f"/apis/{group}/v1/namespaces/{namespace}/widgets", widget(group, "w1")
    )
    assert status == 201, body

    status, legacy = api.json("GET", f"/apis/{group}/v1")
    assert status == 200
    entries = {r["name"]: r for r in legacy["resources"]}
    assert entries["widgets"]["shortNames"] == ["wid"]
    assert entries["widgets"]["categories"] == ["all"]
    assert entries["widgets"]["singularName"] == "widget"
    assert set(entries["widgets"]["verbs"]) == {
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    }
    assert entries["widgets/status"]["verbs"] == ["get", "patch", "update"]
    status, groups = api.json("GET", "/apis")
    assert any(g["name"] == group for g in groups["groups"])
    status, aggregated = api.json("GET", "/apis", headers={"Accept": AGGREGATED})
    found = [g for g in aggregated["items"] if g["metadata"]["name"] == group]
    assert found and found[0]["versions"][0]["resources"][0]["resource"] == "widgets"

    status, index = api.json("GET", "/openapi/v3")
    url = index["paths"][f"apis/{group}/v1"]["serverRelativeURL"]
    status, doc = api.json("GET", url)
    assert status == 200
    name = ".".join(reversed(group.split("."))) + ".v1.Widget"
    schema = doc["components"]["schemas"][name]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": group, "kind": "Widget", "version": "v1"}
    ]
    assert schema["properties"]["spec"]["description"] == "What the widget should be."
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in doc["components"]["schemas"]
    patch = doc["paths"][f"/apis/{group}/v1/namespaces/{{namespace}}/widgets/{{name}}"]["patch"]
    assert sorted(patch["requestBody"]["content"]) == [
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    ]

    # Tables: the declared column, no Age since a column is declared.
    status, table = api.json(
        "GET", f"/apis/{group}/v1/namespaces/{namespace}/widgets", headers={"Accept": TABLE}
    )
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size"]
    assert table["rows"][0]["cells"] == ["w1", 3]
    api.request("DELETE", f"{CRDS}/widgets.{group}")


def test_age_is_the_only_column_when_none_is_declared(api: Any, namespace: str) -> None:
    group = unique_group()
    assert api.json("POST", CRDS, crd(group))[0] == 201
    api.json("POST", f"/apis/{group}/v1/namespaces/{namespace}/widgets", widget(group, "w1"))
    status, table = api.json(
        "GET", f"/apis/{group}/v1/namespaces/{namespace}/widgets/w1", headers={"Accept": TABLE}
    )
    assert status == 200
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["rows"][0]["cells"][0] == "w1"
    api.request("DELETE", f"{CRDS}/widgets.{group}")


def test_clashing_names_are_not_accepted(api: Any) -> None:
    group = unique_group()
    assert api.json("POST", CRDS, crd(group))[0] == 201
    status, body = api.json("POST", CRDS, crd(group, plural="gadgets", kind="Widget"))
    assert status == 201, body

    def reported() -> bool:
        _, obj = api.json("GET", f"{CRDS}/gadgets.{group}")
        conditions = {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}
        return "NamesAccepted" in conditions

    eventually(reported)
    _, obj = api.json("GET", f"{CRDS}/gadgets.{group}")
    conditions = {c["type"]: c for c in obj["status"]["conditions"]}
    assert conditions["NamesAccepted"]["status"] == "False"
    # Every name is checked; the last conflict is reported (as upstream).
    assert conditions["NamesAccepted"]["reason"] == "ListKindConflict"
    assert conditions["NamesAccepted"]["message"] == '"WidgetList" is already in use'
    assert conditions["Established"]["status"] == "False"
    assert api.json("GET", f"/apis/{group}/v1/namespaces/default/gadgets")[0] == 404
    for plural in ("widgets", "gadgets"):
        api.request("DELETE", f"{CRDS}/{plural}.{group}")


def test_bad_crds_and_bad_objects_get_upstreams_messages(api: Any, namespace: str) -> None:
    group = unique_group()
    bad = crd(group)
    bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "size"
    ] = {}
    status, body = api.json("POST", CRDS, bad)
    assert status == 422
    assert body["reason"] == "Invalid"
    assert body["message"] == (
        f'CustomResourceDefinition.apiextensions.k8s.io "widgets.{group}" is invalid: '
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].type: "
        "Required value: must not be empty for specified object fields"
    )
    assert api.json("POST", CRDS, crd(group))[0] == 201
    obj = widget(group, "w1")
    obj["spec"]["size"] = "big"
    status, body = api.json("POST", f"/apis/{group}/v1/namespaces/{namespace}/widgets", obj)
    assert status == 422
    assert body["message"] == (
        f'Widget.{group} "w1" is invalid: spec.size: Invalid value: "string": '
        'spec.size in body must be of type integer: "string"'
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueTypeInvalid",
            "message": 'Invalid value: "string": spec.size in body must be of type integer: "string"',
            "field": "spec.size",
        }
    ]
    api.request("DELETE", f"{CRDS}/widgets.{group}")


def test_deleting_a_crd_waits_for_objects_with_finalizers(api: Any, namespace: str) -> None:
    group = unique_group()
    assert api.json("POST", CRDS, crd(group))[0] == 201
    base = f"/apis/{group}/v1/namespaces/{namespace}/widgets"
    assert api.json("POST", base, widget(group, "held", finalizers=["example.com/hold"]))[0] == 201
    assert api.json("POST", base, widget(group, "free"))[0] == 201
    status, body = api.json("DELETE", f"{CRDS}/widgets.{group}")
    assert status == 200, body
    assert "customresourcecleanup.apiextensions.k8s.io" in body["metadata"]["finalizers"]

    def terminating() -> bool:
        _, obj = api.json("GET", f"{CRDS}/widgets.{group}")
        conditions = {c["type"]: c for c in obj["status"]["conditions"]}
        return conditions.get("Terminating", {}).get("reason") == "InstanceDeletionCheck"

    eventually(terminating)
    assert api.json("GET", f"{base}/free")[0] == 404
    _, held = api.json("GET", f"{base}/held")
    assert held["metadata"]["deletionTimestamp"]
    status, body = api.json("POST", base, widget(group, "late"))
    assert status == 405
    assert body["message"] == "create not allowed while custom resource definition is terminating"

    api.json(
        "PATCH",
        f"{base}/held",
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )
    eventually(lambda: api.json("GET", f"{CRDS}/widgets.{group}")[0] == 404)
    assert api.json("GET", base)[0] == 404


def test_custom_resources_survive_a_restart(tmp_path: Path, api_client: Any) -> None:
    group = unique_group()
    data = tmp_path / "data"
    API = api_client

    with testing.server_thread(data) as srv:
        api = API(srv)
        assert api.json("POST", CRDS, crd(group))[0] == 201
        assert (
            api.json("POST", f"/apis/{group}/v1/namespaces/default/widgets", widget(group, "kept"))[
                0
            ]
            == 201
        )
    with testing.server_thread(data) as srv:
        api = API(srv)
        status, body = api.json("GET", f"/apis/{group}/v1/namespaces/default/widgets/kept")
        assert status == 200, body
        assert body["spec"] == {"size": 3}
        status, listed = api.json("GET", f"/apis/{group}/v1/widgets")
        assert [o["metadata"]["name"] for o in listed["items"]] == ["kept"]


def test_deprecated_versions_answer_with_a_warning(api: Any, namespace: str) -> None:
    group = unique_group()
    definition = crd(group)
    v1 = definition["spec"]["versions"][0]
    definition["spec"]["versions"] = [
        {**v1, "name": "v1beta1", "storage": False, "deprecated": True},
        {
            **v1,
            "name": "v1alpha1",
            "storage": False,
            "deprecated": True,
            "deprecationWarning": "use v1",
        },
        v1,
    ]
    assert api.json("POST", CRDS, definition)[0] == 201
    resp = api.request("GET", f"/apis/{group}/v1beta1/namespaces/{namespace}/widgets")
    assert resp.status == 200
    assert resp.headers["Warning"] == f'299 - "{group}/v1beta1 Widget is deprecated"'
    resp = api.request("GET", f"/apis/{group}/v1alpha1/namespaces/{namespace}/widgets")
    assert resp.headers["Warning"] == '299 - "use v1"'
    assert (
        "Warning"
        not in api.request("GET", f"/apis/{group}/v1/namespaces/{namespace}/widgets").headers
    )
    # Discovery prefers the GA version, then beta, then alpha.
    _, group_doc = api.json("GET", f"/apis/{group}")
    assert [v["version"] for v in group_doc["versions"]] == ["v1", "v1beta1", "v1alpha1"]
    assert group_doc["preferredVersion"]["version"] == "v1"
    api.request("DELETE", f"{CRDS}/widgets.{group}")
