"""A swagger 2.0 document encoded as gnostic's ``openapi.v2.Document`` protobuf.

kube-apiserver serves ``/openapi/v2`` as protobuf by parsing its JSON with gnostic's
compiler and marshalling the result (``application/com.github.proto-openapi.spec.v2.v1.0
+protobuf``); client-go's ``OpenAPISchema()`` asks for nothing else, and kubectl's
client-side validation, ``explain --output=plaintext-openapiv2`` and its v2
strategic-merge fallback read that message. The field numbers below are those of
gnostic's ``openapiv2/OpenAPIv2.proto``.

As gnostic's compiler does: a key present in the JSON is a present message even when
empty (``"properties": {}`` is an empty ``Properties``, which kube-openapi's parser
tells from an absent one); proto3 scalars at their zero value are left out; values
without a typed field (``default``, ``enum``, ``example``, ``x-*`` extensions) travel
as ``Any.yaml`` text — we write JSON, which is YAML. Fields are written in field
number order, as Go's marshaller does, so the bytes are a function of the document.

Pure functions; the caller caches the result.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

import orjson

_MASK64 = (1 << 64) - 1

# Kinds of table entries.
STR, BOOL, INT, DBL, ANY, ANYS, STRS = range(7)


def _varint(value: int) -> bytes:
    value &= _MASK64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def message(field: int, body: bytes) -> bytes:
    """A length-delimited field; written even when empty (a present message)."""
    return _tag(field, 2) + _varint(len(body)) + body


def _string(field: int, value: str) -> bytes:
    return message(field, value.encode()) if value else b""


def _any(value: Any) -> bytes:
    """gnostic's ``Any``: the value as YAML text (field 2)."""
    return _string(2, orjson.dumps(value).decode())


def _scalar(field: int, kind: int, value: Any) -> bytes:
    if kind == STR:
        return _string(field, str(value))
    if kind == BOOL:
        return _tag(field, 0) + b"\x01" if value else b""
    if kind == INT:
        return _tag(field, 0) + _varint(int(value)) if value else b""
    if kind == DBL:
        return _tag(field, 1) + struct.pack("<d", float(value)) if value else b""
    if kind == ANY:
        return message(field, _any(value))
    if kind == ANYS:
        return b"".join(message(field, _any(v)) for v in value)
    if kind == STRS:
        return b"".join(message(field, str(v).encode()) for v in value)
    raise ValueError(kind)  # pragma: no cover - the tables only hold the kinds above


Table = tuple[tuple[str, int, int], ...]


def _fields(node: dict[str, Any], table: Table) -> list[tuple[int, bytes]]:
    return [(field, _scalar(field, kind, node[key])) for key, field, kind in table if key in node]


def _vendor(field: int, node: dict[str, Any]) -> tuple[int, bytes]:
    """``repeated NamedAny vendor_extension``: every ``x-`` key (name 1, Any 2)."""
    return field, b"".join(
        message(field, _string(1, key) + message(2, _any(value)))
        for key, value in node.items()
        if key.startswith("x-")
    )


def _join(parts: Iterable[tuple[int, bytes]]) -> bytes:
    return b"".join(data for _, data in sorted(parts, key=lambda part: part[0]))


def _named(field: int, items: dict[str, Any], encode: Callable[[Any], bytes]) -> bytes:
    """``repeated Named<X>``: name 1, value 2."""
    return b"".join(
        message(field, _string(1, name) + message(2, encode(value)))
        for name, value in items.items()
    )


# --- Schema ---------------------------------------------------------------------------

_SCHEMA: Table = (
    ("$ref", 1, STR),
    ("format", 2, STR),
    ("title", 3, STR),
    ("description", 4, STR),
    ("default", 5, ANY),
    ("multipleOf", 6, DBL),
    ("maximum", 7, DBL),
    ("exclusiveMaximum", 8, BOOL),
    ("minimum", 9, DBL),
    ("exclusiveMinimum", 10, BOOL),
    ("maxLength", 11, INT),
    ("minLength", 12, INT),
    ("pattern", 13, STR),
    ("maxItems", 14, INT),
    ("minItems", 15, INT),
    ("uniqueItems", 16, BOOL),
    ("maxProperties", 17, INT),
    ("minProperties", 18, INT),
    ("required", 19, STRS),
    ("enum", 20, ANYS),
    ("discriminator", 26, STR),
    ("readOnly", 27, BOOL),
    ("example", 30, ANY),
)


