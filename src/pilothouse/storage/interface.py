"""The revision-based store interface every backend implements.

The shape kine and etcd share: one global revision that increases with every
write; each key's value carries the revision that created it and the one that
last modified it. The API server turns the modification revision into the
object's ``resourceVersion``.

Concurrency contract for backends:

* Writes are linearizable: each write gets a revision greater than every write
  acknowledged before it started, and an acknowledged write is durable.
* ``watch`` yields every change to keys under a prefix, in revision order, with
  nothing skipped, starting after a given revision; a revision older than the
  compacted one raises :class:`CompactedError` (the API answers 410 Gone).
* Events of a write are delivered to watchers *before* the write's caller is
  answered, so a client that saw its write acknowledged and then reads through
  a watch-fed cache sees its own write.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol


class StoreError(Exception):
    """Base of the errors a store raises for a request it cannot honour."""


class KeyExistsError(StoreError):
    """``create`` of a key that already has a live value."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFoundError(StoreError):
    """``update``/``delete`` of a key that has no live value."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionMismatchError(StoreError):
    """``update``/``delete`` whose ``if_revision`` is not the key's current one."""

    def __init__(self, key: str, current: KeyValue) -> None:
        super().__init__(f"revision mismatch on {key}: now at {current.mod_revision}")
        self.key = key
        self.current = current


class CompactedError(StoreError):
    """A read or watch at a revision the store no longer retains."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"revision {requested} is compacted (oldest is {compacted})")
        self.requested = requested
        self.compacted = compacted


class FutureRevisionError(StoreError):
    """A read at a revision the store has not reached yet."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"revision {requested} is newer than the current {current}")
        self.requested = requested
        self.current = current


class StoreClosedError(StoreError):
    """The store was closed while a request was pending."""


class StoreUnavailableError(StoreError):
    """The backend cannot be reached (etcd down or without a leader); the API answers
    503 and the client may retry."""


class StoreTimeoutError(StoreError):
    """The backend did not answer in time; the request may or may not have been
    applied (the API answers 504, as upstream does for a timed-out request)."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


class EventType(Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Event:
    """One change. For DELETE, ``kv.value`` is the last value and ``kv.mod_revision``
    the revision of the deletion; ``prev`` is the value before the change (None on
    CREATE; always set on UPDATE and DELETE)."""

    type: EventType
    kv: KeyValue
    prev: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int  # the revision the list was read at
    more: bool  # True when ``limit`` cut the list short
    remaining: int  # how many matching keys follow the last item


def prefix_end(prefix: str) -> str:
    """The first key after every key that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class WatchStream(Protocol):
    """What ``watch`` returns: an async iterator of event batches, closed with ``aclose``."""

    def __aiter__(self) -> AsyncIterator[builtins.list[Event]]: ...

    def __anext__(self) -> Awaitable[builtins.list[Event]]: ...

    def aclose(self) -> Awaitable[None]: ...


class ReadyStream(WatchStream, Protocol):
    """A watch stream that can also hand out, without waiting, the events it has
    already been given (SQLite's: the store delivers a commit's events to its streams
    in the callback that settles the commit's writers). The watch cache applies those
    itself when a read needs them, instead of waiting for its feed's next turn."""

    def take_ready(self) -> builtins.list[Event]:
        """What the next ``__anext__`` would return, taken now; empty when nothing is
        pending or the stream still reads the history that comes before it."""
        ...

    def end_now(self) -> None:
        """End the stream at once: its consumer's next ``__anext__`` ends the iteration."""
        ...


class Store(Protocol):
    """A revision-based key-value store (see the module docstring for guarantees)."""

    async def start(self) -> None:
        """Open files, start background tasks. Called once before use."""

    async def close(self) -> None:
        """Finish pending writes, stop background tasks, release files."""

    def current_revision(self) -> int:
        """The revision of the last write whose events have been delivered."""

    def compacted_revision(self) -> int:
        """History at or before this revision may be gone (0: nothing compacted)."""

    async def get(self, key: str) -> KeyValue | None:
        """The live value of ``key``, or None."""

    async def create(self, key: str, value: bytes) -> int:
        """Create ``key``; raises KeyExistsError. Returns the new revision."""

    async def update(self, key: str, value: bytes, *, if_revision: int) -> int:
        """Replace ``key`` if its mod revision is ``if_revision`` (0: unconditionally).

        Raises KeyNotFoundError or RevisionMismatchError. Returns the new revision."""

    async def delete(self, key: str, *, if_revision: int = 0) -> KeyValue:
        """Delete ``key`` (conditionally, like update). Returns the deleted value
        with ``mod_revision`` set to the revision of the deletion."""

    async def list(
        self,
        prefix: str,
        *,
        at_revision: int = 0,
        limit: int = 0,
        start_key: str = "",
    ) -> ListResult:
        """Live keys under ``prefix`` in key order, as of ``at_revision`` (0: now),
        starting at ``start_key`` (inclusive), at most ``limit`` (0: all)."""

    def watch(self, prefix: str, *, after_revision: int) -> WatchStream:
        """Batches of events for keys under ``prefix`` with revision > ``after_revision``.

        Raises CompactedError at once (when called, not when iterated) if
        ``after_revision`` is older than the compacted revision, and
        FutureRevisionError if it is newer than the current one. The iterator ends
        only when the store closes (raising StoreClosedError) or the consumer
        stops iterating (``aclose``)."""

    async def compact(self, revision: int) -> int:
        """Drop history at or before ``revision`` that no live key needs.
        Returns the compacted revision now in effect."""
