"""Kubernetes' CEL format library (``k8s.io/apiserver/pkg/cel/library/format.go``).

``format.dns1123Label()`` (and the other named formats), ``format.named('…')`` and
``<format>.validate(s)``, which is ``optional.none()`` for a valid string and the
list of upstream's messages otherwise.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

import cel as engine

from pilothouse.api.cel.library import durations, opaque
from pilothouse.api.validation import names

_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _uri(text: str) -> list[str]:
    if not text:
        return ['parse "": empty url']
    if text.startswith("/"):
        return []
    scheme, colon, _ = text.partition(":")
    if not colon or not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*$", scheme):
        return [f'parse "{text}": invalid URI for request']
    try:
        _ = urllib.parse.urlsplit(text).port
    except ValueError:
        return [f'parse "{text}": invalid port']
    return []


def _uuid(text: str) -> list[str]:
    return [] if _UUID.match(text) else ["does not match the UUID format"]


def _byte(text: str) -> list[str]:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return ["invalid base64"]
    return []


def _date(text: str) -> list[str]:
    if _DATE.match(text) and durations.parse_timestamp(text + "T00:00:00Z") is not None:
        return []
    return ["invalid date"]


def _datetime(text: str) -> list[str]:
    return [] if durations.parse_timestamp(text) is not None else ["invalid datetime"]


VALIDATORS: dict[str, Callable[[str], list[str]]] = {
    "dns1123Label": lambda s: names.name_is_dns_label(s, False),
    "dns1123Subdomain": lambda s: names.name_is_dns_subdomain(s, False),
    "dns1035Label": lambda s: names.name_is_dns1035_label(s, False),
    "qualifiedName": names.is_qualified_name,
    "dns1123LabelPrefix": lambda s: names.name_is_dns_label(s, True),
    "dns1123SubdomainPrefix": lambda s: names.name_is_dns_subdomain(s, True),
    "dns1035LabelPrefix": lambda s: names.name_is_dns1035_label(s, True),
    "labelValue": names.is_valid_label_value,
    "uri": _uri,
    "uuid": _uuid,
    "byte": _byte,
    "date": _date,
    "datetime": _datetime,
}
NAMES = tuple(VALIDATORS)


def named(name: Any) -> Any:
    if not isinstance(name, str):
        raise opaque.NoSuchOverload()
    if name not in VALIDATORS:
        return engine.OptionalValue.none()
    return engine.OptionalValue.of(opaque.wrap(opaque.FORMAT, name))


def constant(name: str) -> Callable[[], dict[str, str]]:
    def make() -> dict[str, str]:
        return opaque.wrap(opaque.FORMAT, name)

    return make


def validate(fmt: Any, text: Any) -> Any:
    name = opaque.unwrap(opaque.FORMAT, fmt)
    if not isinstance(text, str):
        raise opaque.NoSuchOverload()
    problems = VALIDATORS[name](text)
    if not problems:
        return engine.OptionalValue.none()
    return engine.OptionalValue.of(list(problems))
