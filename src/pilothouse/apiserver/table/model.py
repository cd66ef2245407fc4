"""The shapes a kind's printer is made of: its columns and its row function.

A :class:`Printer` is what upstream registers with ``TableHandler``: the column
definitions of one kind and a function that turns one object into the cells of
its row. Printers are immutable values; the kind modules (``core``, ``pods``,
``apps``, …) each export a ``PRINTERS`` mapping and :mod:`.assembly` joins them.

Upstream always generates server-side tables with ``Wide: true``, so every row
carries the cells of the wide-only (priority 1) columns too; kubectl drops those
columns itself unless asked for ``-o wide``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Object = dict[str, Any]
"""An API object as served (plain JSON-shaped dict)."""

Cells = list[Any]
"""The cells of a row: strings, ints and bools, as upstream's JSON carries them."""

RowFunc = Callable[[Object, float], Cells]
"""Build the cells of one object's row, given ``now`` as a unix timestamp."""

ConditionsFunc = Callable[[Object], list[dict[str, str]] | None]
"""Row conditions (only Pods have them: ``Completed`` once the pod has ended)."""


def column(
    name: str,
    type_: str,
    description: str,
    *,
    format_: str = "",
    priority: int = 0,
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` TableColumnDefinition, keys in upstream's JSON order."""
    return {
        "name": name,
        "type": type_,
        "format": format_,
        "description": description,
        "priority": priority,
    }


@dataclass(frozen=True, slots=True)
class Printer:
    """The table form of one kind: column definitions and how to fill a row."""

    columns: tuple[dict[str, Any], ...]
    row: RowFunc
    conditions: ConditionsFunc | None = None
