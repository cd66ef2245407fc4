"""How Kubernetes' opaque CEL values travel through the engine.

The engine carries only CEL's own value types, so a ``kubernetes.Quantity``, a
``net.IP`` or a ``net.CIDR`` is a one-entry map keyed by a name no JSON object of
ours uses (it starts with a NUL), holding the value's canonical text: two
quantities of equal value (``1Gi`` and ``1024Mi``) are then equal maps, as upstream
compares them. Library functions unwrap them and refuse anything else with cel-go's
``no such overload``.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from typing import Any

QUANTITY = "\x00kubernetes.Quantity"
URL = "\x00kubernetes.URL"
IP = "\x00net.IP"
CIDR = "\x00net.CIDR"
FORMAT = "\x00kubernetes.NamedFormat"
KINDS = (QUANTITY, URL, IP, CIDR, FORMAT)


class NoSuchOverload(TypeError):
    """An argument of a type the function has no overload for."""

    def __init__(self) -> None:
        super().__init__("no such overload")


def wrap(kind: str, text: str) -> dict[str, str]:
    return {kind: text}


def unwrap(kind: str, value: Any) -> str:
    if isinstance(value, dict) and len(value) == 1 and kind in value:
        text = value[kind]
        if isinstance(text, str):
            return text
    raise NoSuchOverload()


def kind_of(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        (key,) = value
        if key in KINDS:
            return str(key)
    return None


def string(value: Any) -> str:
    """``string(x)`` for the opaque types that convert to strings (ip, cidr, url)."""
    kind = kind_of(value)
    if kind in (IP, CIDR, URL):
        return str(value[kind])
    raise NoSuchOverload()