def schema(node: dict[str, Any]) -> bytes:
    """``Schema``."""
    parts = _fields(node, _SCHEMA)
    extra = node.get("additionalProperties")
    if isinstance(extra, bool):  # AdditionalPropertiesItem.boolean: a oneof, so always written
        parts.append((21, message(21, _tag(2, 0) + (b"\x01" if extra else b"\x00"))))
    elif isinstance(extra, dict):
        parts.append((21, message(21, message(1, schema(extra)))))
    kinds = node.get("type")
    if kinds is not None:  # TypeItem.value
        values = kinds if isinstance(kinds, list) else [kinds]
        parts.append((22, message(22, _scalar(1, STRS, values))))
    items = node.get("items")
    if items is not None:  # ItemsItem.schema
        listed = items if isinstance(items, list) else [items]
        parts.append((23, message(23, b"".join(message(1, schema(s)) for s in listed))))
    for sub in node.get("allOf", ()):
        parts.append((24, message(24, schema(sub))))
    props = node.get("properties")
    if props is not None:  # Properties.additional_properties: NamedSchema
        parts.append((25, message(25, _named(1, props, schema))))
    docs = node.get("externalDocs")
    if isinstance(docs, dict):
        parts.append((29, message(29, _external_docs(docs))))
    parts.append(_vendor(31, node))
    return _join(parts)


def _external_docs(node: dict[str, Any]) -> bytes:
    return _join([*_fields(node, (("description", 1, STR), ("url", 2, STR))), _vendor(3, node)])


# --- Parameters -----------------------------------------------------------------------

_PRIMITIVE_TAIL = (
    "collectionFormat",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "enum",
    "multipleOf",
)
_KINDS = {
    "collectionFormat": STR,
    "default": ANY,
    "maximum": DBL,
    "exclusiveMaximum": BOOL,
    "minimum": DBL,
    "exclusiveMinimum": BOOL,
    "maxLength": INT,
    "minLength": INT,
    "pattern": STR,
    "maxItems": INT,
    "minItems": INT,
    "uniqueItems": BOOL,
    "enum": ANYS,
    "multipleOf": DBL,
}


def _layout(head: Table, items: int) -> tuple[Table, int, int]:
    """A primitive layout: ``head``, then ``items`` (a message) and the common tail,
    numbered on; returns the table, the ``items`` field and the vendor extensions' field."""
    tail = tuple((key, items + 1 + i, _KINDS[key]) for i, key in enumerate(_PRIMITIVE_TAIL))
    return head + tail, items, items + 1 + len(_PRIMITIVE_TAIL)


_COMMON = (("required", 1, BOOL), ("in", 2, STR), ("description", 3, STR), ("name", 4, STR))
# QueryParameterSubSchema and FormDataParameterSubSchema (allow_empty_value = 5).
_QUERY = _layout((*_COMMON, ("allowEmptyValue", 5, BOOL), ("type", 6, STR), ("format", 7, STR)), 8)
# PathParameterSubSchema and HeaderParameterSubSchema.
_PATH = _layout((*_COMMON, ("type", 5, STR), ("format", 6, STR)), 7)
_PRIMITIVES_ITEMS = _layout((("type", 1, STR), ("format", 2, STR)), 3)
# NonBodyParameter's oneof, by "in".
_NON_BODY = {
    "header": (1, _PATH),
    "formData": (2, _QUERY),
    "query": (3, _QUERY),
    "path": (4, _PATH),
}


def _primitive(node: dict[str, Any], layout: tuple[Table, int, int]) -> bytes:
    table, items_field, vendor_field = layout
    parts = _fields(node, table)
    items = node.get("items")
    if isinstance(items, dict):
        parts.append((items_field, message(items_field, _primitive(items, _PRIMITIVES_ITEMS))))
    parts.append(_vendor(vendor_field, node))
    return _join(parts)


def parameter(node: dict[str, Any]) -> bytes:
    """``Parameter``: a body parameter (1) or a non-body one (2)."""
    where = node.get("in", "")
    if where == "body":
        parts = _fields(
            node, (("description", 1, STR), ("name", 2, STR), ("in", 3, STR), ("required", 4, BOOL))
        )
        if isinstance(node.get("schema"), dict):
            parts.append((5, message(5, schema(node["schema"]))))
        parts.append(_vendor(6, node))
        return message(1, _join(parts))
    field, layout = _NON_BODY.get(where, _NON_BODY["query"])
    return message(2, message(field, _primitive(node, layout)))


