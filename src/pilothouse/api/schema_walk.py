"""Compiled field checks: what Go's strict JSON decoder would say about an object.

A kind's JSON schema is compiled once, on first use, into a small tree of
:class:`Node` values (one per definition, shared, cycles allowed) so a check
walks plain attributes instead of re-reading schema dicts and following
``$ref`` strings. The walk reports:

* unknown fields with their full path, ``spec.template.spec.containers[0].foo``
  (upstream: ``unknown field "<path>"``), unless a node preserves unknown fields;
* values of the wrong type, worded as Go's ``encoding/json`` words them —
  ``json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas
  of type int32`` — where the field path leaves out list indices and map keys, as
  Go's decoder does, and the Go type is derived from the definition name
  (``v1.PodSpec``, ``[]v1.Container``, ``map[string]string``). Upstream names a few
  types by their Go alias (``v1.PullPolicy``, ``v1.ResourceList``); the schemas do
  not carry those, so the underlying type is named instead.

``null`` is accepted everywhere, as Go's decoder accepts it.
No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pilothouse.api import quantity

ANY, OBJECT, MAP, ARRAY, STRING, INTEGER, NUMBER, BOOLEAN = range(8)
INT_OR_STRING, QUANTITY, BYTES = range(8, 11)

# Types with their own JSON decoding in Go, which accepts anything.
RAW_DEFINITIONS = frozenset(
    {
        "io.k8s.apimachinery.pkg.runtime.RawExtension",
        "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray",
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool",
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray",
    }
)
INT_OR_STRING_DEFINITION = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY_DEFINITION = "io.k8s.apimachinery.pkg.api.resource.Quantity"
# Decoded through a string in Go, so a wrong type is reported "of type string".
STRING_DEFINITIONS = frozenset(
    {
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
        "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Duration",
    }
)
REF_PREFIX = "#/$defs/"

_INT_RANGE = {32: (-(1 << 31), (1 << 31) - 1), 64: (-(1 << 63), (1 << 63) - 1)}


class Node:
    """One compiled schema: its kind, children and the Go type name it stands for."""

    __slots__ = ("elem", "go_type", "high", "kind", "low", "preserve", "props", "struct")

    def __init__(self, kind: int, go_type: str) -> None:
        self.kind = kind
        self.go_type = go_type
        self.props: dict[str, Node] = {}
        self.elem: Node | None = None
        self.struct = ""  # Go struct name, for objects
        self.preserve = False
        self.low, self.high = _INT_RANGE[64]


def go_type_name(definition: str) -> str:
    """``io.k8s.api.core.v1.PodSpec`` → ``v1.PodSpec`` (Go's ``reflect.Type`` string)."""
    parts = definition.split(".")
    return f"{parts[-2]}.{parts[-1]}" if len(parts) > 1 else definition


class Compiler:
    """Compiles definitions into :class:`Node` trees, each definition once."""

    def __init__(self, definitions: dict[str, dict[str, Any]]) -> None:
        self.definitions = definitions
        self.compiled: dict[str, Node] = {}

    def definition(self, name: str) -> Node:
        node = self.compiled.get(name)
        if node is not None:
            return node
        schema = self.definitions.get(name, {})
        go_type = go_type_name(name)
        if name in RAW_DEFINITIONS:
            node = Node(ANY, go_type)
        elif name == INT_OR_STRING_DEFINITION:
            node = Node(INT_OR_STRING, "int32")
        elif name == QUANTITY_DEFINITION:
            node = Node(QUANTITY, go_type)
        elif name in STRING_DEFINITIONS:
            node = Node(STRING, "string")
        else:
            node = Node(ANY, go_type)
            # Registered before filling, so recursive definitions point at it.
            self.compiled[name] = node
            self.fill(node, schema, struct=name.rsplit(".", 1)[-1])
            return node
        self.compiled[name] = node
        return node

    def schema(self, schema: dict[str, Any]) -> Node:
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            return self.definition(ref[len(REF_PREFIX) :])
        node = Node(ANY, "interface {}")
        self.fill(node, schema, struct="")
        return node

    def fill(self, node: Node, schema: dict[str, Any], *, struct: str) -> None:
        if schema.get("x-kubernetes-int-or-string"):
            node.kind, node.go_type = INT_OR_STRING, "int32"
            return
        kind = _json_type(schema)
        if kind == "object" or (kind is None and "properties" in schema):
            self._fill_object(node, schema, struct=struct)
        elif kind == "array" or (kind is None and "items" in schema):
            node.kind = ARRAY
            items = schema.get("items")
            node.elem = self.schema(items) if isinstance(items, dict) else Node(ANY, "interface {}")
            if node.go_type == "interface {}":
                node.go_type = "[]" + node.elem.go_type
        elif kind == "string":
            node.kind, node.go_type = (
                (BYTES, "[]uint8") if schema.get("format") == "byte" else (STRING, "string")
            )
        elif kind == "integer":
            bits = 32 if schema.get("format") == "int32" else 64
            node.kind, node.go_type = INTEGER, f"int{bits}"
            node.low, node.high = _INT_RANGE[bits]
        elif kind == "number":
            node.kind, node.go_type = NUMBER, "float64"
        elif kind == "boolean":
            node.kind, node.go_type = BOOLEAN, "bool"

    def _fill_object(self, node: Node, schema: dict[str, Any], *, struct: str) -> None:
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        node.preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        if properties:
            node.kind, node.struct = OBJECT, struct or "struct"
            node.props = {key: self.schema(sub) for key, sub in properties.items()}
            if node.go_type == "interface {}":
                node.go_type = "struct"
        elif extra is not None and extra is not False:
            node.kind = MAP
            node.elem = self.schema(extra) if isinstance(extra, dict) else Node(ANY, "interface {}")
            if node.go_type == "interface {}":
                node.go_type = "map[string]" + node.elem.go_type
        else:
            # An object with no declared fields: every field is unknown unless
            # the schema preserves them.
            node.kind, node.struct = OBJECT, struct or "struct"
            if node.go_type == "interface {}":
                node.go_type = "map[string]interface {}" if node.preserve else "struct"


def _json_type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return kinds[0] if len(kinds) == 1 else None
    return kind if isinstance(kind, str) else None


# --- the walk -----------------------------------------------------------------------


class Walk:
    """One check of one object; collects unknown-field paths and type errors."""

    __slots__ = ("go_path", "path", "prune", "type_errors", "unknown")

    def __init__(self, *, prune: bool) -> None:
        self.unknown: list[str] = []
        self.type_errors: list[str] = []
        self.path: list[str] = []  # ".key" and "[i]" pieces
        self.go_path: list[str] = []  # keys of struct fields only, as Go's decoder
        self.prune = prune

    def top(self, node: Node, obj: dict[str, Any], *, skip: frozenset[str]) -> None:
        if node.kind == OBJECT:
            self.object(node, obj, skip)

    def object(self, node: Node, obj: dict[str, Any], skip: frozenset[str] = frozenset()) -> None:
        props = node.props
        dropped: list[str] = []
        for key, value in obj.items():
            child = props.get(key)
            if child is None:
                if node.preserve or key in skip:
                    continue
                where = "".join(self.path)
                self.unknown.append(f"{where[1:]}.{key}" if where else key)
                if self.prune:
                    dropped.append(key)
                continue
            if value is None or key in skip:
                continue
            kind = child.kind
            # The common scalar cases, inline: no path bookkeeping when fine.
            if kind == STRING:
                if type(value) is str:
                    continue
            elif kind == BOOLEAN:
                if value is True or value is False:
                    continue
            elif kind == INTEGER:
                if type(value) is int and child.low <= value <= child.high:
                    continue
            elif kind == ANY:
                continue
            self.path.append("." + key)
            self.go_path.append(key)
            self.value(child, value, node.struct)
            self.path.pop()
            self.go_path.pop()
        for key in dropped:
            del obj[key]

    def value(self, node: Node, value: Any, struct: str) -> None:
        kind = node.kind
        if value is None or kind == ANY:
            return
        if kind == OBJECT:
            if type(value) is dict:
                self.object(node, value)
            else:
                self.mismatch(value, node.go_type, struct)
        elif kind == ARRAY:
            if type(value) is not list:
                self.mismatch(value, node.go_type, struct)
                return
            elem = node.elem
            assert elem is not None
            for index, item in enumerate(value):
                if item is None:
                    continue
                self.path.append(f"[{index}]")
                self.value(elem, item, struct)
                self.path.pop()
        elif kind == MAP:
            if type(value) is not dict:
                self.mismatch(value, node.go_type, struct)
                return
            elem = node.elem
            assert elem is not None
            for key, item in value.items():
                self.path.append("." + key)
                self.value(elem, item, struct)
                self.path.pop()
        elif kind == STRING:
            if type(value) is not str:
                self.mismatch(value, node.go_type, struct)
        elif kind == INTEGER:
            if type(value) is not int or not node.low <= value <= node.high:
                self.mismatch(value, node.go_type, struct, number_literal=True)
        elif kind == NUMBER:
            if type(value) not in (int, float):
                self.mismatch(value, node.go_type, struct)
        elif kind == BOOLEAN:
            if type(value) is not bool:
                self.mismatch(value, node.go_type, struct)
        elif kind == INT_OR_STRING:
            if type(value) is not str and (
                type(value) is not int or not _INT_RANGE[32][0] <= value <= _INT_RANGE[32][1]
            ):
                self.mismatch(value, "int32", struct, number_literal=True)
        elif kind == QUANTITY:
            try:
                quantity.parse(value)
            except quantity.QuantityError as exc:
                self.type_errors.append(str(exc))
        elif kind == BYTES:
            if type(value) is not str:
                self.mismatch(value, node.go_type, struct)
            else:
                problem = base64_problem(value)
                if problem is not None:
                    self.type_errors.append(problem)

    def mismatch(
        self, value: Any, go_type: str, struct: str, *, number_literal: bool = False
    ) -> None:
        what = json_kind(value)
        if number_literal and what == "number":
            what = f"number {value!r}"
        field = ".".join(self.go_path)
        self.type_errors.append(
            f"json: cannot unmarshal {what} into Go struct field {struct}.{field} of type {go_type}"
        )


def json_kind(value: Any) -> str:
    """How Go's decoder names the JSON value it was given."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    return "object"


_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def base64_problem(text: str) -> str | None:
    """Go's error for a ``[]byte`` field that is not standard padded base64."""
    data = text.replace("\r", "").replace("\n", "") if ("\n" in text or "\r" in text) else text
    try:
        base64.b64decode(data, validate=True)
        if len(data) % 4 == 0:
            return None
    except (binascii.Error, ValueError):
        pass
    # Where Go's decoder gives up, counted in the original string as Go counts it.
    quantum = start = 0
    for index, char in enumerate(text):
        if char in "\r\n":
            continue
        if char == "=":
            rest = text[index:].replace("\r", "").replace("\n", "")
            if quantum >= 2 and rest == "=" * (4 - quantum):
                return None
            return f"illegal base64 data at input byte {index}"
        if char not in _B64_ALPHABET:
            return f"illegal base64 data at input byte {index}"
        if quantum == 0:
            start = index
        quantum = (quantum + 1) % 4
    return f"illegal base64 data at input byte {start}" if quantum else None
