"""The JSONPath of printer columns, scale paths and selectable fields.

Printer columns use client-go's JSONPath (``{.status.conditions[?(@.type=="Ready")].status}``
without the braces): field steps (``.spec.x``, ``['a.b']``), indices (``[0]``, ``[-1]``),
slices, wildcards (``[*]``, ``.*``), recursive descent (``..name``) and filters
(``[?(@.type=="Ready")]``, ``[?(@.ready)]``). :func:`find` returns every match; a missing
key is no match, as upstream's ``AllowMissingKeys``. :func:`text` prints a match as
jsonpath prints it (maps and lists as compact JSON, numbers as Go's ``%v``).

Scale subresource paths and selectable fields are *simple* paths (``.spec.replicas``):
:func:`get_simple`, :func:`set_simple`, and :func:`schema_at` for the schema a simple
path names.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class JSONPathError(ValueError):
    pass


@dataclass(frozen=True)
class _Field:
    name: str  # "*" for every field


@dataclass(frozen=True)
class _Recursive:
    name: str


@dataclass(frozen=True)
class _Index:
    start: int | None
    end: int | None = None
    step: int | None = None
    single: bool = True
    wildcard: bool = False


@dataclass(frozen=True)
class _Filter:
    left: tuple[Any, ...]  # a relative path from @
    op: str  # "" for existence
    right: Any


Step = _Field | _Recursive | _Index | _Filter

_IDENT = re.compile(r"[A-Za-z0-9_\-/$]+")


def _literal(text: str) -> Any:
    text = text.strip()
    if text[:1] in ("'", '"') and text[-1:] == text[:1]:
        return text[1:-1]
    if text == "true":
        return True
    if text == "false":
        return False
    if text == "null":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise JSONPathError(f"unrecognized filter value {text!r}") from None


def parse(path: str) -> list[Step]:
    """Steps of a JSONPath (with or without the surrounding ``{…}``)."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[Step] = []
    i = 0
    while i < len(text):
        if text.startswith("..", i):
            m = _IDENT.match(text, i + 2)
            if m is None:
                raise JSONPathError(f"unrecognized identifier at {i}")
            steps.append(_Recursive(m.group()))
            i = m.end()
        elif text[i] == ".":
            if text.startswith(".*", i):
                steps.append(_Field("*"))
                i += 2
                continue
            m = _IDENT.match(text, i + 1)
            if m is None:
                if i + 1 == len(text):
                    i += 1
                    continue
                raise JSONPathError(f"unrecognized character in action: {text[i + 1]!r}")
            steps.append(_Field(m.group()))
            i = m.end()
        elif text[i] == "[":
            end = _closing(text, i)
            inner = text[i + 1 : end].strip()
            steps.append(_bracket(inner))
            i = end + 1
        else:
            m = _IDENT.match(text, i)
            if m is None:
                raise JSONPathError(f"unrecognized character in action: {text[i]!r}")
            steps.append(_Field(m.group()))
            i = m.end()
    return steps


def _closing(text: str, start: int) -> int:
    depth = 0
    quote = ""
    for j in range(start, len(text)):
        ch = text[j]
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return j
    raise JSONPathError("unclosed array expect ]")


def _bracket(inner: str) -> Step:
    if inner == "*":
        return _Index(None, wildcard=True)
    if inner[:1] in ("'", '"'):
        return _Field(inner[1:-1])
    if inner.startswith("?(") and inner.endswith(")"):
        expr = inner[2:-1].strip()
        m = re.match(r"^@((?:\.[A-Za-z0-9_\-/]+|\['[^']*'\])*)\s*(==|!=|<=|>=|<|>)?\s*(.*)$", expr)
        if m is None:
            raise JSONPathError(f"unrecognized filter {inner!r}")
        left = tuple(s.name for s in parse(m.group(1)) if isinstance(s, _Field))
        op = m.group(2) or ""
        return _Filter(left, op, _literal(m.group(3)) if op else None)
    if ":" in inner:
        parts = [p.strip() for p in inner.split(":")]
        nums = [int(p) if p else None for p in parts] + [None] * (3 - len(parts))
        return _Index(nums[0], nums[1], nums[2], single=False)
    try:
        return _Index(int(inner))
    except ValueError:
        raise JSONPathError(f"unrecognized index {inner!r}") from None


def _apply(step: Step, values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if isinstance(step, _Field):
            if isinstance(value, dict):
                if step.name == "*":
                    out.extend(value[k] for k in sorted(value))
                elif step.name in value:
                    out.append(value[step.name])
        elif isinstance(step, _Recursive):
            out.extend(_descend(value, step.name))
        elif isinstance(step, _Index):
            if not isinstance(value, list):
                if step.wildcard and isinstance(value, dict):
                    out.extend(value[k] for k in sorted(value))
                continue
            if step.wildcard:
                out.extend(value)
            elif step.single:
                assert step.start is not None
                index = step.start + len(value) if step.start < 0 else step.start
                if 0 <= index < len(value):
                    out.append(value[index])
            else:
                out.extend(value[step.start : step.end : step.step])
        else:
            items = value if isinstance(value, list) else [value]
            out.extend(item for item in items if _matches(step, item))
    return out


def _descend(value: Any, name: str) -> list[Any]:
    out: list[Any] = []
    if isinstance(value, dict):
        if name in value:
            out.append(value[name])
        for key in sorted(value):
            out.extend(_descend(value[key], name))
    elif isinstance(value, list):
        for item in value:
            out.extend(_descend(item, name))
    return out


def _matches(step: _Filter, item: Any) -> bool:
    found: list[Any] = [item]
    for name in step.left:
        found = _apply(_Field(name), found)
    if not found:
        return False
    if not step.op:
        return True
    left, right = found[0], step.right
    try:
        if step.op == "==":
            return bool(left == right)
        if step.op == "!=":
            return bool(left != right)
        if step.op == "<":
            return bool(left < right)
        if step.op == ">":
            return bool(left > right)
        if step.op == "<=":
            return bool(left <= right)
        return bool(left >= right)
    except TypeError:
        return False


def find(steps: list[Step], obj: Any) -> list[Any]:
    values = [obj]
    for step in steps:
        values = _apply(step, values)
        if not values:
            return []
    return values


def go_value(value: Any) -> str:
    """Go's ``fmt.Print`` of a decoded JSON scalar."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value).replace("e+", "e+")
    return str(value)


def text(value: Any) -> str:
    """A match as jsonpath prints it."""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return go_value(value)


# --- simple paths ------------------------------------------------------------------------


def simple_steps(path: str) -> list[str]:
    return [p for p in path.lstrip(".").split(".") if p] if path else []


def get_simple(obj: Any, path: str) -> tuple[Any, bool]:
    value = obj
    for name in simple_steps(path):
        if not isinstance(value, dict) or name not in value:
            return None, False
        value = value[name]
    return value, True


def set_simple(obj: dict[str, Any], path: str, value: Any) -> None:
    steps = simple_steps(path)
    node = obj
    for name in steps[:-1]:
        child = node.get(name)
        if not isinstance(child, dict):
            child = {}
            node[name] = child
        node = child
    if steps:
        node[steps[-1]] = value


def schema_at(schema: Mapping[str, Any] | None, path: str) -> Mapping[str, Any] | None:
    """The schema a simple path names (through properties and additionalProperties)."""
    node = schema
    for name in simple_steps(path):
        if not isinstance(node, dict):
            return None
        props = node.get("properties") or {}
        if name in props:
            node = props[name]
        elif isinstance(node.get("additionalProperties"), Mapping):
            node = node["additionalProperties"]
        else:
            return None
    return node
