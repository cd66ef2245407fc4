"""Go's spellings of values in messages: ``strconv.Quote`` (what ``%q`` prints) and
a float64 as ``%v`` prints it.

Upstream's error texts embed both, and clients and users match on those texts,
so every module that words a message the Go way uses these two functions.
No I/O here: part of the bottom ``api`` layer.
"""

from __future__ import annotations

import decimal
import math


def float_v(value: float) -> str:
    """A float64 as ``%v`` prints it: shortest digits, exponent form from 1e+06 and below 1e-04."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    parsed = decimal.Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, parsed.digits)).rstrip("0") or "0"
    exponent = int(parsed.exponent) + (len(parsed.digits) - len(digits))
    point = len(digits) + exponent  # where the decimal point sits relative to the digits
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


_SHORT_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def quote(text: str) -> str:
    """``strconv.Quote(text)`` (Go's ``%q`` of a string)."""
    out = ['"']
    for ch in text:
        escaped = _SHORT_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)
