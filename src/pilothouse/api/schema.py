"""The Kubernetes 1.32 API schemas, and the field checks made from them.

The schemas come from the ``kubernetes-validate`` package
(``kubernetes-json-schema/v1.32.0-local/_definitions.json``): every definition
upstream's OpenAPI has, keyed by its OpenAPI name (``io.k8s.api.apps.v1.Deployment``),
in JSON-schema dress (``"type": ["object", "null"]``, ``$ref: "#/$defs/…"``), with
the group-version-kinds, strategic-merge keys and list types. They are read once,
on first use, and shared by everything in the process: field validation, the
patch engine and the ``/openapi/v3`` documents. The package is located without
being imported, since importing it pulls in ``jsonschema``, which we do not need.

Field validation, as the API server applies the ``fieldValidation`` directive of a
create, update or patch:

* ``Strict`` — unknown and duplicate fields fail the request: 400 BadRequest
  ``<Kind> in version "<v>" cannot be handled as a <Kind>: strict decoding error:
  unknown field "spec.foo", duplicate field "metadata.name"`` (see
  :func:`strict_decoding_error`);
* ``Warn`` (the default) — each becomes a warning (``unknown field "spec.foo"``);
* ``Ignore`` — nothing is said.

In every mode unknown fields are dropped from the stored object (upstream decodes
into Go structs, which have nowhere to keep them; pass ``prune=True``), the last
of duplicate fields wins, and a value of the wrong type fails the request (400,
``<Kind> in version "<v>" cannot be handled as a <Kind>: json: cannot unmarshal …``;
upstream shows only the first, see :func:`decode_error`).

No I/O beyond reading the package's schema file; part of the bottom ``api`` layer.
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from pilothouse.api import errors, schema_walk

KUBERNETES_VERSION = "1.32"
PACKAGE = "kubernetes_validate"
REF_PREFIX = schema_walk.REF_PREFIX

# Always known at the top of an object; their values are checked by the caller.
_TYPE_META = frozenset({"apiVersion", "kind"})


def schema_file() -> pathlib.Path:
    """Where the installed ``kubernetes-validate`` keeps the 1.32 definitions."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {PACKAGE} package (kubernetes-validate) is not installed")
    root = pathlib.Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"
    # v1.32.0-local today; take the newest 1.32 patch release if that changes.
    candidates = sorted(
        root.glob(f"v{KUBERNETES_VERSION}.*-local"),
        key=lambda p: int(p.name.split(".")[2].split("-")[0]),
    )
    for directory in reversed(candidates):
        path = directory / "_definitions.json"
        if path.is_file():
            return path
    raise RuntimeError(f"{PACKAGE} has no schemas for Kubernetes {KUBERNETES_VERSION} under {root}")