def _parameters_item(node: dict[str, Any]) -> bytes:
    """``ParametersItem``: a parameter (1) or a JSON reference (2)."""
    if "$ref" in node:
        return message(2, _string(1, node["$ref"]) + _string(2, node.get("description", "")))
    return message(1, parameter(node))


# --- Paths and operations -------------------------------------------------------------

_OPERATION: Table = (
    ("tags", 1, STRS),
    ("summary", 2, STR),
    ("description", 3, STR),
    ("operationId", 5, STR),
    ("produces", 6, STRS),
    ("consumes", 7, STRS),
    ("schemes", 10, STRS),
    ("deprecated", 11, BOOL),
)
_METHODS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def _response(node: dict[str, Any]) -> bytes:
    """``ResponseValue``: a response (1) or a JSON reference (2)."""
    if "$ref" in node:
        return message(2, _string(1, node["$ref"]))
    parts = _fields(node, (("description", 1, STR),))
    if isinstance(node.get("schema"), dict):  # SchemaItem.schema
        parts.append((2, message(2, message(1, schema(node["schema"])))))
    parts.append(_vendor(5, node))
    return message(1, _join(parts))


def _security(requirements: list[dict[str, list[str]]], field: int) -> bytes:
    """``repeated SecurityRequirement``: NamedStringArray entries."""
    return b"".join(
        message(field, _named(1, req, lambda scopes: _scalar(1, STRS, scopes)))
        for req in requirements
    )


def operation(node: dict[str, Any]) -> bytes:
    """``Operation``."""
    parts = _fields(node, _OPERATION)
    parts.extend((8, message(8, _parameters_item(p))) for p in node.get("parameters", ()))
    if "responses" in node:
        responses = node["responses"]
        body = _named(1, {k: v for k, v in responses.items() if not k.startswith("x-")}, _response)
        parts.append((9, message(9, body + _vendor(2, responses)[1])))
    if "security" in node:
        parts.append((12, _security(node["security"], 12)))
    parts.append(_vendor(13, node))
    return _join(parts)


def _path_item(node: dict[str, Any]) -> bytes:
    parts = _fields(node, (("$ref", 1, STR),))
    for method, field in _METHODS.items():
        if method in node:
            parts.append((field, message(field, operation(node[method]))))
    parts.extend((9, message(9, _parameters_item(p))) for p in node.get("parameters", ()))
    parts.append(_vendor(10, node))
    return _join(parts)


# --- The document ---------------------------------------------------------------------


def _security_scheme(node: dict[str, Any]) -> bytes:
    """``SecurityDefinitionsItem``; kube-apiserver declares only an API key (2)."""
    if node.get("type") == "basic":
        table: Table = (("type", 1, STR), ("description", 2, STR))
        return message(1, _join([*_fields(node, table), _vendor(3, node)]))
    table = (("type", 1, STR), ("name", 2, STR), ("in", 3, STR), ("description", 4, STR))
    return message(2, _join([*_fields(node, table), _vendor(5, node)]))


def document(doc: dict[str, Any]) -> bytes:
    """``Document``: the whole swagger 2.0 document."""
    parts = _fields(
        doc,
        (
            ("swagger", 1, STR),
            ("host", 3, STR),
            ("basePath", 4, STR),
            ("schemes", 5, STRS),
            ("consumes", 6, STRS),
            ("produces", 7, STRS),
        ),
    )
    info = doc.get("info")
    if isinstance(info, dict):
        table: Table = (
            ("title", 1, STR),
            ("version", 2, STR),
            ("description", 3, STR),
            ("termsOfService", 4, STR),
        )
        parts.append((2, message(2, _join([*_fields(info, table), _vendor(7, info)]))))
    if "paths" in doc:
        paths = doc["paths"]
        named = {k: v for k, v in paths.items() if not k.startswith("x-")}
        parts.append((8, message(8, _vendor(1, paths)[1] + _named(2, named, _path_item))))
    if "definitions" in doc:
        parts.append((9, message(9, _named(1, doc["definitions"], schema))))
    if "parameters" in doc:
        parts.append((10, message(10, _named(1, doc["parameters"], parameter))))
    if "security" in doc:
        parts.append((12, _security(doc["security"], 12)))
    if "securityDefinitions" in doc:
        schemes = _named(1, doc["securityDefinitions"], _security_scheme)
        parts.append((13, message(13, schemes)))
    parts.append(_vendor(16, doc))
    return _join(parts)
