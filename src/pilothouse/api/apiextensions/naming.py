"""Which names a CRD may take, and the conditions that report it.

Upstream's naming controller (``pkg/controller/status/naming_controller.go``) accepts
a CRD's names unless another CRD of the same group already uses them: the plural,
the singular, a short name or the kind (``"crontabs" is already in use``, reason
``PluralConflict``, ``SingularConflict``, ``ShortNamesConflict``, ``KindConflict``,
``ListKindConflict``). Names already accepted stay accepted. :func:`reconcile` sets
``status.acceptedNames`` and the ``NamesAccepted`` and ``Established`` conditions of
one CRD given the others.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pilothouse.api.apiextensions import crd as crds
from pilothouse.api.meta import Obj


def _used(others: Iterable[Obj], group: str) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {
        "plural": set(),
        "singular": set(),
        "short": set(),
        "kind": set(),
        "listKind": set(),
    }
    for other in others:
        if crds.spec(other).get("group") != group:
            continue
        names = crds.accepted_names(other)
        used["plural"].add(str(names.get("plural") or ""))
        used["singular"].add(str(names.get("singular") or ""))
        used["short"].update(str(s) for s in names.get("shortNames") or ())
        used["kind"].add(str(names.get("kind") or ""))
        used["listKind"].add(str(names.get("listKind") or ""))
    for values in used.values():
        values.discard("")
    return used


def accepted(crd: Obj, others: Iterable[Obj]) -> tuple[dict[str, Any], str, str]:
    """(accepted names, conflict reason, message): reason "" when every name is free.

    As upstream, every name is checked and the last conflict found is the one
    reported; a name already accepted stays accepted."""
    requested = crds.names(crd)
    previous = crds.accepted_names(crd)
    used = _used(others, str(crds.spec(crd).get("group") or ""))
    taken_resources = used["plural"] | used["singular"] | used["short"]
    taken_kinds = used["kind"] | used["listKind"]
    out = dict(previous)
    reason = message = ""

    def free(key: str, value: Any, taken: set[str]) -> bool:
        return value == previous.get(key) or value not in taken

    for key, label in (("plural", "PluralConflict"), ("singular", "SingularConflict")):
        value = requested.get(key)
        if free(key, value, taken_resources):
            out[key] = value
        else:
            reason, message = label, f'"{value}" is already in use'
    shorts = list(requested.get("shortNames") or ())
    conflicting = [
        s for s in shorts if s not in (previous.get("shortNames") or ()) and s in taken_resources
    ]
    if conflicting:
        reason, message = "ShortNamesConflict", f'"{conflicting[0]}" is already in use'
    elif shorts:
        out["shortNames"] = shorts
    else:
        out.pop("shortNames", None)
    for key, label in (("kind", "KindConflict"), ("listKind", "ListKindConflict")):
        value = requested.get(key)
        if free(key, value, taken_kinds):
            out[key] = value
        else:
            reason, message = label, f'"{value}" is already in use'
    categories = list(requested.get("categories") or ())
    if categories:
        out["categories"] = categories
    else:
        out.pop("categories", None)
    return out, reason, message


def reconcile(crd: Obj, others: Iterable[Obj]) -> bool:
    """Set accepted names and the NamesAccepted/Established conditions of ``crd``
    (in place); returns whether its status changed."""
    names, reason, message = accepted(crd, others)
    status = crd.setdefault("status", {})
    changed = status.get("acceptedNames") != names
    status["acceptedNames"] = names
    if reason:
        changed |= crds.set_condition(crd, crds.NAMES_ACCEPTED, "False", reason, message)
    else:
        changed |= crds.set_condition(
            crd, crds.NAMES_ACCEPTED, "True", "NoConflicts", "no conflicts found"
        )
    if not reason and names.get("plural") and not crds.is_true(crd, crds.ESTABLISHED):
        changed |= crds.set_condition(
            crd,
            crds.ESTABLISHED,
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
        )
    elif reason and not crds.is_true(crd, crds.ESTABLISHED):
        changed |= crds.set_condition(
            crd, crds.ESTABLISHED, "False", "NotAccepted", "not all names are accepted"
        )
    status.setdefault(
        "storedVersions", [crds.storage_version(crd)] if crds.storage_version(crd) else []
    )
    return bool(changed)
