"""The ``pod-template-hash``: upstream's ``controller.ComputeHash``, bit for bit.

Upstream prints the Go value of the template with go-spew (``%#v``, sorted map
keys, no methods), feeds the text to FNV-32a, appends the collision count as
eight little-endian bytes when there is one, and spells the 32-bit sum's decimal
digits with ``rand.SafeEncodeString``. So the hash depends on the Go struct
layout of ``v1.PodTemplateSpec``: every field is printed, set or not. This
module reproduces that text from the JSON template using the 1.32 layout in
:mod:`.gotypes`, so a ReplicaSet here gets the name upstream would give it
(``web-7d9c6b8f5b``).

The controller manager reads objects as protobuf, where an empty list or map
decodes as nil: empty JSON lists and maps are printed as ``<nil>`` here too.
Quantities are printed as upstream's parser would store the canonical string
the API server serves (its ``int64Amount``, the cached string when canonical).
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from pilothouse.api import quantity
from pilothouse.controllers.deployment import gotypes

SAFE_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_INT_KINDS = frozenset({"int", "int8", "int16", "int32", "int64", "uint8", "uint32", "uint64"})


def fnv32a(data: bytes, start: int = _FNV_OFFSET) -> int:
    h = start
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def safe_encode_string(text: str) -> str:
    """``k8s.io/apimachinery/pkg/util/rand.SafeEncodeString``."""
    return "".join(SAFE_ALPHANUMS[ord(c) % len(SAFE_ALPHANUMS)] for c in text)


def compute_hash(template: dict[str, Any], collision_count: int | None) -> str:
    """The pod-template-hash of ``template`` (a PodTemplateSpec as JSON)."""
    h = fnv32a(spew_template(template).encode())
    if collision_count is not None:
        h = fnv32a((collision_count & 0xFFFFFFFF).to_bytes(4, "little") + bytes(4), h)
    return safe_encode_string(str(h))


def spew_template(template: dict[str, Any]) -> str:
    """go-spew's ``%#v`` of the template, as upstream hashes it."""
    out: list[str] = []
    _Printer(out).value("core.PodTemplateSpec", template, ignore_type=False)
    return "".join(out)


# --- Go types -------------------------------------------------------------------------


def reflect_name(key: str) -> str:
    """How Go's reflect names a type key (``core.PodSpec`` → ``v1.PodSpec``)."""
    if key.startswith("*"):
        return "*" + reflect_name(key[1:])
    if key.startswith("[]"):
        return "[]" + reflect_name(key[2:])
    if key.startswith("map["):
        k, v = _split_map(key)
        return f"map[{reflect_name(k)}]{reflect_name(v)}"
    pkg, dot, name = key.partition(".")
    if not dot:
        return key
    return f"{'v1' if pkg in ('core', 'meta') else pkg}.{name}"


def _split_map(key: str) -> tuple[str, str]:
    depth = 0
    for i, c in enumerate(key[3:], start=3):
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return key[4:i], key[i + 1 :]
    raise ValueError(key)


@functools.cache
def struct_fields(key: str) -> tuple[tuple[str, str, str], ...]:
    """(Go name, type key, JSON name or "" when embedded) in declaration order."""
    spec = gotypes.STRUCTS[key]
    return tuple(tuple(part.split(":")) for part in spec.split(",")) if spec else ()  # type: ignore[misc]


def _underlying(key: str) -> str:
    while key in gotypes.NAMED:
        key = gotypes.NAMED[key]
    return key


