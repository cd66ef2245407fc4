"""How field management sees a kind: maps, lists and scalars, granular or atomic.

This is upstream's structured-merge-diff schema, built from the 1.32 OpenAPI
definitions (:mod:`pilothouse.api.schema`) by the rules of kube-openapi's
``schemaconv``:

* an object with properties is a struct: its fields are granular, unknown keys are
  not expected; ``x-kubernetes-map-type: atomic`` (on the definition or on the
  property that refers to it) makes it one leaf;
* an object with ``additionalProperties`` is a granular map of those values
  (``labels``, ``annotations``, ``data``), unless ``x-kubernetes-map-type: atomic``;
  an object with neither, or that preserves unknown fields, is *deduced*;
* a list with ``x-kubernetes-list-type: map`` is associative, keyed by
  ``x-kubernetes-list-map-keys``; ``set`` is a set of scalars; ``atomic`` is one
  leaf; without a list type, a ``merge`` patch strategy makes it associative
  (keyed by the patch merge key, or a set without one) and anything else is atomic;
* ``Quantity``, ``IntOrString``, times and every other string/number/boolean are
  scalars; ``RawExtension`` is one atomic leaf whatever it holds.

Kinds without a schema (custom resources) are *deduced*, as upstream does for
CRDs without one: every map is granular, every list atomic.

The compiled tree is built once per definition, on first use, and shared by the
whole process. No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import threading
from typing import Any

from pilothouse.api import schema, schema_walk


class Type:
    """One node of the schema: what a value at some path may be and how it merges.

    A type may accept several shapes (a deduced type is a scalar, a list and a
    map at once); the value decides which applies.
    """

    __slots__ = (
        "elem",
        "fields",
        "is_list",
        "is_map",
        "items",
        "key_defaults",
        "keys",
        "list_atomic",
        "map_atomic",
        "name",
        "scalar",
    )

    def __init__(self, name: str = "", scalar: str = "") -> None:
        self.name = name
        # "string", "numeric", "boolean" or "untyped" when scalars fit; "" otherwise.
        self.scalar = scalar
        self.is_map = False
        self.fields: dict[str, Type] = {}
        self.elem: Type | None = None  # type of keys that are not declared fields
        self.map_atomic = False
        self.is_list = False
        self.items: Type | None = None
        self.list_atomic = True
        self.keys: tuple[str, ...] = ()  # sorted by name; empty for sets
        self.key_defaults: dict[str, Any] = {}

    def field_type(self, key: str) -> Type:
        """The type of one key of a map value (unknown keys are deduced)."""
        found = self.fields.get(key)
        if found is not None:
            return found
        return self.elem if self.elem is not None else DEDUCED

    @property
    def associative(self) -> bool:
        return self.is_list and not self.list_atomic

    def __repr__(self) -> str:
        return f"Type({self.name or '<inline>'})"


STRING = Type("string", "string")
NUMERIC = Type("numeric", "numeric")
BOOLEAN = Type("boolean", "boolean")
SCALAR = Type("untyped", "untyped")

UNTYPED_ATOMIC = Type("__untyped_atomic_", "untyped")
UNTYPED_ATOMIC.is_map = True
UNTYPED_ATOMIC.map_atomic = True
UNTYPED_ATOMIC.elem = UNTYPED_ATOMIC
UNTYPED_ATOMIC.is_list = True
UNTYPED_ATOMIC.items = UNTYPED_ATOMIC

DEDUCED = Type("__untyped_deduced_", "untyped")
DEDUCED.is_map = True
DEDUCED.elem = DEDUCED
DEDUCED.is_list = True
DEDUCED.items = UNTYPED_ATOMIC

# Defaults of list-map key fields, from the `+default=` tags of k8s.io/api 1.32
# (the schemas we ship carry no defaults). Upstream fills an omitted key with them,
# so a port applied without a protocol is the item {"containerPort":80,"protocol":"TCP"}.
KEY_DEFAULTS: dict[str, dict[str, Any]] = {
    "io.k8s.api.core.v1.ContainerPort": {"protocol": "TCP"},
    "io.k8s.api.core.v1.ServicePort": {"protocol": "TCP"},
    "io.k8s.api.core.v1.LocalObjectReference": {"name": ""},
}

# Spelled as a oneOf in our schemas; upstream makes both untyped scalars.
_SCALAR_DEFINITIONS = frozenset(
    {
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
    }
)
_RAW_EXTENSION = "io.k8s.apimachinery.pkg.runtime.RawExtension"


def _scalar(kind: str, format_: Any) -> Type:
    # kube-openapi: numbers are numeric, booleans boolean, strings are strings
    # unless they carry a format other than "byte" (dates, int-or-string…).
    if kind in ("integer", "number"):
        return NUMERIC
    if kind == "boolean":
        return BOOLEAN
    if format_ in (None, "", "byte"):
        return STRING
    return SCALAR


def json_type(node: dict[str, Any]) -> str | None:
    """The one non-null JSON type a schema declares, or None."""
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return kinds[0] if len(kinds) == 1 else None
    return kind if isinstance(kind, str) else None


def reference(node: dict[str, Any]) -> str | None:
    """The definition a schema refers to (``$ref`` or a lone ``allOf``), if any."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        return schema.ref_name(ref)
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        return reference(all_of[0])
    return None


