"""CEL types as the checker sees them, and the types of OpenAPI schemas.

A :class:`Type` is a primitive (``int``, ``string`` …), a ``list``/``map``/``optional``
with parameters, one of Kubernetes' opaque types (``kubernetes.Quantity``, ``net.IP`` …),
``dyn``, or an *object* type made from a structural schema (upstream's ``DeclType``):
its fields are the schema's properties, named as CEL names them (``foo-bar`` is
``foo__dash__bar``), so ``self.foo`` on a schema without ``foo`` is the compile error
``undefined field 'foo'``.

:func:`from_schema` follows upstream's ``SchemaDeclType``: ``integer`` is ``int``,
``number`` ``double``, strings with format ``byte``/``duration``/``date``/``date-time``
are ``bytes``/``duration``/``timestamp``; ``x-kubernetes-int-or-string`` and
``x-kubernetes-preserve-unknown-fields`` without properties are ``dyn``; an object with
``additionalProperties`` is a ``map(string, …)``; an embedded resource is an object
with ``apiVersion``, ``kind`` and ``metadata`` (``name``, ``generateName``).

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pilothouse.api.cel import syntax


@dataclass(frozen=True, slots=True, eq=False)
class Type:
    name: str  # int uint double bool string bytes null timestamp duration list map optional dyn type object <opaque>
    params: tuple[Type, ...] = ()
    # object types only: CEL field name -> type, and the schema property each came from
    fields: Mapping[str, Type] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)
    # Upper bounds the cost estimator reads (None: unbounded)
    max_elements: int | None = None
    max_length: int | None = None
    schema_type: str = ""  # the OpenAPI type this came from ("object", "string" …)

    def __str__(self) -> str:
        if self.name == "object":
            return "object"
        if self.params:
            return f"{self.name}({', '.join(str(p) for p in self.params)})"
        return self.name

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Type):
            return NotImplemented
        if self.name != other.name or len(self.params) != len(other.params):
            return False
        if self.name == "object":
            return self is other or dict(self.fields) == dict(other.fields)
        return all(a == b for a, b in zip(self.params, other.params, strict=True))

    def __hash__(self) -> int:
        return hash((self.name, self.params))

    @property
    def is_dyn(self) -> bool:
        return self.name == "dyn"

    @property
    def elem(self) -> Type:
        """The element type of a list, the value type of a map or object (dyn otherwise)."""
        if self.name == "list" and self.params:
            return self.params[0]
        if self.name == "map" and len(self.params) == 2:
            return self.params[1]
        return DYN


INT = Type("int")
UINT = Type("uint")
DOUBLE = Type("double")
BOOL = Type("bool")
STRING = Type("string")
BYTES = Type("bytes")
NULL = Type("null_type")
TIMESTAMP = Type("google.protobuf.Timestamp")
DURATION = Type("google.protobuf.Duration")
DYN = Type("dyn")
TYPE = Type("type")
QUANTITY = Type("kubernetes.Quantity")
URL = Type("kubernetes.URL")
IP = Type("net.IP")
CIDR = Type("net.CIDR")
FORMAT = Type("kubernetes.NamedFormat")
AUTHORIZER = Type("kubernetes.authorization.Authorizer")
PATH_CHECK = Type("kubernetes.authorization.PathCheck")
GROUP_CHECK = Type("kubernetes.authorization.GroupCheck")
RESOURCE_CHECK = Type("kubernetes.authorization.ResourceCheck")
DECISION = Type("kubernetes.authorization.Decision")
ERROR = Type("*error*")


def list_of(elem: Type, *, max_elements: int | None = None) -> Type:
    return Type("list", (elem,), max_elements=max_elements)


def map_of(key: Type, value: Type, *, max_elements: int | None = None) -> Type:
    return Type("map", (key, value), max_elements=max_elements)


def optional_of(inner: Type) -> Type:
    return Type("optional_type", (inner,))


def is_assignable(expected: Type, actual: Type) -> bool:
    """Whether a value of ``actual`` may stand where ``expected`` is declared."""
    if expected.is_dyn or actual.is_dyn or actual is ERROR:
        return True
    if expected.name == "object" or actual.name == "object":
        return expected.name == actual.name
    if expected.name != actual.name:
        return False
    return all(is_assignable(e, a) for e, a in zip(expected.params, actual.params, strict=False))


# --- names of schema properties in CEL (upstream's cel.Escape) --------------------------

_CEL_RESERVED = syntax.RESERVED | frozenset({"true", "false", "null", "in"})
_IDENT = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
_ESCAPABLE = re.compile(r"^[_a-zA-Z0-9./-]+$")


def escape(name: str) -> str | None:
    """The CEL field name of a property, or None when it cannot be named in CEL."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    if _IDENT.match(name):
        return name.replace("__", "__underscores__")
    if not name or not _ESCAPABLE.match(name) or name[0].isdigit():
        return None
    out = name.replace("__", "__underscores__")
    out = out.replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")
    return out


# --- schema -> type ---------------------------------------------------------------------

_OBJECT_META_FIELDS = ("name", "generateName")


def from_schema(schema: Mapping[str, Any] | None, *, resource_root: bool = False) -> Type:
    """The CEL type of values a structural schema describes."""
    if schema is None:
        return DYN
    if schema.get("x-kubernetes-int-or-string"):
        return DYN
    kind = schema.get("type")
    if schema.get("x-kubernetes-embedded-resource") or resource_root:
        return _object(schema, embedded=True)
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return map_of(STRING, from_schema(extra), max_elements=schema.get("maxProperties"))
        if schema.get("properties"):
            return _object(schema, embedded=False)
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return DYN
        return _object(schema, embedded=False)
    if kind == "array":
        items = schema.get("items")
        return list_of(
            from_schema(items if isinstance(items, dict) else None),
            max_elements=schema.get("maxItems"),
        )
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "byte":
            return _bounded(BYTES, schema)
        if fmt == "duration":
            return DURATION
        if fmt in ("date", "date-time"):
            return TIMESTAMP
        return _bounded(STRING, schema)
    if kind == "integer":
        return INT
    if kind == "number":
        return DOUBLE
    if kind == "boolean":
        return BOOL
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return DYN
    return DYN


def _bounded(base: Type, schema: Mapping[str, Any]) -> Type:
    limit = schema.get("maxLength")
    if isinstance(limit, int):
        return Type(base.name, max_length=limit, schema_type="string")
    return base


def _object(schema: Mapping[str, Any], *, embedded: bool) -> Type:
    fields: dict[str, Type] = {}
    properties: dict[str, str] = {}
    for name, sub in (schema.get("properties") or {}).items():
        cel_name = escape(name)
        if cel_name is None or not isinstance(sub, dict):
            continue
        if embedded and name == "metadata":
            continue
        fields[cel_name] = from_schema(sub)
        properties[cel_name] = name
    if embedded:
        for name in ("apiVersion", "kind"):
            fields.setdefault(name, STRING)
            properties.setdefault(name, name)
        meta_fields = {n: STRING for n in _OBJECT_META_FIELDS}
        fields["metadata"] = Type(
            "object", fields=meta_fields, properties={n: n for n in meta_fields}
        )
        properties["metadata"] = "metadata"
    return Type("object", fields=fields, properties=properties, schema_type="object")