@functools.cache
def definitions() -> dict[str, dict[str, Any]]:
    """All definitions by OpenAPI name, parsed once per process. Do not modify."""
    parsed: dict[str, dict[str, Any]] = orjson.loads(schema_file().read_bytes())["$defs"]
    return parsed


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", ()):
            index.setdefault(
                (gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", "")), name
            )
    return index


def definition_name(group: str, version: str, kind: str) -> str | None:
    """The definition whose ``x-kubernetes-group-version-kind`` names this kind."""
    return _gvk_index().get((group, version, kind))


def kind_schema(group: str, version: str, kind: str) -> dict[str, Any] | None:
    """The schema of a kind, found by its group-version-kind, or None."""
    name = definition_name(group, version, kind)
    return definitions()[name] if name else None


def ref_name(ref: str) -> str:
    """``#/$defs/io.k8s.api.core.v1.PodSpec`` → ``io.k8s.api.core.v1.PodSpec``."""
    return ref[len(REF_PREFIX) :] if ref.startswith(REF_PREFIX) else ref


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema a ``$ref`` points at (the schema itself when it has none)."""
    seen = 0
    while isinstance(schema.get("$ref"), str) and seen < 32:
        target = definitions().get(ref_name(schema["$ref"]))
        if target is None:
            break
        schema = target
        seen += 1
    return schema


# --- field problems -------------------------------------------------------------------


@dataclass(slots=True)
class FieldProblems:
    """What upstream's strict decoder would report about an object."""

    unknown: list[str] = field(default_factory=list)  # paths, "spec.containers[0].foo"
    type_errors: list[str] = field(default_factory=list)  # Go's json messages

    def __bool__(self) -> bool:
        return bool(self.unknown or self.type_errors)


class _Compiled:
    """The process-wide compiled checks, built lazily per kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._compiler: schema_walk.Compiler | None = None

    def node(self, name: str) -> schema_walk.Node:
        with self._lock:
            if self._compiler is None:
                self._compiler = schema_walk.Compiler(definitions())
            return self._compiler.definition(name)


_COMPILED = _Compiled()


def field_problems(
    group: str, version: str, kind: str, obj: dict[str, Any], *, prune: bool = False
) -> FieldProblems:
    """Unknown fields and wrongly typed values in ``obj``, a ``kind`` object.

    ``apiVersion`` and ``kind`` at the top are always known and not checked here.
    With ``prune`` unknown fields are also removed from ``obj``, as upstream drops
    them. Kinds without a schema have no problems.
    """
    name = definition_name(group, version, kind)
    if name is None:
        return FieldProblems()
    walk = schema_walk.Walk(prune=prune)
    walk.top(_COMPILED.node(name), obj, skip=_TYPE_META)
    return FieldProblems(walk.unknown, walk.type_errors)


def definition_problems(name: str, obj: dict[str, Any], *, prune: bool = False) -> FieldProblems:
    """:func:`field_problems` for a value of a named definition (``…meta.v1.ObjectMeta``)."""
    if name not in definitions():
        return FieldProblems()
    walk = schema_walk.Walk(prune=prune)
    walk.top(_COMPILED.node(name), obj, skip=frozenset())
    return FieldProblems(walk.unknown, walk.type_errors)


def unknown_field(path: str) -> str:
    """How upstream names an unknown field in errors and warnings."""
    return f'unknown field "{path}"'


def duplicate_field(path: str) -> str:
    """How upstream names a repeated field in errors and warnings."""
    return f'duplicate field "{path}"'


def decode_error(kind: str, version: str, message: str) -> errors.StatusError:
    """400 ``<Kind> in version "<v>" cannot be handled as a <Kind>: <message>``."""
    return errors.bad_request(
        f'{kind} in version "{version}" cannot be handled as a {kind}: {message}'
    )


def strict_decoding_error(kind: str, version: str, problems: list[str]) -> errors.StatusError:
    """The 400 a ``fieldValidation=Strict`` request gets for unknown or duplicate fields.

    ``problems`` are already worded (``unknown field "spec.foo"``,
    ``duplicate field "metadata.name"``), in the order they are to be listed.
    """
    return decode_error(kind, version, "strict decoding error: " + ", ".join(problems))


# --- strategic-merge metadata -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PatchMeta:
    """A field's schema and the merge directives upstream's patch code reads.

    ``schema`` is the shared definition itself: read it, never change it.
    """

    schema: dict[str, Any]  # the field's schema, any $ref resolved
    patch_strategy: tuple[str, ...] = ()  # ("merge",), ("merge", "retainKeys"), ("replace",)
    patch_merge_key: str | None = None
    list_type: str | None = None  # atomic | set | map
    list_map_keys: tuple[str, ...] = ()
    map_type: str | None = None  # atomic | granular

    @property
    def is_list(self) -> bool:
        return _json_type(self.schema) == "array"

    @property
    def items(self) -> dict[str, Any] | None:
        """The resolved schema of a list's items."""
        items = self.schema.get("items")
        return resolve(items) if isinstance(items, dict) else None


def patch_meta(schema: dict[str, Any], path: Sequence[str | int]) -> PatchMeta | None:
    """The node at ``path`` under ``schema`` (a kind's or any other schema), or None.

    Path steps are field names; a step into a list goes through its items (an
    index, ``"*"`` or the next field name), and a step into a map through its
    values. The directives come from the property that declares the field, as
    in upstream's OpenAPI.
    """
    declared: dict[str, Any] = schema
    current = resolve(schema)
    for step in path:
        kind = _json_type(current)
        if kind == "array" and isinstance(current.get("items"), dict):
            current = resolve(current["items"])
            if isinstance(step, int) or step == "*" or (isinstance(step, str) and step.isdigit()):
                declared = current
                continue
            kind = _json_type(current)
        properties = current.get("properties")
        if isinstance(properties, dict) and step in properties:
            declared = properties[step]
        elif isinstance(current.get("additionalProperties"), dict):
            declared = current["additionalProperties"]
        else:
            return None
        current = resolve(declared)
    strategy = declared.get("x-kubernetes-patch-strategy") or current.get(
        "x-kubernetes-patch-strategy"
    )
    return PatchMeta(
        schema=current,
        patch_strategy=tuple(strategy.split(",")) if isinstance(strategy, str) else (),
        patch_merge_key=declared.get("x-kubernetes-patch-merge-key"),
        list_type=declared.get("x-kubernetes-list-type") or current.get("x-kubernetes-list-type"),
        list_map_keys=tuple(
            declared.get("x-kubernetes-list-map-keys")
            or current.get("x-kubernetes-list-map-keys")
            or ()
        ),
        map_type=declared.get("x-kubernetes-map-type") or current.get("x-kubernetes-map-type"),
    )


def _json_type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return kinds[0] if len(kinds) == 1 else None
    return kind if isinstance(kind, str) else None
