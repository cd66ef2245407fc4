"""How Go writes values, for messages and encodings that must match upstream byte for byte.

* JSON as Go writes it with HTML escaping on (jsoniter in structured-merge-diff,
  ``encoding/json`` elsewhere): compact, map keys sorted, ``<>&`` escaped.
* ``%q`` (``strconv.Quote``) and ``%v`` of float64, as paths and errors print them.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import functools
import json
import re
from decimal import Decimal
from typing import Any

from pilothouse.api import gostrings

_HTML_SPECIAL = re.compile("[<>&\u2028\u2029\x08\x0c]")
_GO_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


@functools.lru_cache(maxsize=16384)
def json_string(text: str, *, short_control: bool = False) -> str:
    """A JSON string as Go writes it with HTML escaping on.

    jsoniter (which writes FieldsV1 keys) spells ``\\b`` and ``\\f`` as ``\\u0008``
    and ``\\u000c``; Go's ``encoding/json`` (which writes the last-applied
    annotation) uses the short forms: pass ``short_control=True`` for that.
    """
    if not _HTML_SPECIAL.search(text):
        return json.dumps(text, ensure_ascii=False)
    out = ['"']
    for ch in text:
        escaped = _GO_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ch < " ":
            if short_control and ch in "\b\f":
                out.append("\\b" if ch == "\b" else "\\f")
            else:
                out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_float(number: float) -> str:
    """A float64 as Go's JSON encoder writes it (``1`` for 1.0, ``1e-07``→``1e-7``)."""
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"unsupported value: {number!r}")
    magnitude = abs(number)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, _, exponent = repr(number).partition("e")
        power = int(exponent)
        # Go writes at least two exponent digits, then trims "e-0X" to "e-X".
        if power < 0:
            return f"{mantissa}e-{-power}"
        return f"{mantissa}e+{power:02d}"
    if number == int(number):
        return str(int(number))
    text = repr(number)
    return format(Decimal(text), "f") if "e" in text else text


def json_text(value: Any, *, short_control: bool = False) -> str:
    """Compact JSON of a value, map keys sorted, as Go writes it."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json_string(value, short_control=short_control)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(
                json_string(str(k), short_control=short_control)
                + ":"
                + json_text(value[k], short_control=short_control)
                for k in sorted(value)
            )
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(json_text(v, short_control=short_control) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def value_string(item: Any) -> str:
    """A value as structured-merge-diff prints it in a path (``value.ToString``)."""
    if item is None:
        return "null"
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, float):
        return gostrings.float_v(item)
    if isinstance(item, int):
        return str(item)
    if isinstance(item, str):
        return gostrings.quote(item)
    if isinstance(item, list):
        return "[" + ",".join(value_string(v) for v in item) + "]"
    if isinstance(item, dict):
        return "".join(f"{k}={value_string(item[k])}" for k in sorted(item))
    return str(item)
