"""Resource quantities (``resource.Quantity``): ``100m``, ``128Mi``, ``1.5``, ``1e3``.

Parsing follows upstream's grammar and rounding exactly: a number, an optional
fraction, and a suffix that is binary (``Ki`` … ``Ei``), decimal SI (``n u m k M G T
P E``) or a decimal exponent (``e3``/``E-2``). Values are exact decimals rounded away
from zero to nano units, binary values are capped at 2^63-1, and the canonical form
is the shortest one upstream prints (``0.5`` → ``500m``, ``1.5Gi`` → ``1536Mi``,
``1000`` → ``1k``). Like upstream, a value given in an already-canonical spelling is
echoed back unchanged (``1e3`` stays ``1e3``, ``100m`` stays ``100m``).

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import decimal
import functools
from dataclasses import dataclass

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

_SPLIT_RE = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
FORMAT_ERROR = f"quantities must match the regular expression '{_SPLIT_RE}'"
NUMERIC_ERROR = "unable to parse numeric part of quantity"
SUFFIX_ERROR = "unable to parse quantity's suffix"

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_BY_EXPONENT = {e: s for s, e in _DECIMAL.items()}
_BINARY_BY_EXPONENT = {e: s for s, e in _BINARY.items()}
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_DIGITS = frozenset("0123456789")

MAX_INT64 = 2**63 - 1
_NANO = decimal.Decimal(1).scaleb(-9)
_MILLI = decimal.Decimal(1).scaleb(-3)
_ONE = decimal.Decimal(1)
# Exact arithmetic: quantities never need more digits than this.
_CONTEXT = decimal.Context(
    prec=4000, rounding=decimal.ROUND_UP, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN
)


class QuantityError(ValueError):
    """A string that is not a quantity; the message is upstream's."""


@dataclass(frozen=True, slots=True)
class Quantity:
    """A parsed quantity: its exact value, its format and (maybe) its original spelling."""

    value: decimal.Decimal
    format: str = DECIMAL_SI
    # Upstream keeps the caller's spelling when it is already canonical.
    original: str | None = None

    def __str__(self) -> str:
        if self.original is not None:
            return self.original
        return format_quantity(self.value, self.format)

    def milli_value(self) -> int:
        return milli(self.value)

    def int_value(self) -> int:
        return to_int(self.value)

    def sign(self) -> int:
        return (self.value > 0) - (self.value < 0)


def _go_parse_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 10, 64)``: optional sign then ASCII digits."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not all(c in _DIGITS for c in body):
        return None
    n = int(text)
    if not -(2**63) <= n <= MAX_INT64:
        return None
    return n


