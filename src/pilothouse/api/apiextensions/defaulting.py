"""Defaulting: filling in the ``default`` values of a structural schema.

As upstream's ``defaulting/algorithm.go``: for every object, each property that is
absent (or null without ``nullable``) and has a ``default`` gets a copy of it; then
the walk goes on into properties, ``additionalProperties`` values and list items, so
defaults inside defaults apply too. Upstream defaults a custom resource when it
decodes a request and when it reads one from storage.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def has_defaults(schema: Mapping[str, Any] | None) -> bool:
    if not isinstance(schema, Mapping):
        return False
    if "default" in schema:
        return True
    if any(has_defaults(s) for s in (schema.get("properties") or {}).values()):
        return True
    items = schema.get("items")
    extra = schema.get("additionalProperties")
    return has_defaults(items if isinstance(items, Mapping) else None) or has_defaults(
        extra if isinstance(extra, Mapping) else None
    )


def apply(value: Any, schema: Mapping[str, Any] | None) -> None:
    """Set the schema's defaults in ``value`` in place."""
    if not isinstance(schema, Mapping):
        return
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if not isinstance(sub, Mapping) or "default" not in sub:
                continue
            if key not in value or (value[key] is None and not sub.get("nullable")):
                value[key] = copy.deepcopy(sub["default"])
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                apply(item, props[key])
            elif isinstance(extra, Mapping):
                apply(item, extra)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                if item is None and "default" in items and not items.get("nullable"):
                    value[i] = copy.deepcopy(items["default"])
                apply(value[i], items)
