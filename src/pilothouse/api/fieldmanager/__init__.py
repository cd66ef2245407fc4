"""Server-side apply and ``metadata.managedFields``, as Kubernetes 1.32 does them.

A Python rendering of ``sigs.k8s.io/structured-merge-diff`` (v4.4) and the API
server's field manager (``k8s.io/apimachinery/pkg/util/managedfields``): which
manager owns which field, how an applied configuration merges into the live
object, when applying conflicts, and what an applier's omissions remove.

* :func:`update_managed_fields` — on every create, update and non-apply patch;
* :func:`apply` — on every apply patch (``application/apply-patch+yaml``);
* :func:`default_manager` — the manager of a request without ``fieldManager``;
* :class:`ApplyConflict` / :class:`ApplyError` — what apply refuses, with the
  ``metav1.Status`` upstream answers.

Modules: :mod:`.fieldpath` (field sets and FieldsV1), :mod:`.gotext` (Go's
spelling of values), :mod:`.types` (schemas), :mod:`.typed` (walks),
:mod:`.validation` (applied objects against schemas), :mod:`.merge` (merging and
pruning), :mod:`.updater` (ownership), :mod:`.managed` (the managedFields list),
:mod:`.kinds` (per-kind facts), :mod:`.lastapplied` (kubectl's client-side
annotation), :mod:`.manager` (the entry points).

Everything here is pure; nothing does I/O (bottom ``api`` layer).
"""

from __future__ import annotations

from pilothouse.api.fieldmanager.conflict import ApplyConflict, ApplyError
from pilothouse.api.fieldmanager.manager import apply, default_manager, update_managed_fields

__all__ = [
    "ApplyConflict",
    "ApplyError",
    "apply",
    "default_manager",
    "update_managed_fields",
]
