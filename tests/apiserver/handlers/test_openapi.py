"""``/openapi/v3``: documents shaped as kube-apiserver's, and the HTTP behaviour of handler3."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiohttp import test_utils, web

from pilothouse.api import resources
from pilothouse.apiserver.handlers import openapi

REGISTRY = resources.DEFAULT
SMP = "application/strategic-merge-patch+json"


@pytest.fixture(scope="module")
def docs() -> openapi.OpenAPIV3:
    return openapi.OpenAPIV3(REGISTRY)


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def load(docs: openapi.OpenAPIV3, path: str) -> dict[str, Any]:
    found = docs.document(path)
    assert found is not None, path
    parsed: dict[str, Any] = orjson.loads(found[0])
    return parsed


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            elif key == "properties" and isinstance(value, dict):
                # Property names are data (JSONSchemaProps has a property named "$ref").
                for prop in value.values():
                    yield from refs(prop)
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method != "parameters":
                yield path, method, op


def test_index_lists_every_group_version_with_its_hash(docs: openapi.OpenAPIV3) -> None:
    index = orjson.loads(docs.index())
    paths = index["paths"]
    for group, version in REGISTRY.group_versions:
        entry = paths[gv_path(group, version)]
        url = entry["serverRelativeURL"]
        assert url.startswith(f"/openapi/v3/{gv_path(group, version)}?hash=")
        found = docs.document(gv_path(group, version))
        assert found is not None
        assert url.endswith("?hash=" + found[1])
        assert len(found[1]) == 128 and found[1] == found[1].upper()
    for extra in ("api", "apis", "apis/apps", "version"):
        assert extra in paths


def test_hashes_are_stable_across_servers(docs: openapi.OpenAPIV3) -> None:
    assert openapi.OpenAPIV3(REGISTRY).index() == docs.index()
    smaller = resources.Registry(tuple(r for r in REGISTRY.resources if r.kind != "StatefulSet"))
    other = orjson.loads(openapi.OpenAPIV3(smaller).index())["paths"]
    ours = orjson.loads(docs.index())["paths"]
    assert other["apis/apps/v1"] != ours["apis/apps/v1"]
    assert other["api/v1"] == ours["api/v1"]


def test_unknown_documents_are_none(docs: openapi.OpenAPIV3) -> None:
    assert docs.document("apis/nope/v1") is None
    assert docs.document("") is None


@pytest.mark.parametrize(
    "r", REGISTRY.resources, ids=lambda r: f"{r.group or 'core'}/{r.version}/{r.plural}"
)
def test_every_resource_has_paths_that_kubectl_can_use(
    docs: openapi.OpenAPIV3, r: resources.Resource
) -> None:
    doc = load(docs, gv_path(r.group, r.version))
    prefix = f"/apis/{r.group}/{r.version}" if r.group else f"/api/{r.version}"
    scope = "/namespaces/{namespace}" if r.namespaced else ""
    gvk = {"group": r.group, "kind": r.kind, "version": r.version}
    collection = doc["paths"][f"{prefix}{scope}/{r.plural}"]
    if "list" in r.verbs:
        assert collection["get"]["x-kubernetes-group-version-kind"] == gvk
        assert collection["get"]["x-kubernetes-action"] == "list"
        assert f"{prefix}/{r.plural}" in doc["paths"]  # what kubectl explain looks up first
    if "create" in r.verbs:
        post = collection["post"]
        assert post["x-kubernetes-action"] == "post"
        names = {p["name"] for p in [*post["parameters"], *collection.get("parameters", [])]}
        assert names >= {"dryRun", "fieldManager", "fieldValidation"}
    if "patch" in r.verbs:
        patch = doc["paths"][f"{prefix}{scope}/{r.plural}/{{name}}"]["patch"]
        assert patch["x-kubernetes-group-version-kind"] == gvk
        assert set(patch["requestBody"]["content"]) == {
            "application/json-patch+json",
            "application/merge-patch+json",
            SMP,
            "application/apply-patch+yaml",
        }
    # kubectl explain finds the schema by the GVK on the operation.
    schemas = doc["components"]["schemas"]
    assert any(gvk in s.get("x-kubernetes-group-version-kind", []) for s in schemas.values())


def _supports_query_param(doc: dict[str, Any], gvk: dict[str, str], param: str) -> bool:
    """cli-runtime's supportsQueryParamV3: the first PATCH operation with the GVK decides."""
    for _, method, op in operations(doc):
        if method == "patch" and op.get("x-kubernetes-group-version-kind") == gvk:
            return any(p["name"] == param and p["in"] == "query" for p in op.get("parameters", []))
    raise AssertionError(f"no PATCH operation for {gvk}")