class _Printer:
    """go-spew's formatter for ``%#v`` with DisableMethods and SortKeys."""

    def __init__(self, out: list[str]) -> None:
        self.out = out

    def value(self, key: str, v: Any, *, ignore_type: bool) -> None:
        w = self.out.append
        if key.startswith("*"):
            if v is None:
                w("<nil>" if ignore_type else f"({reflect_name(key)})<nil>")
                return
            w("<*>" if ignore_type else f"({reflect_name(key)})")
            self.value(key[1:], v, ignore_type=True)
            return
        if not ignore_type:
            w(f"({reflect_name(key)})")
        special = _SPECIAL.get(key)
        if special is not None:
            special(self, v)
            return
        under = _underlying(key)
        if under in gotypes.STRUCTS:
            self.struct(under, v or {})
        elif under.startswith("[]"):
            if not v:
                w("<nil>")
                return
            w("[")
            for i, item in enumerate(v):
                if i:
                    w(" ")
                self.value(under[2:], item, ignore_type=True)
            w("]")
        elif under.startswith("map["):
            if not v:
                w("<nil>")
                return
            k_type, v_type = _split_map(under)
            w("map[")
            for i, k in enumerate(sorted(v)):
                if i:
                    w(" ")
                self.value(k_type, k, ignore_type=True)
                w(":")
                self.value(v_type, v[k], ignore_type=True)
            w("]")
        elif under == "string":
            w(str(v or ""))
        elif under == "bool":
            w("true" if v else "false")
        elif under in _INT_KINDS:
            w(str(int(v or 0)))
        else:  # pragma: no cover - the layout has no other kinds
            raise ValueError(f"cannot print Go type {key}")

    def struct(self, key: str, obj: dict[str, Any]) -> None:
        w = self.out.append
        w("{")
        for i, (name, ftype, json_name) in enumerate(struct_fields(key)):
            if i:
                w(" ")
            w(name)
            w(":")
            self.value(ftype, obj.get(json_name) if json_name else obj, ignore_type=False)
        w("}")

    # --- types whose Go form is not their JSON form ----------------------------------
    def quantity(self, v: Any) -> None:
        amount, scale, cached, fmt, dec = _quantity_internals(v)
        dec_text = "(*inf.Dec)<nil>" if dec is None else f"(*inf.Dec){dec}"
        self.out.append(
            f"{{i:(resource.int64Amount){{value:(int64){amount} scale:(resource.Scale){scale}}} "
            f"d:(resource.infDecAmount){{Dec:{dec_text}}} s:(string){cached} "
            f"Format:(resource.Format){fmt}}}"
        )

    def time(self, v: Any) -> None:
        # Templates carry ``creationTimestamp: null``. A set time would print its
        # *time.Location, which depends on the machine upstream runs on, so it
        # cannot be matched: it is hashed as the zero time (a stable name still).
        self.out.append("{Time:(time.Time){wall:(uint64)0 ext:(int64)0 loc:(*time.Location)<nil>}}")

    def int_or_string(self, v: Any) -> None:
        if isinstance(v, str):
            self.out.append(f"{{Type:(intstr.Type)1 IntVal:(int32)0 StrVal:(string){v}}}")
        else:
            self.out.append(f"{{Type:(intstr.Type)0 IntVal:(int32){int(v or 0)} StrVal:(string)}}")

    def fields_v1(self, v: Any) -> None:
        raw = b"" if v is None else _json_bytes(v)
        inner = "<nil>" if not raw else "[" + " ".join(str(b) for b in raw) + "]"
        self.out.append(f"{{Raw:([]uint8){inner}}}")


def _json_bytes(v: Any) -> bytes:
    return orjson.dumps(v)


_SPECIAL = {
    "resource.Quantity": _Printer.quantity,
    "meta.Time": _Printer.time,
    "intstr.IntOrString": _Printer.int_or_string,
    "meta.FieldsV1": _Printer.fields_v1,
}


def _quantity_internals(v: Any) -> tuple[int, int, str, str, str | None]:
    """(int64 value, scale, cached string, format, inf.Dec text) as ParseQuantity
    stores the canonical spelling of ``v`` (what the API server serves)."""
    text = quantity.canonicalize(v if v is not None else "0")
    if text == "0":
        return 0, 0, "0", quantity.DECIMAL_SI, None
    positive, num, denom, suffix = quantity._scan(text)
    _base, exponent, fmt = quantity._interpret(suffix)
    mantissa = 1
    precision = -1
    scale = 0
    if fmt in (quantity.DECIMAL_SI, quantity.DECIMAL_EXPONENT):
        scale = exponent
        precision = 18 - (len(num) + len(denom))
    elif exponent >= 0 and not denom:
        mantissa = 1 << exponent
        precision = 15 - len(num) - int(exponent * 3 / 10) - 1
    if precision >= 0:
        scale -= len(denom)
        if scale >= -9:
            shifted = int(num + denom)
            result = shifted * mantissa
            if result <= 2**63 - 1:
                result = result if positive else -result
                if fmt == quantity.BINARY_SI:
                    keep = exponent % 10 == 0 and shifted & 0x07 != 0
                else:
                    digits = num + denom
                    keep = scale % 3 == 0 and not digits.endswith("000") and digits[0] != "0"
                return result, scale, text if keep else "", fmt, None
    # Upstream's slow path keeps an inf.Dec (a big.Int and a scale, rounded to nano).
    value = quantity.parse(text)
    unscaled = int(value.value.scaleb(9).to_integral_value())
    words = []
    magnitude = abs(unscaled)
    while magnitude:
        words.append(str(magnitude & (2**64 - 1)))
        magnitude >>= 64
    nat = "[" + " ".join(words) + "]" if words else "<nil>"
    dec = (
        f"{{unscaled:(big.Int){{neg:(bool){'true' if unscaled < 0 else 'false'} "
        f"abs:(big.nat){nat}}} scale:(inf.Scale)9}}"
    )
    return 0, 0, "", value.format, dec