class _Compiler:
    """Builds :class:`Type` trees from the definitions, one per definition name."""

    def __init__(self, definitions: dict[str, dict[str, Any]]) -> None:
        self._definitions = definitions
        self._named: dict[tuple[str, str | None], Type] = {}

    def named(self, name: str, map_type: str | None = None) -> Type:
        cache_key = (name, map_type)
        found = self._named.get(cache_key)
        if found is not None:
            return found
        if name in _SCALAR_DEFINITIONS:
            return SCALAR
        if name == _RAW_EXTENSION:
            return UNTYPED_ATOMIC
        if name in schema_walk.RAW_DEFINITIONS:
            return DEDUCED
        definition = self._definitions.get(name)
        if definition is None:
            return DEDUCED
        out = Type(name)
        # Registered before filling, so that recursive definitions end.
        self._named[cache_key] = out
        self._fill(out, definition, map_type)
        return out

    def compile(self, node: dict[str, Any], *, owner: str = "") -> Type:
        ref = reference(node)
        if ref is not None:
            map_type = node.get("x-kubernetes-map-type")
            return self.named(ref, map_type if isinstance(map_type, str) else None)
        kind = json_type(node)
        if kind in ("string", "integer", "number", "boolean"):
            return _scalar(kind, node.get("format"))
        if kind is None and "oneOf" in node:
            return SCALAR
        out = Type(owner)
        self._fill(out, node, None)
        return out

    def _fill(self, out: Type, node: dict[str, Any], map_type: str | None) -> None:
        kind = json_type(node)
        if kind == "object":
            self._fill_map(out, node, map_type)
        elif kind == "array":
            self._fill_list(out, node)
        elif kind is None:
            # No type at all: anything goes, as upstream's untyped schemas.
            out.scalar = "untyped"
            if "oneOf" not in node:
                out.is_map, out.elem = True, DEDUCED
                out.is_list, out.items = True, UNTYPED_ATOMIC
        else:
            out.scalar = _scalar(kind, node.get("format")).scalar

    def _fill_map(self, out: Type, node: dict[str, Any], map_type: str | None) -> None:
        out.is_map = True
        properties = node.get("properties")
        if isinstance(properties, dict):
            out.fields = {
                name: self.compile(prop, owner=f"{out.name}.{name}")
                for name, prop in properties.items()
                if isinstance(prop, dict)
            }
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            out.elem = self.compile(extra, owner=f"{out.name}.*")
        elif extra is True or not out.fields:
            out.elem = DEDUCED
        if node.get("x-kubernetes-preserve-unknown-fields") is True:
            out.elem = DEDUCED
        relationship = map_type or node.get("x-kubernetes-map-type")
        out.map_atomic = relationship == "atomic"

    def _fill_list(self, out: Type, node: dict[str, Any]) -> None:
        out.is_list = True
        items = node.get("items")
        out.items = (
            self.compile(items, owner=f"{out.name}[]")
            if isinstance(items, dict)
            else UNTYPED_ATOMIC
        )
        list_type = node.get("x-kubernetes-list-type")
        keys: list[str] = []
        if list_type is not None:
            out.list_atomic = list_type not in ("set", "map")
            if list_type == "map":
                declared = node.get("x-kubernetes-list-map-keys")
                keys = (
                    [k for k in declared if isinstance(k, str)]
                    if isinstance(declared, list)
                    else []
                )
        else:
            strategy = node.get("x-kubernetes-patch-strategy")
            if strategy in ("merge", "merge,retainKeys"):
                out.list_atomic = False
                merge_key = node.get("x-kubernetes-patch-merge-key")
                if isinstance(merge_key, str):
                    keys = [merge_key]
        out.keys = tuple(sorted(keys))
        if out.keys and isinstance(items, dict):
            item_name = reference(items) or ""
            defaults = dict(KEY_DEFAULTS.get(item_name, {}))
            item_schema = self._definitions.get(item_name, items)
            properties = item_schema.get("properties") or {}
            for key_name in out.keys:
                prop = properties.get(key_name)
                if isinstance(prop, dict) and "default" in prop:
                    defaults[key_name] = prop["default"]
            out.key_defaults = {k: v for k, v in defaults.items() if k in out.keys}


class _Types:
    """The process-wide compiled types, built lazily per kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._compiler: _Compiler | None = None
        self._by_kind: dict[tuple[str, str, str], Type] = {}

    def for_kind(self, group: str, version: str, kind: str) -> Type:
        gvk = (group, version, kind)
        found = self._by_kind.get(gvk)
        if found is not None:
            return found
        with self._lock:
            if self._compiler is None:
                self._compiler = _Compiler(schema.definitions())
            name = schema.definition_name(group, version, kind)
            compiled = self._compiler.named(name) if name else DEDUCED
            self._by_kind[gvk] = compiled
            return compiled

    def for_schema(self, node: dict[str, Any]) -> Type:
        with self._lock:
            if self._compiler is None:
                self._compiler = _Compiler(schema.definitions())
            return self._compiler.compile(node)


_TYPES = _Types()

_OBJECT_META_REF = {"$ref": schema.REF_PREFIX + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}


def for_custom_resource(openapi_schema: dict[str, Any] | None) -> Type:
    """The type of a custom resource from its CRD's structural schema: its own fields,
    ``metadata`` as ObjectMeta (as upstream's ``TypeConverter`` builds it for CRDs).
    Without a schema, everything is deduced."""
    if not openapi_schema:
        return DEDUCED
    root = dict(openapi_schema)
    properties = dict(root.get("properties") or {})
    properties["metadata"] = _OBJECT_META_REF
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    root["properties"] = properties
    return _TYPES.for_schema(root)


def for_kind(group: str, version: str, kind: str) -> Type:
    """The type of a kind's objects (deduced when the kind has no schema)."""
    return _TYPES.for_kind(group, version, kind)


def split_api_version(api_version: str) -> tuple[str, str]:
    """``apps/v1`` → ``("apps", "v1")``; ``v1`` → ``("", "v1")``."""
    group, _, version = api_version.rpartition("/")
    return group, version
