"""Schema-typed JSON values in the form CEL evaluates them.

Upstream types strings by their format: ``date``/``date-time`` are timestamps,
``duration`` durations, ``byte`` bytes. :func:`convert` turns those strings into the
engine's ``datetime``/``timedelta``/``bytes`` along a schema, leaving everything else
as it is (and sharing it: the input is never modified). :func:`needs_conversion` says
whether a schema has any such field, so callers skip the walk for the usual case.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Mapping
from typing import Any

from pilothouse.api.cel.library import durations

_FORMATS = frozenset({"date", "date-time", "duration", "byte"})


def needs_conversion(schema: Mapping[str, Any] | None) -> bool:
    if not isinstance(schema, dict):
        return False
    if schema.get("type") == "string" and schema.get("format") in _FORMATS:
        return True
    for sub in (schema.get("properties") or {}).values():
        if needs_conversion(sub):
            return True
    items = schema.get("items")
    extra = schema.get("additionalProperties")
    return needs_conversion(items if isinstance(items, dict) else None) or needs_conversion(
        extra if isinstance(extra, dict) else None
    )


def _scalar(value: str, fmt: str) -> Any:
    if fmt in ("date", "date-time"):
        text = value + "T00:00:00Z" if fmt == "date" and len(value) == 10 else value
        parsed = durations.parse_timestamp(text)
        return parsed if parsed is not None else value
    if fmt == "duration":
        nanos = durations.parse(value)
        return datetime.timedelta(microseconds=nanos // 1000) if nanos is not None else value
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value


def convert(value: Any, schema: Mapping[str, Any] | None) -> Any:
    """``value`` with formatted strings as CEL types, along ``schema``."""
    if schema is None or not needs_conversion(schema):
        return value
    if isinstance(value, str):
        fmt = schema.get("format")
        return _scalar(value, fmt) if schema.get("type") == "string" and fmt in _FORMATS else value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out = {}
        for k, v in value.items():
            sub = props.get(k) if k in props else (extra if isinstance(extra, dict) else None)
            out[k] = convert(v, sub)
        return out
    if isinstance(value, list):
        items = schema.get("items")
        return [convert(v, items if isinstance(items, dict) else None) for v in value]
    return value
