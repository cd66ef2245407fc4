"""The Go types strategic merge patch looks fields up in, built from the 1.32 schemas.

Upstream applies a strategic merge patch with the kind's Go struct in hand
(``strategicpatch.PatchMetaFromStruct``): each step into an object looks the JSON
field up in the current struct and reads its ``patchStrategy`` and
``patchMergeKey`` tags. The OpenAPI schemas carry the same tags as
``x-kubernetes-patch-strategy`` and ``x-kubernetes-patch-merge-key``, so a
:class:`GoType` here stands for a Go type: a struct (a definition with
``properties``; definitions without them — ``Quantity``, ``Time``,
``RawExtension`` — are structs with no JSON fields, as in Go), a map
(``additionalProperties``), a slice (``items``) or a scalar.

The lookups raise what upstream's raise, word for word, as plain errors (500):
``unable to find api field in struct PodSpec for the json field "foo"``.

Types are built on first use and shared by the whole process (they are never
changed afterwards; a race builds the same thing twice).

No I/O beyond :mod:`pilothouse.api.schema`'s; part of the bottom ``api`` layer.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from pilothouse.api import gostrings, schema
from pilothouse.api.patch import errors

STRUCT, MAP, SLICE = "struct", "map", "slice"


class Field(NamedTuple):
    """A struct field: its type and its patch tags."""

    type: GoType
    strategies: tuple[str, ...]  # ("merge",), ("merge", "retainKeys"), ("replace",) or ()
    merge_key: str


class GoType:
    """A Go type as ``reflect`` would describe it to the patch code."""

    __slots__ = ("_definition", "_fields", "elem", "kind", "name")

    def __init__(
        self,
        kind: str,
        name: str = "",
        *,
        elem: GoType | None = None,
        definition: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind  # reflect.Kind's name: struct, map, slice, string, int64, …
        self.name = name  # the struct's name (``PodSpec``), for errors
        self.elem = elem
        self._definition = definition
        self._fields: dict[str, Field] | None = None

    def fields(self) -> dict[str, Field]:
        """A struct's fields by JSON name."""
        if self._fields is None:
            properties = (self._definition or {}).get("properties") or {}
            self._fields = {name: _field(prop) for name, prop in properties.items()}
        return self._fields

    def __repr__(self) -> str:
        return f"GoType({self.kind}, {self.name!r})"


def kind_type(group: str, version: str, kind: str) -> GoType | None:
    """The Go struct of a kind, or None for kinds without a schema."""
    name = schema.definition_name(group, version, kind)
    return definition_type(name) if name else None


@functools.cache
def definition_type(name: str) -> GoType:
    """The Go type a definition stands for (every definition is a Go struct)."""
    definition = schema.definitions()[name]
    return GoType(STRUCT, name.rsplit(".", 1)[-1], definition=definition)


def lookup_struct(parent: GoType, key: str) -> Field:
    """``LookupPatchMetadataForStruct``: the field ``key`` of struct ``parent``."""
    if parent.kind != STRUCT:
        raise errors.plain(
            f"merging an object in json but data type is not struct, instead is: {parent.kind}"
        )
    fields = parent.fields()
    found = fields.get(key)
    if found is None:
        # encoding/json matches field names case-insensitively as a fallback.
        folded = key.casefold()
        found = next((f for n, f in fields.items() if n.casefold() == folded), None)
    if found is None:
        raise errors.plain(
            f"unable to find api field in struct {parent.name} for the json field {gostrings.quote(key)}"
        )
    return found


def lookup_slice(parent: GoType, key: str) -> Field:
    """``LookupPatchMetadataForSlice``: field ``key`` of ``parent``, typed as its element."""
    found = lookup_struct(parent, key)
    if found.type.kind != SLICE or found.type.elem is None:
        # Upstream names the parent's kind here, not the field's.
        raise errors.plain(f"expected slice or array type, but got: {parent.kind}")
    if found.type.elem.kind == SLICE:
        raise errors.plain("unexpected slice of slice")
    return Field(found.type.elem, found.strategies, found.merge_key)


def _field(prop: dict[str, Any]) -> Field:
    strategy = prop.get("x-kubernetes-patch-strategy")
    merge_key = prop.get("x-kubernetes-patch-merge-key")
    return Field(
        _type_of(prop),
        tuple(strategy.split(",")) if isinstance(strategy, str) and strategy else (),
        merge_key if isinstance(merge_key, str) else "",
    )


def _type_of(node: dict[str, Any]) -> GoType:
    ref = node.get("$ref")
    if not isinstance(ref, str) and isinstance(node.get("allOf"), list) and node["allOf"]:
        ref = node["allOf"][0].get("$ref")
    if isinstance(ref, str):
        return definition_type(schema.ref_name(ref))
    kind = _json_type(node)
    if kind == "array":
        items = node.get("items")
        return GoType(SLICE, elem=_type_of(items if isinstance(items, dict) else {}))
    if kind == "object":
        values = node.get("additionalProperties")
        return GoType(MAP, elem=_type_of(values if isinstance(values, dict) else {}))
    if kind == "string":
        return GoType("string")
    if kind == "integer":
        return GoType("int32" if node.get("format") == "int32" else "int64")
    if kind == "number":
        return GoType("float64")
    if kind == "boolean":
        return GoType("bool")
    return GoType("interface")


def _json_type(node: dict[str, Any]) -> str | None:
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return kinds[0] if len(kinds) == 1 else None
    return kind if isinstance(kind, str) else None
