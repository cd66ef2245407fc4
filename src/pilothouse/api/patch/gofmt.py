"""Values printed the way Go's ``fmt`` and ``reflect`` print them in patch errors.

Upstream's patch errors embed decoded JSON values with ``%v`` and ``%s``
(``map: map[image:nginx] does not contain declared merge key: name``), Go type
names (``expected a []interface {}, but received a string``) and Go-quoted
strings. The values are the ones Go's JSON decoding yields — objects are
``map[string]interface {}``, arrays ``[]interface {}``, integers ``int64`` (the API
server decodes patches preserving integers), other numbers ``float64``.

No I/O here: part of the bottom ``api`` layer.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import gostrings

_MAP = "map[string]interface {}"
_SLICE = "[]interface {}"


def type_name(value: Any) -> str:
    """``reflect.TypeOf(value).String()`` for a decoded JSON value (``<nil>`` for null)."""
    kind = type(value)
    if kind is dict:
        return _MAP
    if kind is list:
        return _SLICE
    if kind is str:
        return "string"
    if kind is bool:
        return "bool"
    if kind is int:
        return "int64"
    if kind is float:
        return "float64"
    return "<nil>"


def type_name_s(value: Any) -> str:
    """A value's Go type as ``%s`` prints a ``reflect.Type`` (a nil type is ``%!s(<nil>)``)."""
    return "%!s(<nil>)" if value is None else type_name(value)


def json_kind(value: Any) -> str:
    """How Go's decoder names a JSON value in ``cannot unmarshal <kind> into …``."""
    kind = type(value)
    if kind is dict:
        return "object"
    if kind is list:
        return "array"
    if kind is str:
        return "string"
    if kind is bool:
        return "bool"
    if kind is int or kind is float:
        return "number"
    return "null"


def v(value: Any) -> str:
    """``fmt.Sprintf("%v", value)``."""
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is dict:
        return "map[" + " ".join(f"{k}:{v(value[k])}" for k in sorted(value)) + "]"
    if kind is list:
        return "[" + " ".join(v(item) for item in value) + "]"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return gostrings.float_v(value)
    return "<nil>"


def s(value: Any) -> str:
    """``fmt.Sprintf("%s", value)``: strings as they are, other scalars as ``%!s(T=v)``."""
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is dict:
        return "map[" + " ".join(f"{k}:{s(value[k])}" for k in sorted(value)) + "]"
    if kind is list:
        return "[" + " ".join(s(item) for item in value) + "]"
    if value is None:
        return "%!s(<nil>)"
    return f"%!s({type_name(value)}={v(value)})"
