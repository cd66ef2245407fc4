"""List snapshots: paged lists served from the watch cache.

Paged lists (``limit``/``continue``) are served from list snapshots: a
resource's objects in key order as of one revision, a list of references made
for a first page and kept (a few per resource, for :data:`TTL`
seconds) so that every later page of that list costs a bisection and the page
itself, not a sort, a copy of the whole resource or a read of the store. A
snapshot serves every revision from the one it was taken at until the
resource's next change, so lists at different revisions with nothing changed
between them share one; it is dropped once the resource has changed a lot since
(:data:`STALE_CHANGES`), so it never pins many old versions. A continue
token whose snapshot is gone is served from the store's log.

A resource cache's :class:`Snapshots` are read and changed on the event loop only,
by the cache's feeder (every change ages them) and by list requests, never across
an await.
"""

from __future__ import annotations

import bisect
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pilothouse.storage import interface as storage

if TYPE_CHECKING:
    from pilothouse.apiserver.cacheentry import Entry

# How long a list snapshot serves continue pages after its last use, and how many
# each resource keeps (kubectl asks for the next page at once; a client that takes
# longer reads the rest from the store's log).
TTL = 60.0
PER_RESOURCE = 4
# A snapshot keeps the versions it holds alive after the cache has moved on; once this
# many changes (or an eighth of its size, if more) came after it, it is dropped (its
# continue tokens are then served from the store's log), so snapshots of a resource
# that changes fast cannot hold several copies of it.
STALE_CHANGES = 1000

_entry_key = operator.attrgetter("key")


@dataclass(slots=True, eq=False)
class Snapshot:
    """A resource's objects in key order, as they were from revision ``since`` up to
    (not including) ``until`` (None: still so)."""

    entries: list[Entry]
    since: int
    until: int | None
    used: float  # time.monotonic() of the last page served from it
    stale: int = 0  # changes to the resource since ``until``

    def covers(self, revision: int) -> bool:
        return self.since <= revision and (self.until is None or revision < self.until)

    def bounds(self, prefix: str, start_key: str) -> tuple[int, int]:
        """The index range of keys under ``prefix`` from ``start_key`` on."""
        lo = bisect.bisect_left(self.entries, max(prefix, start_key), key=_entry_key)
        hi = bisect.bisect_left(self.entries, storage.prefix_end(prefix), key=_entry_key)
        return lo, hi


class Snapshots:
    """The list snapshots of one resource cache, newest last."""

    def __init__(self) -> None:
        self._kept: list[Snapshot] = []

    def __len__(self) -> int:
        return len(self._kept)

    def clear(self) -> None:
        self._kept = []

    def current(self, changed: int, make: Callable[[], list[Entry]]) -> Snapshot:
        """The snapshot of the contents as they are (unchanged since revision
        ``changed``): the one kept, or a new one of what ``make`` gives."""
        now = time.monotonic()
        self._expire(now)
        for snap in self._kept:
            if snap.until is None:
                snap.used = now
                return snap
        snap = Snapshot(make(), changed, None, now)
        self._kept.append(snap)
        if len(self._kept) > PER_RESOURCE:
            self._kept.remove(min(self._kept, key=lambda s: s.used))
        return snap

    def at(self, revision: int) -> Snapshot | None:
        """The snapshot that holds the contents as of ``revision``, if one is kept."""
        now = time.monotonic()
        self._expire(now)
        for snap in self._kept:
            if snap.covers(revision):
                snap.used = now
                return snap
        return None

    def changed(self, revision: int) -> None:
        """The resource changed at ``revision``: the current snapshot stops being so,
        and those it has moved far from go."""
        if not self._kept:
            return
        dropped = False
        for snap in self._kept:
            if snap.until is None:
                snap.until = revision
            snap.stale += 1
            dropped |= snap.stale > _stale_limit(snap)
        if dropped:
            self._kept = [s for s in self._kept if s.stale <= _stale_limit(s)]

    def _expire(self, now: float) -> None:
        if self._kept:
            self._kept = [s for s in self._kept if now - s.used <= TTL]


def _stale_limit(snap: Snapshot) -> int:
    return max(STALE_CHANGES, len(snap.entries) // 8)
