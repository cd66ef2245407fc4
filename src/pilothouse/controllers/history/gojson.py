"""The bytes Go's ``encoding/json`` writes for a pod template, as upstream stores it in
a ControllerRevision.

Upstream builds a revision's ``data`` by encoding the owner (a Go struct), decoding
that into ``map[string]interface{}`` and encoding the map again: keys come out sorted,
compact, with ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, and numbers as float64
prints them. Two things the Go struct adds that a JSON object read from an API may
lack are put back from the 1.32 layout in :mod:`..deployment.gotypes`: struct-typed
fields are never omitted (an empty container's ``"resources":{}``, the template's
``"creationTimestamp":null``), and a zero ``Quantity`` prints as ``"0"``.

So a revision made here has the name upstream's controller would give it, and
``kubectl rollout undo`` — which compares its own encoding of the owner with the
revision's bytes — sees the same bytes. No I/O here.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from pilothouse.api.meta import Obj
from pilothouse.controllers.deployment import gotypes
from pilothouse.controllers.deployment import hash as template_hash

POD_TEMPLATE_SPEC = "core.PodTemplateSpec"

# The zero value of each special (non-struct) kind encoding/json never omits.
_ZERO_SPECIAL: dict[str, Any] = {
    "meta.Time": None,  # metav1.Time's MarshalJSON: null when zero
    "resource.Quantity": "0",
    "intstr.IntOrString": 0,
}


def with_struct_fields(type_key: str, value: Any) -> Any:
    """A copy of ``value`` (JSON of Go type ``type_key``) with every struct-typed field
    encoding/json would write, even empty, filled with its zero encoding."""
    under = _underlying(type_key)
    if value is None:
        return None
    if under in gotypes.STRUCTS:
        if not isinstance(value, dict):
            return value
        out = dict(value)
        _fill_struct(under, out)
        return out
    if under.startswith("[]") and isinstance(value, list):
        return [with_struct_fields(under[2:], item) for item in value]
    if under.startswith("map[") and isinstance(value, dict):
        _, item_type = template_hash._split_map(under)
        return {k: with_struct_fields(item_type, v) for k, v in value.items()}
    return value


def _underlying(type_key: str) -> str:
    key = type_key.removeprefix("*")
    while key in gotypes.NAMED:
        key = gotypes.NAMED[key]
    return key


@functools.cache
def _always_written(struct_key: str) -> tuple[tuple[str, str], ...]:
    """(JSON name, type key) of the struct's fields that are written even when zero."""
    out = []
    for _name, ftype, json_name in template_hash.struct_fields(struct_key):
        if not json_name or ftype.startswith(("*", "[]", "map[")):
            continue
        under = _underlying(ftype)
        if under in gotypes.STRUCTS or under in _ZERO_SPECIAL:
            out.append((json_name, under))
    return tuple(out)


def _fill_struct(struct_key: str, obj: Obj) -> None:
    for _name, ftype, json_name in template_hash.struct_fields(struct_key):
        if not json_name:
            _fill_struct(_underlying(ftype), obj)  # embedded: its fields are inlined
        elif obj.get(json_name) is not None:
            obj[json_name] = with_struct_fields(ftype, obj[json_name])
    for json_name, under in _always_written(struct_key):
        if json_name in obj:
            continue
        if under in _ZERO_SPECIAL:
            obj[json_name] = _ZERO_SPECIAL[under]
        else:
            zero: Obj = {}
            _fill_struct(under, zero)
            obj[json_name] = zero


# --- encoding/json ------------------------------------------------------------------------
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _escape_char(c: str) -> str:
    special = _ESCAPES.get(c)
    if special is not None:
        return special
    if c < " ":
        return f"\\u{ord(c):04x}"
    return c


def _string(text: str) -> str:
    if text.isascii() and text.isprintable() and not any(c in text for c in '"\\<>&'):
        return f'"{text}"'
    return '"' + "".join(_escape_char(c) for c in text) + '"'


def _number(value: float) -> str:
    """A JSON number as Go prints the float64 it decodes to (``strconv`` 'f' or 'e', -1)."""
    f = float(value)
    if f == 0:
        return "0"
    if 1e-6 <= abs(f) < 1e21:
        if f.is_integer():
            return str(int(f))
        return format(Decimal(repr(f)), "f")
    mantissa, _, exponent = repr(f).partition("e")
    mantissa = mantissa.removesuffix(".0")
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}e{sign}{int(exponent.lstrip('+-'))}"


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int | float):
        out.append(_number(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if i:
                out.append(",")
            out.append(_string(str(key)))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:  # pragma: no cover - JSON-shaped input has no other types
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def marshal(value: Any) -> bytes:
    """``json.Marshal`` of the ``interface{}`` that decoding ``value`` gives in Go."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode()


def sorted_copy(value: Any) -> Any:
    """``value`` with every object's keys in encoding/json's order, so that an API
    server that keeps key order serves exactly :func:`marshal`'s layout."""
    if isinstance(value, dict):
        return {k: sorted_copy(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_copy(v) for v in value]
    return value
