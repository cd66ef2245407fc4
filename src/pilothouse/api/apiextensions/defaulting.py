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
    if not isinstance(schema, dict):
        return False
    if "default" in schema:
        return True
    if any(has_defaults(s) for s in (schema.get("properties") or {}).values()):
        return True
    items = schema.get("items")
    extra = schema.get("additionalProperties")
    return has_defaults(items if isinstance(items, dict) else None) or has_defaults(
        extra if isinstance(extra, dict) else None
    )


class Plan:
    """The defaults of a schema, compiled: only the branches that hold any, so checking
    an object costs a walk of those branches alone (upstream defaults on every read)."""

    __slots__ = ("defaults", "extra", "item_default", "items", "props")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.defaults: dict[str, tuple[Any, bool]] = {}  # key -> (default, nullable)
        self.props: dict[str, Plan] = {}
        self.extra: Plan | None = None
        self.items: Plan | None = None
        self.item_default: tuple[Any, bool] | None = None
        for key, sub in (schema.get("properties") or {}).items():
            if not isinstance(sub, dict):
                continue
            if "default" in sub:
                self.defaults[key] = (sub["default"], bool(sub.get("nullable")))
            if has_defaults(sub):
                self.props[key] = Plan(sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and has_defaults(extra):
            self.extra = Plan(extra)
        items = schema.get("items")
        if isinstance(items, dict) and has_defaults(items):
            self.items = Plan(items)
            if "default" in items:
                self.item_default = (items["default"], bool(items.get("nullable")))

    def missing(self, value: Any) -> bool:
        """Whether :meth:`apply` would change ``value`` (checked without copying it)."""
        if isinstance(value, dict):
            for key, (_, nullable) in self.defaults.items():
                if key not in value or (value[key] is None and not nullable):
                    return True
            for key, plan in self.props.items():
                if key in value and plan.missing(value[key]):
                    return True
            if self.extra is not None:
                return any(self.extra.missing(v) for k, v in value.items() if k not in self.props)
        elif isinstance(value, list) and self.items is not None:
            for item in value:
                if item is None and self.item_default is not None and not self.item_default[1]:
                    return True
                if self.items.missing(item):
                    return True
        return False

    def apply(self, value: Any) -> None:
        if isinstance(value, dict):
            for key, (default, nullable) in self.defaults.items():
                if key not in value or (value[key] is None and not nullable):
                    value[key] = copy.deepcopy(default)
            for key, plan in self.props.items():
                if key in value:
                    plan.apply(value[key])
            if self.extra is not None:
                for key, item in value.items():
                    if key not in self.props:
                        self.extra.apply(item)
        elif isinstance(value, list) and self.items is not None:
            for i, item in enumerate(value):
                if item is None and self.item_default is not None and not self.item_default[1]:
                    value[i] = copy.deepcopy(self.item_default[0])
                self.items.apply(value[i])


def apply(value: Any, schema: Mapping[str, Any] | None) -> None:
    """Set the schema's defaults in ``value`` in place."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if not isinstance(sub, dict) or "default" not in sub:
                continue
            if key not in value or (value[key] is None and not sub.get("nullable")):
                value[key] = copy.deepcopy(sub["default"])
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                apply(item, props[key])
            elif isinstance(extra, dict):
                apply(item, extra)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                if item is None and "default" in items and not items.get("nullable"):
                    value[i] = copy.deepcopy(items["default"])
                apply(value[i], items)
