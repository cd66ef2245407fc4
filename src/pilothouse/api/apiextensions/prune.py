"""Pruning: dropping the fields a structural schema does not specify.

Upstream prunes a custom resource when it decodes one (``pruning/algorithm.go``):
every field not named under ``properties`` (nor covered by ``additionalProperties``)
is removed, unless its object says ``x-kubernetes-preserve-unknown-fields: true``.
At the root and in embedded resources ``apiVersion``, ``kind`` and ``metadata`` are
always kept (metadata is ObjectMeta, checked on its own: unknown metadata fields are
dropped too). The removed paths are returned so ``fieldValidation=Strict`` can name
them (``unknown field "spec.foo"``).

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pilothouse.api import schema as builtin_schemas

_TYPE_META = ("apiVersion", "kind", "metadata")
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _prune(
    value: Any, schema: Mapping[str, Any] | None, path: str, out: list[str], *, resource: bool
) -> None:
    if isinstance(value, dict):
        if schema is None:
            # No schema for an object at all: everything in it is unknown.
            for key in list(value):
                out.append(_join(path, key))
                del value[key]
            return
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = resource or bool(schema.get("x-kubernetes-embedded-resource"))
        for key in list(value):
            sub_path = _join(path, key)
            if embedded and key in _TYPE_META:
                if key == "metadata" and isinstance(value[key], dict):
                    _prune_metadata(value[key], sub_path, out)
                continue
            if key in props:
                _prune(value[key], props[key], sub_path, out, resource=False)
            elif isinstance(extra, dict):
                _prune(value[key], extra, sub_path, out, resource=False)
            elif extra is True or preserve:
                continue
            else:
                out.append(sub_path)
                del value[key]
    elif isinstance(value, list) and schema is not None:
        items = schema.get("items")
        for i, item in enumerate(value):
            _prune(
                item,
                items if isinstance(items, dict) else None,
                f"{path}[{i}]",
                out,
                resource=False,
            )


def _prune_metadata(metadata: dict[str, Any], path: str, out: list[str]) -> None:
    # ObjectMeta is a Go struct upstream: unknown keys cannot survive decoding.
    problems = builtin_schemas.definition_problems(_OBJECT_META, metadata, prune=True)
    out.extend(f"{path}.{p}" for p in problems.unknown)


def prune(
    obj: dict[str, Any], schema: Mapping[str, Any] | None, *, resource: bool = True
) -> list[str]:
    """Remove unspecified fields from ``obj`` in place; return their paths."""
    out: list[str] = []
    if schema is None:
        return out
    _prune(obj, schema, "", out, resource=resource)
    return out
