"""What every Pod Security check shares: its verdict type and how it walks and words a pod."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Forbidden:
    """A failed check: upstream's ForbiddenReason and ForbiddenDetail."""

    reason: str
    detail: str = ""


CheckFn = Callable[[Obj, Obj], Forbidden | None]


def containers(spec: Obj) -> Iterator[Obj]:
    """Init containers, containers, then ephemeral containers (upstream's visit order)."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                yield c


def sc(obj: Obj) -> Obj | None:
    value = obj.get("securityContext")
    return value if isinstance(value, dict) else None


def quote(items: list[str]) -> str:
    """joinQuote: ``"a", "b"``."""
    return '"' + '", "'.join(items) + '"' if items else ""


def plural(singular: str, many: str, n: int) -> str:
    return singular if n == 1 else many


def containers_phrase(names: list[str]) -> str:
    """``container "a"`` or ``containers "a", "b"``."""
    return f"{plural('container', 'containers', len(names))} {quote(names)}"


def windows(spec: Obj) -> bool:
    return ((spec.get("os") or {}).get("name")) == "windows"
