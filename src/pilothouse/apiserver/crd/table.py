"""Table output of custom resources: the CRD version's ``additionalPrinterColumns``.

As upstream's table convertor (``registry/customresource/tableconvertor``): a ``Name``
column, then one column per declared printer column whose cells come from its
JSONPath (``nil`` when nothing matches). String cells print as jsonpath prints;
``integer``, ``number`` and ``boolean`` cells are typed; ``date`` cells are ages
(``5m``). A version declaring no columns gets ``Age`` from the creation timestamp.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api.apiextensions import crd as crds
from pilothouse.api.apiextensions import jsonpath
from pilothouse.api.meta import Obj
from pilothouse.apiserver.table import docs, timefmt
from pilothouse.apiserver.table.model import Cells, Printer, column

AGE_COLUMN = {
    "name": "Age",
    "type": "date",
    "jsonPath": ".metadata.creationTimestamp",
    "description": docs.CREATION_TIMESTAMP,
}


def _cell(kind: str, value: Any, now: float) -> Any:
    if value is None:
        return None
    if kind == "integer":
        if isinstance(value, bool):
            return None
        return int(value) if isinstance(value, int | float) else None
    if kind == "number":
        if isinstance(value, bool):
            return None
        return float(value) if isinstance(value, int | float) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "date":
        if not isinstance(value, str):
            return None
        ts = timefmt.parse_time(value)
        if ts is None:
            return "<invalid>"
        return timefmt.human_duration(now - ts)
    return None


def printer(crd: Obj, version: str) -> Printer:
    declared = crds.printer_columns(crd, version) or [AGE_COLUMN]
    paths = []
    columns = [column("Name", "string", docs.NAME, format_="name")]
    for col in declared:
        try:
            steps = jsonpath.parse(str(col.get("jsonPath") or ""))
        except jsonpath.JSONPathError:
            steps = []
        paths.append((str(col.get("type") or "string"), steps))
        description = col.get("description") or (
            f"Custom resource definition column (in JSONPath format): {col.get('jsonPath')}"
        )
        columns.append(
            column(
                str(col.get("name") or ""),
                str(col.get("type") or ""),
                str(description),
                format_=str(col.get("format") or ""),
                priority=int(col.get("priority") or 0),
            )
        )

    def row(obj: Obj, now: float) -> Cells:
        md = obj.get("metadata") or {}
        cells: Cells = [md.get("name", "")]
        for kind, steps in paths:
            found = jsonpath.find(steps, obj) if steps else []
            if not found:
                cells.append(None)
            elif kind == "string":
                cells.append(jsonpath.text(found[0]))
            else:
                cells.append(_cell(kind, found[0], now))
        return cells

    return Printer(tuple(columns), row)
