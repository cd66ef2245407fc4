"""Who made a write, for the store's object history (:mod:`pilothouse.storage.history`).

The authentication middleware notes, for each write request, the field manager the
request names (``?fieldManager=``, else upstream's default from the User-Agent) and
whether it is a server-side apply; the registry then asks :func:`origin` for each
store write the request makes. The user is the request's (set by the same
middleware). Both live in :mod:`contextvars` variables, so they follow the request's
own task and never leak into a concurrent request. A write made outside any request
(none today) falls back to the managedFields entry the write touched.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any

from pilothouse.api import fieldmanager
from pilothouse.api.meta import Obj
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.authz import attributes
from pilothouse.storage import history

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"

# (field manager, operation) of the write request being served.
_request: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "pilothouse_write_request", default=None
)


def begin_request(
    method: str, query: Mapping[str, str], headers: Mapping[str, str]
) -> contextvars.Token[tuple[str, str] | None]:
    """Note a request's field manager and operation; undo with :func:`end_request`."""
    manager = query.get("fieldManager", "") or fieldmanager.default_manager(
        headers.get("User-Agent", "")
    )
    if method == "DELETE":
        operation = "Delete"
    elif method == "PATCH" and headers.get("Content-Type", "").startswith(APPLY_CONTENT_TYPE):
        operation = "Apply"
    else:
        operation = "Update"  # upstream's managedFields name creates and patches so too
    return _request.set((manager, operation))


def end_request(token: contextvars.Token[tuple[str, str] | None]) -> None:
    _request.reset(token)


def _entries(obj: Obj | None) -> list[Any]:
    if obj is None:
        return []
    return list((obj.get("metadata") or {}).get("managedFields") or [])


def origin(old: Obj | None, new: Obj | None, *, deleting: bool = False) -> history.WriteOrigin:
    """The origin of a write that turns ``old`` into ``new`` (None: absent)."""
    user = user_module.current()
    name = user.name if user else ""
    attrs = attributes.current()
    subresource = attrs.subresource if attrs is not None else ""
    request = _request.get()
    if request is not None:
        manager, operation = request
        if deleting:
            operation = "Delete"  # also when the last finalizer's removal deletes it
        return history.WriteOrigin(name, manager, operation, subresource)
    if not deleting:
        before = _entries(old)
        for entry in _entries(new):
            if isinstance(entry, dict) and entry not in before:
                return history.WriteOrigin(
                    name,
                    str(entry.get("manager") or ""),
                    str(entry.get("operation") or ""),
                    str(entry.get("subresource") or subresource),
                )
    return history.WriteOrigin(name, "", "Delete" if deleting else "Update", subresource)
