"""Validating a value against a CRD's OpenAPI v3 schema, with kube-openapi's messages.

Upstream validates custom resources with kube-openapi's schema validator and turns
its results into field errors (``kubeOpenAPIResultToFieldErrors``), so a bad
``CronTab`` reads::

    spec.cronSpec: Invalid value: "x": spec.cronSpec in body should match '^(\\d+|\\*)…$'
    spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"
    spec.image: Required value
    spec.color: Unsupported value: "pink": supported values: "red", "blue"
    spec.items: Too many: 5: must have at most 3 items

:func:`validate` walks value and schema together and returns those errors in the
validator's order. Formats are checked as kube-openapi's default registry checks
them (``date-time``, ``date``, ``duration``, ``uuid``, ``ipv4``, ``ipv6``, ``cidr``,
``mac``, ``hostname``, ``email``, ``uri``, ``byte``…); formats it does not know
pass.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from pilothouse.api import errors
from pilothouse.api.cel.library import durations

FieldError = errors.FieldError


def json_type(value: Any) -> str:
    """The JSON type of a decoded value, as kube-openapi names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number(value: float | int) -> str:
    """Go's ``%v`` of a float64 holding ``value``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, float):
        text = repr(value)
        return text.replace("e+", "e+") if "e" in text else text
    return str(value)


@functools.lru_cache(maxsize=512)
def _pattern(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


# --- formats (kube-openapi's strfmt.Default) --------------------------------------------

_UUID = {
    "uuid": r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
    "uuid3": r"^[0-9a-f]{8}-[0-9a-f]{4}-3[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$",
    "uuid4": r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
    "uuid5": r"^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
}
_HOSTNAME = re.compile(
    r"^([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9]))*\.?$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$")
_HEXCOLOR = re.compile(r"^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_RGBCOLOR = re.compile(r"^rgb\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*\)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _is_ipv4(s: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(s), ipaddress.IPv4Address)
    except ValueError:
        return False


def _is_ipv6(s: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(s), ipaddress.IPv6Address)
    except ValueError:
        return False


def _is_cidr(s: str) -> bool:
    try:
        ipaddress.ip_interface(s)
    except ValueError:
        return False
    return "/" in s


def _is_byte(s: str) -> bool:
    try:
        base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_uri(s: str) -> bool:
    scheme, colon, _ = s.partition(":")
    return s.startswith("/") or (
        bool(colon) and bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*$", scheme))
    )


def _matches_lower(pattern: re.Pattern[str], s: str) -> bool:
    return bool(pattern.match(s.lower()))


def _is_date(s: str) -> bool:
    return bool(_DATE.match(s)) and durations.parse_timestamp(s + "T00:00:00Z") is not None


FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": lambda s: durations.parse_timestamp(s) is not None,
    "datetime": lambda s: durations.parse_timestamp(s) is not None,
    "date": _is_date,
    "duration": lambda s: durations.parse(s) is not None,
    "ipv4": _is_ipv4,
    "ipv6": _is_ipv6,
    "cidr": _is_cidr,
    "mac": lambda s: bool(_MAC.match(s)),
    "hostname": lambda s: bool(_HOSTNAME.match(s)) and len(s) <= 255,
    "email": lambda s: bool(_EMAIL.match(s)),
    "uri": _is_uri,
    "byte": _is_byte,
    "hexcolor": lambda s: bool(_HEXCOLOR.match(s)),
    "rgbcolor": lambda s: bool(_RGBCOLOR.match(s)),
    **{name: functools.partial(_matches_lower, re.compile(p)) for name, p in _UUID.items()},
}


# --- the walk -------------------------------------------------------------------------


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _name(path: str) -> str:
    return path if path else "."


class _Validator:
    def __init__(self) -> None:
        self.errs: list[FieldError] = []

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self.errs.append(errors.invalid_value(path, value, detail))

    def validate(self, value: Any, schema: Mapping[str, Any], path: str) -> None:
        if not isinstance(schema, dict):
            return
        if not self._type(value, schema, path):
            return
        if value is None:
            return
        enum = schema.get("enum")
        if isinstance(enum, list) and not any(_equal(value, e) for e in enum):
            shown = [
                e if isinstance(e, str) else json.dumps(e, separators=(",", ":")) for e in enum
            ]
            self.errs.append(errors.not_supported(path, value, shown))
        if isinstance(value, dict):
            self._object(value, schema, path)
        elif isinstance(value, list):
            self._array(value, schema, path)
        elif isinstance(value, str):
            self._string(value, schema, path)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._number(value, schema, path)
        self._junctors(value, schema, path)

    def _type(self, value: Any, schema: Mapping[str, Any], path: str) -> bool:
        if schema.get("x-kubernetes-int-or-string"):
            allowed = ["integer", "string"]
        else:
            declared = schema.get("type")
            if not declared:
                return True
            allowed = [declared]
        actual = json_type(value)
        if value is None:
            if schema.get("nullable"):
                return True
        elif actual in allowed or (actual == "integer" and "number" in allowed):
            return True
        self.errs.append(
            errors.FieldError(
                errors.TYPE_INVALID,
                path,
                f'{_name(path)} in body must be of type {",".join(allowed)}: "{actual}"',
                actual,
            )
        )
        return False

    def _object(self, value: dict[str, Any], schema: Mapping[str, Any], path: str) -> None:
        props = schema.get("properties") or {}
        for key in schema.get("required") or ():
            if key not in value:
                self.errs.append(errors.required(_child(path, key)))
        max_props = schema.get("maxProperties")
        if isinstance(max_props, int) and len(value) > max_props:
            self.errs.append(errors.too_many(path, len(value), max_props))
        min_props = schema.get("minProperties")
        if isinstance(min_props, int) and len(value) < min_props:
            self.invalid(
                path,
                len(value),
                f"{_name(path)} in body should have at least {min_props} properties",
            )
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            if key in props:
                self.validate(sub, props[key], _child(path, key))
            elif isinstance(extra, dict):
                self.validate(sub, extra, _child(path, key))

    def _array(self, value: list[Any], schema: Mapping[str, Any], path: str) -> None:
        max_items = schema.get("maxItems")
        if isinstance(max_items, int) and len(value) > max_items:
            self.errs.append(errors.too_many(path, len(value), max_items))
        min_items = schema.get("minItems")
        if isinstance(min_items, int) and len(value) < min_items:
            self.invalid(
                path, len(value), f"{_name(path)} in body should have at least {min_items} items"
            )
        if schema.get("uniqueItems"):
            seen: list[Any] = []
            for item in value:
                if any(_equal(item, s) for s in seen):
                    self.invalid(path, value, f"{_name(path)} in body shouldn't contain duplicates")
                    break
                seen.append(item)
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                self.validate(item, items, f"{path}[{i}]")

    def _string(self, value: str, schema: Mapping[str, Any], path: str) -> None:
        max_length = schema.get("maxLength")
        if isinstance(max_length, int) and len(value) > max_length:
            self.errs.append(
                errors.FieldError(
                    errors.TOO_LONG, path, f"may not be more than {max_length} bytes", value
                )
            )
        min_length = schema.get("minLength")
        if isinstance(min_length, int) and len(value) < min_length:
            self.invalid(
                path, value, f"{_name(path)} in body should be at least {min_length} chars long"
            )
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            compiled = _pattern(pattern)
            if compiled is not None and not compiled.search(value):
                self.invalid(path, value, f"{_name(path)} in body should match '{pattern}'")
        fmt = schema.get("format")
        check = FORMATS.get(fmt) if isinstance(fmt, str) else None
        if check is not None and not check(value):
            self.invalid(path, value, f'{_name(path)} in body must be of type {fmt}: "{value}"')

    def _number(self, value: float, schema: Mapping[str, Any], path: str) -> None:
        name = _name(path)
        maximum = schema.get("maximum")
        if isinstance(maximum, int | float):
            if schema.get("exclusiveMaximum") and value >= maximum:
                self.invalid(path, value, f"{name} in body should be less than {_number(maximum)}")
            elif value > maximum:
                self.invalid(
                    path,
                    value,
                    f"{name} in body should be less than or equal to {_number(maximum)}",
                )
        minimum = schema.get("minimum")
        if isinstance(minimum, int | float):
            if schema.get("exclusiveMinimum") and value <= minimum:
                self.invalid(
                    path, value, f"{name} in body should be greater than {_number(minimum)}"
                )
            elif value < minimum:
                self.invalid(
                    path,
                    value,
                    f"{name} in body should be greater than or equal to {_number(minimum)}",
                )
        multiple = schema.get("multipleOf")
        if isinstance(multiple, int | float) and multiple > 0:
            quotient = value / multiple
            if abs(quotient - round(quotient)) > 1e-9:
                self.invalid(
                    path, value, f"{name} in body should be a multiple of {_number(multiple)}"
                )

    def _junctors(self, value: Any, schema: Mapping[str, Any], path: str) -> None:
        name = _name(path)
        for sub in schema.get("allOf") or ():
            self.validate(value, sub, path)
        any_of = schema.get("anyOf")
        if isinstance(any_of, list) and any_of and not any(_passes(value, s, path) for s in any_of):
            self.invalid(path, value, f"{name} in body must validate at least one schema (anyOf)")
        one_of = schema.get("oneOf")
        if isinstance(one_of, list) and one_of:
            passing = sum(1 for s in one_of if _passes(value, s, path))
            if passing != 1:
                self.invalid(
                    path, value, f"{name} in body must validate one and only one schema (oneOf)"
                )
        not_schema = schema.get("not")
        if isinstance(not_schema, dict) and _passes(value, not_schema, path):
            self.invalid(path, value, f"{name} in body must not validate the schema (not)")


def _passes(value: Any, schema: Mapping[str, Any], path: str) -> bool:
    v = _Validator()
    v.validate(value, schema, path)
    return not v.errs


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def validate(value: Any, schema: Mapping[str, Any] | None, path: str = "") -> list[FieldError]:
    """kube-openapi's field errors for ``value`` against ``schema`` (``path``: where it sits)."""
    if schema is None:
        return []
    v = _Validator()
    v.validate(value, schema, path)
    return v.errs
