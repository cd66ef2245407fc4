"""Assembling a ``meta.k8s.io/v1`` Table from a resource's objects.

One printer per kind, looked up by (group, kind); kinds without one get the
API server's default convertor (``Name`` and ``Created At``). Rows carry the
object as the request's ``includeObject`` asks: nothing, a
``PartialObjectMetadata`` (the default) or the whole object. Objects are
referenced, never copied: the caller serialises the table before anything can
change them.

Pure functions of their arguments; safe to call from any task.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pilothouse.api import errors
from pilothouse.api import resources as api_resources
from pilothouse.apiserver.table import (
    access,
    apps,
    autoscaling,
    batch,
    core,
    docs,
    events,
    extensions,
    other,
    pods,
    timefmt,
)
from pilothouse.apiserver.table.model import Cells, Object, Printer, column

PRINTERS: Mapping[tuple[str, str], Printer] = MappingProxyType(
    {
        **pods.PRINTERS,
        **core.PRINTERS,
        **events.PRINTERS,
        **apps.PRINTERS,
        **batch.PRINTERS,
        **other.PRINTERS,
        **autoscaling.PRINTERS,
        **access.PRINTERS,
        **extensions.PRINTERS,
    }
)
"""Printers by (API group, kind)."""

TABLE_API_VERSION = "meta.k8s.io/v1"
INCLUDE_OBJECT = ("None", "Metadata", "Object")


def _default_cells(obj: Object, now: float) -> Cells:
    meta = obj.get("metadata") or {}
    return [meta.get("name", ""), timefmt.rfc3339(meta.get("creationTimestamp"))]


DEFAULT = Printer(
    (
        column("Name", "string", docs.NAME, format_="name"),
        column("Created At", "date", docs.CREATION_TIMESTAMP),
    ),
    _default_cells,
)
"""The API server's default table convertor, for kinds without a printer."""


def printer_for(resource: api_resources.Resource) -> Printer:
    """The printer of a resource's kind, or the default convertor."""
    return PRINTERS.get((resource.group, resource.kind), DEFAULT)


def column_definitions(resource: api_resources.Resource) -> list[dict[str, Any]]:
    """The resource's column definitions, wide-only ones (priority 1) included."""
    return [dict(c) for c in printer_for(resource).columns]


def _partial_metadata(obj: Object) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": TABLE_API_VERSION,
        "metadata": obj.get("metadata") or {},
    }


def build_table(
    resource: api_resources.Resource,
    objects: list[dict[str, Any]],
    *,
    now: float,
    list_metadata: dict[str, Any],
    include_object: str = "Metadata",
    no_headers: bool = False,
    printer: Printer | None = None,
) -> dict[str, Any]:
    """A Table of ``objects`` (all of one resource) as upstream serves it.

    ``now`` is a unix timestamp (ages are relative to it); ``list_metadata``
    becomes the table's metadata (resourceVersion, continue, …).
    ``include_object`` is the ``includeObject`` option: ``None``, ``Metadata``
    (also for an empty value) or ``Object``. ``no_headers`` leaves out the
    column definitions, as upstream does for every watch event after the first.
    ``printer`` replaces the kind's own (custom resources bring theirs).
    """
    if include_object == "":
        include_object = "Metadata"
    if include_object not in INCLUDE_OBJECT:
        raise errors.bad_request(f'unrecognized includeObject value: "{include_object}"')
    if printer is None:
        printer = printer_for(resource)
    row_cells = printer.row
    row_conditions = printer.conditions
    rows: list[dict[str, Any]] = []
    for obj in objects:
        row: dict[str, Any] = {"cells": row_cells(obj, now)}
        if row_conditions is not None:
            conditions = row_conditions(obj)
            if conditions:
                row["conditions"] = conditions
        if include_object == "Metadata":
            row["object"] = _partial_metadata(obj)
        elif include_object == "Object":
            row["object"] = obj
        else:
            row["object"] = None
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": list_metadata,
        "columnDefinitions": None if no_headers else [dict(c) for c in printer.columns],
        # Upstream's default convertor leaves an empty slice nil: null.
        "rows": None if not rows and printer is DEFAULT else rows,
    }
