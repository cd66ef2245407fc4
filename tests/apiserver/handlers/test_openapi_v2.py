"""``/openapi/v2``: the swagger 2.0 document, its gnostic protobuf, negotiation and caching.

The protobuf is decoded here with the ``protobuf`` package and a descriptor written
from gnostic's ``OpenAPIv2.proto`` field numbers — independent of the encoder under
test — and every message is checked to hold no field the descriptor does not know.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import test_utils, web
from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    message,
    message_factory,
    unknown_fields,
)

from pilothouse.api import resources
from pilothouse.apiserver.handlers import openapi, openapi_v2, openapi_v2_convert

PROTO_ACCEPT = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"

# gnostic openapiv2/OpenAPIv2.proto, the messages kube-apiserver's document uses:
# name -> [(field, number, type or message, repeated)].
_T = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _T.TYPE_STRING,
    "bool": _T.TYPE_BOOL,
    "int64": _T.TYPE_INT64,
    "double": _T.TYPE_DOUBLE,
}
GNOSTIC: dict[str, list[tuple[str, int, str, bool]]] = {
    "Any": [("yaml", 2, "string", False)],
    "NamedAny": [("name", 1, "string", False), ("value", 2, "Any", False)],
    "Document": [
        ("swagger", 1, "string", False),
        ("info", 2, "Info", False),
        ("paths", 8, "Paths", False),
        ("definitions", 9, "Definitions", False),
        ("parameters", 10, "ParameterDefinitions", False),
        ("security", 12, "SecurityRequirement", True),
        ("security_definitions", 13, "SecurityDefinitions", False),
        ("vendor_extension", 16, "NamedAny", True),
    ],
    "Info": [("title", 1, "string", False), ("version", 2, "string", False)],
    "Paths": [("vendor_extension", 1, "NamedAny", True), ("path", 2, "NamedPathItem", True)],
    "NamedPathItem": [("name", 1, "string", False), ("value", 2, "PathItem", False)],
    "PathItem": [
        ("get", 2, "Operation", False),
        ("put", 3, "Operation", False),
        ("post", 4, "Operation", False),
        ("delete", 5, "Operation", False),
        ("options", 6, "Operation", False),
        ("head", 7, "Operation", False),
        ("patch", 8, "Operation", False),
        ("parameters", 9, "ParametersItem", True),
        ("vendor_extension", 10, "NamedAny", True),
    ],
    "Operation": [
        ("tags", 1, "string", True),
        ("description", 3, "string", False),
        ("operation_id", 5, "string", False),
        ("produces", 6, "string", True),
        ("consumes", 7, "string", True),
        ("parameters", 8, "ParametersItem", True),
        ("responses", 9, "Responses", False),
        ("schemes", 10, "string", True),
        ("deprecated", 11, "bool", False),
        ("vendor_extension", 13, "NamedAny", True),
    ],
    "ParametersItem": [
        ("parameter", 1, "Parameter", False),
        ("json_reference", 2, "JsonReference", False),
    ],
    "JsonReference": [("_ref", 1, "string", False), ("description", 2, "string", False)],
    "Parameter": [
        ("body_parameter", 1, "BodyParameter", False),
        ("non_body_parameter", 2, "NonBodyParameter", False),
    ],
    "BodyParameter": [
        ("description", 1, "string", False),
        ("name", 2, "string", False),
        ("in", 3, "string", False),
        ("required", 4, "bool", False),
        ("schema", 5, "Schema", False),
    ],
    "NonBodyParameter": [
        ("query_parameter_sub_schema", 3, "QueryParameterSubSchema", False),
        ("path_parameter_sub_schema", 4, "PathParameterSubSchema", False),
    ],
    "QueryParameterSubSchema": [
        ("required", 1, "bool", False),
        ("in", 2, "string", False),
        ("description", 3, "string", False),
        ("name", 4, "string", False),
        ("type", 6, "string", False),
        ("unique_items", 20, "bool", False),
    ],
    "PathParameterSubSchema": [
        ("required", 1, "bool", False),
        ("in", 2, "string", False),
        ("description", 3, "string", False),
        ("name", 4, "string", False),
        ("type", 5, "string", False),
        ("unique_items", 19, "bool", False),
    ],
    "Responses": [("response_code", 1, "NamedResponseValue", True)],
    "NamedResponseValue": [("name", 1, "string", False), ("value", 2, "ResponseValue", False)],
    "ResponseValue": [("response", 1, "Response", False)],
    "Response": [("description", 1, "string", False), ("schema", 2, "SchemaItem", False)],
    "SchemaItem": [("schema", 1, "Schema", False)],
    "Definitions": [("additional_properties", 1, "NamedSchema", True)],
    "NamedSchema": [("name", 1, "string", False), ("value", 2, "Schema", False)],
    "Schema": [
        ("_ref", 1, "string", False),
        ("format", 2, "string", False),
        ("description", 4, "string", False),
        ("default", 5, "Any", False),
        ("maximum", 7, "double", False),
        ("minimum", 9, "double", False),
        ("max_length", 11, "int64", False),
        ("min_length", 12, "int64", False),
        ("pattern", 13, "string", False),
        ("max_items", 14, "int64", False),
        ("min_items", 15, "int64", False),
        ("unique_items", 16, "bool", False),
        ("required", 19, "string", True),
        ("enum", 20, "Any", True),
        ("additional_properties", 21, "AdditionalPropertiesItem", False),
        ("type", 22, "TypeItem", False),
        ("items", 23, "ItemsItem", False),
        ("properties", 25, "Properties", False),
        ("vendor_extension", 31, "NamedAny", True),
    ],
    "AdditionalPropertiesItem": [("schema", 1, "Schema", False), ("boolean", 2, "bool", False)],
    "TypeItem": [("value", 1, "string", True)],
    "ItemsItem": [("schema", 1, "Schema", True)],
    "Properties": [("additional_properties", 1, "NamedSchema", True)],
    "ParameterDefinitions": [("additional_properties", 1, "NamedParameter", True)],
    "NamedParameter": [("name", 1, "string", False), ("value", 2, "Parameter", False)],
    "SecurityRequirement": [("additional_properties", 1, "NamedStringArray", True)],
    "NamedStringArray": [("name", 1, "string", False), ("value", 2, "StringArray", False)],
    "StringArray": [("value", 1, "string", True)],
    "SecurityDefinitions": [("additional_properties", 1, "NamedSecurityDefinitionsItem", True)],
    "NamedSecurityDefinitionsItem": [
        ("name", 1, "string", False),
        ("value", 2, "SecurityDefinitionsItem", False),
    ],
    "SecurityDefinitionsItem": [("api_key_security", 2, "ApiKeySecurity", False)],
    "ApiKeySecurity": [
        ("type", 1, "string", False),
        ("name", 2, "string", False),
        ("in", 3, "string", False),
        ("description", 4, "string", False),
    ],
}


def _document_class() -> type[message.Message]:
    proto = descriptor_pb2.FileDescriptorProto(
        name="test_openapiv2.proto", package="openapi.v2", syntax="proto3"
    )
    for name, fields in GNOSTIC.items():
        msg = proto.message_type.add(name=name)
        for field, number, kind, repeated in fields:
            spec = msg.field.add(name=field, number=number)
            spec.label = _T.LABEL_REPEATED if repeated else _T.LABEL_OPTIONAL
            if kind in _SCALARS:
                spec.type = _SCALARS[kind]
            else:
                spec.type = _T.TYPE_MESSAGE
                spec.type_name = ".openapi.v2." + kind
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    found: type[message.Message] = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("openapi.v2.Document")
    )
    return found


DOCUMENT = _document_class()


def _unknown(msg: message.Message, where: str = "Document") -> Iterator[str]:
    if len(unknown_fields.UnknownFieldSet(msg)):
        yield where
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        for i, sub in enumerate(value if field.is_repeated else [value]):
            yield from _unknown(sub, f"{where}.{field.name}[{i}]")


@pytest.fixture(scope="module")
def docs() -> openapi.OpenAPIV3:
    return openapi.OpenAPIV3(resources.DEFAULT)


@pytest.fixture(scope="module")
def built(docs: openapi.OpenAPIV3) -> openapi_v2.Built:
    return openapi_v2.build(docs.documents())


@pytest.fixture(scope="module")
def swagger(built: openapi_v2.Built) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(built.json.body)
    return doc


@pytest.fixture(scope="module")
def decoded(built: openapi_v2.Built) -> Any:
    doc = DOCUMENT()
    doc.ParseFromString(built.protobuf.body)
    return doc


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):  # JSONSchemaProps has a "$ref" field
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _schema_keys(node: dict[str, Any]) -> Iterator[str]:
    yield from node
    for sub in node.get("properties", {}).values():
        yield from _schema_keys(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _schema_keys(node[key])


def test_the_json_is_a_self_contained_swagger_document(swagger: dict[str, Any]) -> None:
    assert swagger["swagger"] == "2.0"
    assert swagger["securityDefinitions"]["BearerToken"]["type"] == "apiKey"
    definitions, parameters = swagger["definitions"], swagger["parameters"]
    for ref in _refs(swagger):
        kind, _, name = ref.removeprefix("#/").partition("/")
        assert (definitions if kind == "definitions" else parameters).get(name), ref
    deployment = definitions["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    # Upstream's v2 shapes: a reference keeps its neighbours; IntOrString is a string.
    assert deployment["properties"]["metadata"] == {
        "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "description": deployment["properties"]["metadata"]["description"],
    }
    int_or_string = definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert (int_or_string["type"], int_or_string["format"]) == ("string", "int-or-string")
    containers = definitions["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["items"] == {"$ref": "#/definitions/io.k8s.api.core.v1.Container"}
    # Nothing swagger 2.0 (and gnostic) cannot hold.
    keys = {key for node in definitions.values() for key in _schema_keys(node)}
    assert not keys & {"oneOf", "anyOf", "allOf", "not", "nullable"}
    assert "#/components/" not in orjson.dumps(swagger).decode()


def test_paths_are_v2_operations_with_inline_field_validation(swagger: dict[str, Any]) -> None:
    item = swagger["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    patch = item["patch"]
    assert patch["operationId"] == "patchAppsV1NamespacedDeployment"
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "kind": "Deployment",
        "version": "v1",
    }
    assert "application/strategic-merge-patch+json" in patch["consumes"]
    assert patch["schemes"] == ["https"]
    assert patch["responses"]["200"]["schema"] == {
        "$ref": "#/definitions/io.k8s.api.apps.v1.Deployment"
    }
    inline = {p["name"]: p for p in patch["parameters"] if "name" in p}
    assert (
        inline["fieldValidation"]["in"] == "query" and inline["fieldValidation"]["type"] == "string"
    )
    assert "dryRun" in inline
    shared = [p["$ref"] for p in patch["parameters"] if "$ref" in p]
    assert any(ref.startswith("#/parameters/fieldManager-") for ref in shared)
    assert any(ref.startswith("#/parameters/body-") for ref in shared)
    create = swagger["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"]
    body = next(p for p in create["parameters"] if p.get("in") == "body")
    assert body == {
        "in": "body",
        "name": "body",
        "required": True,
        "schema": {"$ref": "#/definitions/io.k8s.api.apps.v1.Deployment"},
    }
    assert create["consumes"] == ["*/*"]
    assert {p["name"] for p in item["parameters"] if "name" in p} == {"name"}


def test_protobuf_decodes_with_gnostic_field_numbers(decoded: Any, swagger: dict[str, Any]) -> None:
    assert list(_unknown(decoded)) == []
    assert decoded.swagger == "2.0"
    assert decoded.info.title == "Kubernetes"
    named = {d.name: d.value for d in decoded.definitions.additional_properties}
    assert list(named) == list(swagger["definitions"])
    deployment = named["io.k8s.api.apps.v1.Deployment"]
    assert list(deployment.type.value) == ["object"]
    extensions = {e.name: yaml.safe_load(e.value.yaml) for e in deployment.vendor_extension}
    assert extensions["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    props = {p.name: p.value for p in deployment.properties.additional_properties}
    assert props["metadata"]._ref == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    assert props["metadata"].description
    spec = named["io.k8s.api.apps.v1.DeploymentSpec"]
    assert (
        list(spec.required)
        == swagger["definitions"]["io.k8s.api.apps.v1.DeploymentSpec"]["required"]
    )
    pod_spec = {
        p.name: p.value
        for p in named["io.k8s.api.core.v1.PodSpec"].properties.additional_properties
    }
    containers = pod_spec["containers"]
    assert list(containers.type.value) == ["array"]
    assert [s._ref for s in containers.items.schema] == [
        "#/definitions/io.k8s.api.core.v1.Container"
    ]
    container_ext = {e.name: yaml.safe_load(e.value.yaml) for e in containers.vendor_extension}
    assert container_ext["x-kubernetes-patch-merge-key"] == "name"
    labels = {
        p.name: p.value
        for p in named[
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        ].properties.additional_properties
    }["labels"]
    assert labels.additional_properties.schema.type.value == ["string"]
    # Every definition and path of the JSON is in the protobuf, with the same structure.
    for name, node in swagger["definitions"].items():
        assert sorted(p.name for p in named[name].properties.additional_properties) == sorted(
            node.get("properties", {})
        ), name
    paths = {p.name: p.value for p in decoded.paths.path}
    assert list(paths) == list(swagger["paths"])


def test_protobuf_operations_and_parameters(decoded: Any, swagger: dict[str, Any]) -> None:
    paths = {p.name: p.value for p in decoded.paths.path}
    patch = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"].patch
    assert patch.operation_id == "patchAppsV1NamespacedDeployment"
    ext = {e.name: yaml.safe_load(e.value.yaml) for e in patch.vendor_extension}
    assert ext["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "kind": "Deployment",
        "version": "v1",
    }
    assert ext["x-kubernetes-action"] == "patch"
    query = [p.parameter.non_body_parameter.query_parameter_sub_schema for p in patch.parameters]
    assert "fieldValidation" in [q.name for q in query]
    refs = [p.json_reference._ref for p in patch.parameters if p.HasField("json_reference")]
    assert any(r.startswith("#/parameters/force-") for r in refs)
    assert "application/strategic-merge-patch+json" in patch.consumes
    codes = {r.name: r.value.response for r in patch.responses.response_code}
    assert codes["200"].schema.schema._ref == "#/definitions/io.k8s.api.apps.v1.Deployment"
    assert codes["401"].description == "Unauthorized"
    item = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    path_params = [
        p.parameter.non_body_parameter.path_parameter_sub_schema for p in item.parameters
    ]
    assert [(p.name, p.required, p.type) for p in path_params if p.name] == [
        ("name", True, "string")
    ]
    shared = {p.name: p.value for p in decoded.parameters.additional_properties}
    assert list(shared) == list(swagger["parameters"])
    body = next(v.body_parameter for n, v in shared.items() if n.startswith("body-"))
    assert body.name == "body" and body.schema._ref.startswith("#/definitions/io.k8s.apimachinery")
    assert decoded.security[0].additional_properties[0].name == "BearerToken"
    scheme = decoded.security_definitions.additional_properties[0]
    assert (scheme.name, scheme.value.api_key_security.name) == ("BearerToken", "authorization")


# --- HTTP ------------------------------------------------------------------------------


@pytest.fixture
async def client(docs: openapi.OpenAPIV3) -> AsyncIterator[test_utils.TestClient[Any, Any]]:
    app = web.Application()
    docs.add_routes(app.router)
    async with test_utils.TestClient(test_utils.TestServer(app)) as c:
        yield c


async def test_json_is_the_default(client: test_utils.TestClient[Any, Any]) -> None:
    for accept in (None, "*/*", "application/json", "application/*"):
        headers = {"Accept": accept} if accept else {}
        resp = await client.get("/openapi/v2", headers={**headers, "Accept-Encoding": "identity"})
        assert resp.status == 200, accept
        assert resp.headers["Content-Type"] == "application/json"
        body = await resp.read()
        assert json.loads(body)["swagger"] == "2.0"
        assert resp.headers["ETag"] == f'"{hashlib.sha512(body).hexdigest().upper()}"'
        assert resp.headers["Vary"] == "Accept"
        assert "Last-Modified" in resp.headers


async def test_protobuf_both_spellings(client: test_utils.TestClient[Any, Any]) -> None:
    etags = set()
    for accept in (
        PROTO_ACCEPT,
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        f"application/json;q=0.5, {PROTO_ACCEPT}",
    ):
        resp = await client.get("/openapi/v2", headers={"Accept": accept})
        assert resp.status == 200, accept
        assert (
            resp.headers["Content-Type"]
            == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        )
        doc = DOCUMENT()
        doc.ParseFromString(await resp.read())
        assert doc.swagger == "2.0"
        etags.add(resp.headers["ETag"])
    json_etag = (await client.get("/openapi/v2")).headers["ETag"]
    assert etags == {json_etag}  # one ETag for both encodings, told apart by Vary: Accept


async def test_unacceptable_is_406(client: test_utils.TestClient[Any, Any]) -> None:
    resp = await client.get("/openapi/v2", headers={"Accept": "application/yaml"})
    assert resp.status == 406
    assert await resp.read() == b""


async def test_if_none_match_and_if_modified_since_answer_304(
    client: test_utils.TestClient[Any, Any],
) -> None:
    first = await client.get("/openapi/v2", headers={"Accept": PROTO_ACCEPT})
    etag = first.headers["ETag"]
    again = await client.get("/openapi/v2", headers={"Accept": PROTO_ACCEPT, "If-None-Match": etag})
    assert again.status == 304 and again.headers["ETag"] == etag
    assert await again.read() == b""
    other = await client.get("/openapi/v2", headers={"If-None-Match": '"nope"'})
    assert other.status == 200
    since = await client.get(
        "/openapi/v2", headers={"If-Modified-Since": first.headers["Last-Modified"]}
    )
    assert since.status == 304


async def test_gzip_for_clients_that_ask(client: test_utils.TestClient[Any, Any]) -> None:
    resp = await client.get(
        "/openapi/v2",
        headers={"Accept": PROTO_ACCEPT, "Accept-Encoding": "gzip"},
        auto_decompress=False,
    )
    assert resp.headers["Content-Encoding"] == "gzip"
    assert resp.headers["Vary"] == "Accept, Accept-Encoding"
    doc = DOCUMENT()
    doc.ParseFromString(gzip.decompress(await resp.read()))
    assert doc.swagger == "2.0"


async def test_built_once_and_rebuilt_when_the_v3_documents_change(docs: openapi.OpenAPIV3) -> None:
    first = await docs.v2.get()
    assert await docs.v2.get() is first
    docs.refresh()  # what a CRD change does
    rebuilt = await docs.v2.get()
    assert rebuilt is not first
    assert rebuilt.etag == first.etag  # the same content


def test_negotiation_follows_preference() -> None:
    negotiate = openapi_v2.negotiate
    assert negotiate("") == "application/json"
    assert negotiate(f"{PROTO_ACCEPT}, application/json") == openapi_v2.PROTOBUF
    assert negotiate(f"application/json;q=0.9, {PROTO_ACCEPT}") == openapi_v2.PROTOBUF
    assert negotiate("text/html, */*;q=0.1") == "application/json"
    assert negotiate("text/plain") is None


def test_custom_resource_schemas_take_the_v2_shapes_kubectl_parses() -> None:
    converted = openapi_v2_convert.schema(
        {
            "type": "object",
            "required": ["note", "size"],
            "properties": {
                "size": {"type": "integer", "minimum": 0},
                "note": {"type": "string", "nullable": True},
                "port": {
                    "x-kubernetes-int-or-string": True,
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                },
                "extra": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"a": {"type": "string"}},
                },
                "raw": {"type": "array"},
                "meta": {
                    "allOf": [{"$ref": "#/components/schemas/io.k8s.X"}],
                    "description": "d",
                },
            },
        }
    )
    assert converted == {
        "type": "object",
        "required": ["size"],  # a nullable field is never required in v2
        "properties": {
            "size": {"type": "integer", "minimum": 0},
            "note": {},
            "port": {"x-kubernetes-int-or-string": True},
            "extra": {"x-kubernetes-preserve-unknown-fields": True},
            "raw": {},
            "meta": {"$ref": "#/definitions/io.k8s.X", "description": "d"},
        },
    }


def test_dangling_references_do_not_break_the_document() -> None:
    doc = openapi_v2_convert.document(
        [
            {
                "components": {
                    "schemas": {
                        "a.A": {
                            "type": "object",
                            "properties": {
                                "b": {"$ref": "#/components/schemas/missing.B", "description": "x"}
                            },
                        }
                    }
                }
            }
        ],
        version="v",
    )
    assert doc["definitions"]["a.A"]["properties"]["b"] == {"description": "x"}