@pytest.mark.parametrize(
    "r", [r for r in REGISTRY.resources if "patch" in r.verbs], ids=lambda r: r.plural
)
def test_every_patch_operation_of_a_kind_offers_field_validation(
    docs: openapi.OpenAPIV3, r: resources.Resource
) -> None:
    doc = load(docs, gv_path(r.group, r.version))
    gvk = {"group": r.group, "kind": r.kind, "version": r.version}
    assert _supports_query_param(doc, gvk, "fieldValidation")
    # Go iterates paths in random order: every such PATCH must qualify.
    for _, method, op in operations(doc):
        if method == "patch" and op["x-kubernetes-action"] == "patch":
            names = {p["name"] for p in op.get("parameters", [])}
            assert {"fieldValidation", "force", "fieldManager", "dryRun"} <= names, op[
                "operationId"
            ]
            assert SMP in op["requestBody"]["content"]


@pytest.mark.parametrize("group,version", REGISTRY.group_versions)
def test_documents_are_self_contained_openapi_3(
    docs: openapi.OpenAPIV3, group: str, version: str
) -> None:
    doc = load(docs, gv_path(group, version))
    assert doc["openapi"] == "3.0.0"
    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))
    for name, node in schemas.items():
        text = orjson.dumps(node).decode()
        assert "#/$defs/" not in text and '"null"' not in text, name


def test_schemas_take_upstream_v3_shapes(docs: openapi.OpenAPIV3) -> None:
    schemas = load(docs, "apis/apps/v1")["components"]["schemas"]
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["oneOf"] == [
        {"type": "integer"},
        {"type": "string"},
    ]
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    assert schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]["oneOf"] == [
        {"type": "string"},
        {"type": "number"},
    ]
    deployment = schemas["io.k8s.api.apps.v1.Deployment"]
    assert deployment["type"] == "object"
    assert deployment["properties"]["apiVersion"] == {
        "description": deployment["properties"]["apiVersion"]["description"],
        "type": "string",
    }
    assert deployment["properties"]["spec"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}
    ]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert "io.k8s.api.autoscaling.v1.Scale" in schemas  # the scale subresource's kind


