"""Object history: every stored revision of a key, kept for a retention window.

Kubernetes keeps only an object's latest version; a store that is a log of
revisions can answer "what did this look like an hour ago" by not compacting
that log away at once. A backend that keeps history implements
:class:`HistoryStore`: ``history(key)`` gives every revision of the key still
retained (the value written, whether it was a delete, when, and who wrote it).

Who wrote a revision is known only to the API server, which handles the request;
the store learns it through :func:`writing_as`, a context manager the registry
puts around each store write. It sets a :mod:`contextvars` variable, so the
origin follows the request's own task and never leaks into a concurrent one.
A write with no origin (an internal migration, a test) is kept with an empty one.

The retention window is wall-clock time: compaction never removes a revision
written less than ``retention`` seconds ago, so old watches, lists at a
revision and history keep working that long.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pilothouse.storage.interface import KeyValue

DEFAULT_RETENTION = 24 * 3600.0  # seconds


@dataclass(frozen=True, slots=True)
class WriteOrigin:
    """Who made a write: the user, the field manager and the operation
    (``Create``, ``Update``, ``Apply``, ``Patch``, ``Delete``), with the subresource."""

    user: str = ""
    manager: str = ""
    operation: str = ""
    subresource: str = ""


@dataclass(frozen=True, slots=True)
class Revision:
    """One stored revision of a key. For a delete, ``kv.value`` is the last value and
    ``kv.mod_revision`` the revision of the deletion."""

    kv: KeyValue
    deleted: bool
    time: float  # seconds since the epoch, when the write was committed (0: unknown)
    origin: WriteOrigin


@runtime_checkable
class HistoryStore(Protocol):
    """A store that can list the retained revisions of one key."""

    @property
    def history_retention(self) -> float:
        """Seconds of history kept (0: history is off, only the latest version)."""

    async def history(self, key: str) -> list[Revision]:
        """Every retained revision of ``key`` (live or deleted), oldest first."""


_origin: contextvars.ContextVar[WriteOrigin | None] = contextvars.ContextVar(
    "pilothouse_write_origin", default=None
)


def current_origin() -> WriteOrigin | None:
    """The origin of the write being made in this task, if the caller named one."""
    return _origin.get()


@contextlib.contextmanager
def writing_as(origin: WriteOrigin) -> Iterator[None]:
    """Attribute the store writes made inside this block to ``origin``."""
    token = _origin.set(origin)
    try:
        yield
    finally:
        _origin.reset(token)