def _scan(text: str) -> tuple[bool, str, str, str]:
    """Split ``text`` into (positive, digits, fraction digits, suffix) as upstream scans it."""
    pos = 0
    end = len(text)
    positive = True
    if text[0] in "+-":
        positive = text[0] == "+"
        pos = 1
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    num = text[start:pos] or "0"
    denom = ""
    if pos < end and text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos] in _DIGITS:
            pos += 1
        denom = text[start:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise QuantityError(FORMAT_ERROR)
    return positive, num, denom, text[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) for a suffix, as upstream's suffixer reads it."""
    if suffix in _DECIMAL:
        return 10, _DECIMAL[suffix], DECIMAL_SI
    if suffix in _BINARY:
        return 2, _BINARY[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        exponent = _go_parse_int(suffix[1:])
        if exponent is not None:
            # Upstream narrows the exponent to an int32.
            exponent = (exponent + 2**31) % 2**32 - 2**31
            return 10, exponent, DECIMAL_EXPONENT
    raise QuantityError(SUFFIX_ERROR)


def _keeps_spelling(num: str, denom: str, base: int, exponent: int, fmt: str) -> bool:
    """Whether upstream's fast path would keep the caller's string as the canonical one."""
    digits = num + denom
    if fmt == BINARY_SI:
        if denom:
            return False
        precision = 15 - len(num) - int(exponent * 3 / 10) - 1
        if precision < 0:
            return False
        value = int(digits)
        if value << exponent > MAX_INT64:
            return False
        return value & 0x07 != 0
    precision = 18 - len(num) - len(denom)
    scale = exponent - len(denom)
    if precision < 0 or scale < -9:
        return False
    return scale % 3 == 0 and not digits.endswith("000") and digits[0] != "0"


def parse(text: str | int | float) -> Quantity:
    """Parse a quantity (a JSON string or number) or raise :class:`QuantityError`."""
    if isinstance(text, bool):
        raise QuantityError(FORMAT_ERROR)
    if isinstance(text, str):
        return _parse_cached(text)  # the same few spellings recur on every pod
    return _parse(text)


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Quantity:
    return _parse(text)


def _parse(text: str | int | float) -> Quantity:
    if isinstance(text, int):
        text = str(text)
    elif isinstance(text, float):
        text = repr(text)
    elif not isinstance(text, str):
        raise QuantityError(FORMAT_ERROR)
    # Upstream trims whitespace when it reads a quantity from JSON.
    text = text.strip()
    if not text:
        raise QuantityError(FORMAT_ERROR)
    if text == "0":
        return Quantity(decimal.Decimal(0), DECIMAL_SI, "0")
    positive, num, denom, suffix = _scan(text)
    base, exponent, fmt = _interpret(suffix)
    try:
        amount = decimal.Decimal(f"{num}.{denom}" if denom else num)
    except decimal.InvalidOperation as exc:  # pragma: no cover - the scan admits digits only
        raise QuantityError(NUMERIC_ERROR) from exc
    if base == 10:
        amount = amount.scaleb(exponent, _CONTEXT)
    else:
        amount = _CONTEXT.multiply(amount, decimal.Decimal(2**exponent))
    if amount.as_tuple().exponent < -9:  # type: ignore[operator]
        amount = amount.quantize(_NANO, rounding=decimal.ROUND_UP, context=_CONTEXT)
    if fmt == BINARY_SI:
        if amount > MAX_INT64:
            amount = decimal.Decimal(MAX_INT64)
        elif 0 < amount < 1:
            fmt = DECIMAL_SI
    if not positive:
        amount = -amount
    original = text if _keeps_spelling(num, denom, base, exponent, fmt) else None
    return Quantity(amount, fmt, original)


def parse_quantity(text: str | int | float) -> decimal.Decimal:
    """The exact value of a quantity (rounded away from zero to nano units)."""
    return parse(text).value


def canonicalize(text: str | int | float) -> str:
    """The string upstream serialises for a quantity the user wrote as ``text``."""
    return str(parse(text))


def round_up_milli(text: str | int | float) -> str:
    """Canonical form after upstream's resource-list defaulting (round up to ``1m``)."""
    q = parse(text)
    if q.value.as_tuple().exponent >= -3 or q.value == q.value.quantize(_MILLI, context=_CONTEXT):  # type: ignore[operator]
        return str(q)
    rounded = q.value.quantize(_MILLI, rounding=decimal.ROUND_UP, context=_CONTEXT)
    return format_quantity(rounded, q.format)


def _ceil_away(value: decimal.Decimal) -> int:
    return int(value.to_integral_value(rounding=decimal.ROUND_UP, context=_CONTEXT))


def milli(value: decimal.Decimal | Quantity | str) -> int:
    """``MilliValue()``: value * 1000, rounded away from zero."""
    return _ceil_away(_value(value).scaleb(3, _CONTEXT))


def to_int(value: decimal.Decimal | Quantity | str) -> int:
    """``Value()``: the value rounded away from zero to an integer."""
    return _ceil_away(_value(value))


def _value(value: decimal.Decimal | Quantity | str) -> decimal.Decimal:
    if isinstance(value, Quantity):
        return value.value
    if isinstance(value, str):
        return parse(value).value
    return value


def _decimal_parts(value: decimal.Decimal) -> tuple[int, int]:
    """(mantissa, exponent) with the exponent a multiple of three, lowered as needed."""
    sign, digits, exponent = value.normalize(_CONTEXT).as_tuple()
    mantissa = int("".join(map(str, digits)))
    assert isinstance(exponent, int)
    shift = exponent % 3
    mantissa *= 10**shift
    exponent -= shift
    return (-mantissa if sign else mantissa), exponent


def format_quantity(value: decimal.Decimal | int, fmt: str = DECIMAL_SI) -> str:
    """The canonical spelling of ``value`` in format ``fmt`` (``BinarySI``, ``DecimalSI``…)."""
    value = decimal.Decimal(value)
    if value.as_tuple().exponent < -9:  # type: ignore[operator]
        value = value.quantize(_NANO, rounding=decimal.ROUND_UP, context=_CONTEXT)
    if value == 0:
        return "0"
    if fmt == BINARY_SI:
        if -1024 < value < 1024 or value != value.to_integral_value(context=_CONTEXT):
            fmt = DECIMAL_SI
        else:
            number = int(value)
            magnitude = abs(number)
            power = 0
            while magnitude >= 1024 and magnitude % 1024 == 0:
                magnitude //= 1024
                power += 1
            shown = -magnitude if number < 0 else magnitude
            return f"{shown}{_BINARY_BY_EXPONENT.get(power * 10, '')}"
    mantissa, exponent = _decimal_parts(value)
    if fmt == DECIMAL_EXPONENT:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    # Upstream has no suffix beyond E (10^18) and then prints the bare mantissa.
    return f"{mantissa}{_DECIMAL_BY_EXPONENT.get(exponent, '')}"


def compare(a: str | int | float, b: str | int | float) -> int:
    """-1, 0 or 1 as quantity ``a`` is less than, equal to or greater than ``b``."""
    x, y = parse(a).value, parse(b).value
    return (x > y) - (x < y)