def test_subresources_carry_upstream_kinds_and_ids(docs: openapi.OpenAPIV3) -> None:
    apps = load(docs, "apis/apps/v1")["paths"]
    scale = apps["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["patch"]["operationId"] == "patchAppsV1NamespacedDeploymentScale"
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "kind": "Scale",
        "version": "v1",
    }
    status = apps["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]
    assert status["get"]["operationId"] == "readAppsV1NamespacedDeploymentStatus"
    assert [p["name"] for p in status["parameters"]] == ["name", "namespace", "pretty"]
    watch = apps["/apis/apps/v1/watch/namespaces/{namespace}/deployments"]["get"]
    assert (watch["operationId"], watch["x-kubernetes-action"]) == (
        "watchAppsV1NamespacedDeploymentList",
        "watchlist",
    )
    assert apps["/apis/apps/v1/namespaces/{namespace}/deployments"]["delete"]["operationId"] == (
        "deleteAppsV1CollectionNamespacedDeployment"
    )
    core = load(docs, "api/v1")["paths"]
    exec_path = core["/api/v1/namespaces/{namespace}/pods/{name}/exec"]
    assert exec_path["post"]["operationId"] == "connectCoreV1PostNamespacedPodExec"
    assert exec_path["post"]["x-kubernetes-action"] == "connect"
    assert "command" in {p["name"] for p in exec_path["parameters"]}
    log = core["/api/v1/namespaces/{namespace}/pods/{name}/log"]
    assert log["get"]["operationId"] == "readCoreV1NamespacedPodLog"
    assert "tailLines" in {p["name"] for p in log["parameters"]}  # one operation: all shared
    binding = core["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"]
    assert binding["x-kubernetes-group-version-kind"] == {
        "group": "",
        "kind": "Binding",
        "version": "v1",
    }
    assert core["/api/v1/nodes"]["post"]["description"] == "create a Node"
    assert (
        core["/api/v1/namespaces/{namespace}/endpoints"]["post"]["description"]
        == "create Endpoints"
    )


# --- HTTP ---------------------------------------------------------------------------


@pytest.fixture
async def client(docs: openapi.OpenAPIV3) -> AsyncIterator[test_utils.TestClient[Any, Any]]:
    app = web.Application()
    docs.add_routes(app.router)
    async with test_utils.TestClient(test_utils.TestServer(app)) as client:
        yield client


async def test_index_has_an_etag_and_answers_304(client: test_utils.TestClient[Any, Any]) -> None:
    resp = await client.get("/openapi/v3")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    etag = resp.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert "paths" in await resp.json()
    again = await client.get("/openapi/v3", headers={"If-None-Match": etag})
    assert again.status == 304


async def test_documents_with_their_hash_are_immutable(
    client: test_utils.TestClient[Any, Any], docs: openapi.OpenAPIV3
) -> None:
    url = orjson.loads(docs.index())["paths"]["apis/apps/v1"]["serverRelativeURL"]
    resp = await client.get(url, headers={"Accept": "application/json"})
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "public, immutable"
    assert "Expires" in resp.headers
    assert resp.headers["ETag"] == '"' + url.rsplit("=", 1)[1] + '"'
    body = await resp.json()
    assert "/apis/apps/v1/namespaces/{namespace}/deployments" in body["paths"]
    cached = await client.get(url, headers={"If-None-Match": resp.headers["ETag"]})
    assert cached.status == 304
    plain = await client.get("/openapi/v3/apis/apps/v1")
    assert plain.status == 200 and "Cache-Control" not in plain.headers


async def test_a_stale_hash_is_redirected(
    client: test_utils.TestClient[Any, Any], docs: openapi.OpenAPIV3
) -> None:
    resp = await client.get("/openapi/v3/api/v1?hash=OLD", allow_redirects=False)
    assert resp.status == 301
    assert (
        resp.headers["Location"]
        == orjson.loads(docs.index())["paths"]["api/v1"]["serverRelativeURL"]
    )


async def test_unknown_paths_are_404_status(client: test_utils.TestClient[Any, Any]) -> None:
    resp = await client.get("/openapi/v3/apis/nope/v1")
    assert resp.status == 404
    body = await resp.json()
    assert body["kind"] == "Status" and body["reason"] == "NotFound" and body["code"] == 404


async def test_protobuf_only_is_not_acceptable(client: test_utils.TestClient[Any, Any]) -> None:
    pb = "application/com.github.proto-openapi.spec.v3.v1.0+protobuf"
    resp = await client.get("/openapi/v3/api/v1", headers={"Accept": pb})
    assert resp.status == 406
    assert (
        await client.get("/openapi/v3/api/v1", headers={"Accept": f"{pb}, application/json"})
    ).status == 200


async def test_big_documents_are_gzipped_for_clients_that_ask(
    client: test_utils.TestClient[Any, Any],
) -> None:
    resp = await client.get("/openapi/v3/api/v1", headers={"Accept-Encoding": "gzip"})
    assert resp.status == 200
    assert resp.headers["Content-Encoding"] == "gzip"
    assert "paths" in await resp.json()  # the client decompresses
