"""Table output for ``kubectl get``: the upstream columns of every kind.

``kubectl get`` asks for ``application/json;as=Table;v=v1;g=meta.k8s.io`` and
prints the cells it gets back, so the columns, their order and every cell's
text must be what Kubernetes 1.32's printers (``pkg/printers/internalversion``)
produce. The server always fills the wide-only (priority 1) columns; kubectl
shows them for ``-o wide``.

- :func:`build_table` turns a resource's objects into a ``meta.k8s.io/v1`` Table.
- :func:`column_definitions` gives a resource's columns.

Modules: ``assembly`` (the Table, the default convertor, the printer lookup),
``model`` (printer and column shapes), ``timefmt`` (ages), ``formatting``
(labels, selectors, containers), ``docs`` (column descriptions), and one module
per group of kinds: ``pods``, ``core``, ``events``, ``apps``, ``batch``,
``other``.
"""

from __future__ import annotations

from pilothouse.apiserver.table.assembly import build_table, column_definitions
from pilothouse.apiserver.table.model import Printer

__all__ = ["Printer", "build_table", "column_definitions"]
