"""One storage resource's cache: its objects, its recent events, its watchers.

A :class:`ResourceCache` holds the objects under one storage prefix (e.g.
``/registry/pods/``) in memory, their keys in order, list snapshots for paged lists
(:mod:`pilothouse.apiserver.listsnapshots`) and a bounded ring of recent events
(:data:`EVENT_WINDOW`) from which a watch can resume. A :class:`Watcher` is one
client's watch on it: a filter and a backlog the cache fills.

Everything here is changed on the event loop only, by the watch cache's feeder
(:mod:`pilothouse.apiserver.watchcache`), which applies an event and delivers it to
every watcher without awaiting; requests read its objects and snapshots between
their awaits, and a watch request awaits only its watcher's :meth:`Watcher.next_batch`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable

from sortedcontainers import SortedList

from pilothouse.apiserver import listsnapshots
from pilothouse.apiserver.cacheentry import DELETED, Entry, Filter, WatchEvent, filtered
from pilothouse.storage import interface as storage

# How many events each resource keeps for watches that resume from a past
# resourceVersion. Older resumes fall back to the store's log.
EVENT_WINDOW = 1000
# A watcher that falls this many events behind is closed; its client re-watches from
# the last resourceVersion it got (upstream closes an unresponsive watcher the same way).
WATCHER_BACKLOG_LIMIT = 20000


class Watcher:
    """One client's watch on one resource cache: a filter and a backlog."""

    def __init__(self, prefix: str, match: Filter | None) -> None:
        self.prefix = prefix
        self.match = match
        self.backlog: collections.deque[tuple[str, Entry]] = collections.deque()
        self.wakeup = asyncio.Event()
        self.overflowed = False
        self.closed = False
        self.limit = WATCHER_BACKLOG_LIMIT
        # Called once when the backlog overflows (the handler cuts a stuck connection).
        self.on_overflow: Callable[[], None] | None = None

    def deliver(self, event: WatchEvent) -> None:
        if self.closed or not event.entry.key.startswith(self.prefix):
            return
        out = filtered(event, self.match)
        if out is None:
            return
        if len(self.backlog) >= self.limit:
            self.overflowed = True
            self.closed = True
            if self.on_overflow is not None:
                self.on_overflow()
        else:
            self.backlog.append(out)
        self.wakeup.set()

    def close(self) -> None:
        self.closed = True
        self.wakeup.set()

    async def next_batch(self, timeout: float | None) -> list[tuple[str, Entry]]:
        """Wait for events (at most ``timeout`` seconds); [] on timeout or close."""
        if not self.backlog and not self.closed:
            self.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout)
        batch = list(self.backlog)
        self.backlog.clear()
        return batch


class ResourceCache:
    """Objects of one storage resource (e.g. ``/registry/pods/``) and recent events."""

    def __init__(self, prefix: str, start_revision: int) -> None:
        self.prefix = prefix
        self.objects: dict[str, Entry] = {}
        self._sorted: SortedList | None = None
        self.events: collections.deque[WatchEvent] = collections.deque()
        # Every event after this revision is in ``events``.
        self.floor = start_revision
        # The revision of the last change applied (or of the listing it was filled at).
        self.changed = start_revision
        self.snapshots = listsnapshots.Snapshots()
        self.watchers: set[Watcher] = set()
        # Keys changed while the cache was being filled at start_revision (see
        # WatchCache.add_prefix): the listing must not overwrite them.
        self.touched: set[str] | None = None

    def load(self, entry: Entry) -> None:
        self.objects[entry.key] = entry
        self._sorted = None
        self.snapshots.clear()

    def reset(self, revision: int) -> None:
        """Forget everything (a fresh listing at ``revision`` follows) and end every
        watch on it: its client resumes from its last resourceVersion."""
        for w in tuple(self.watchers):
            w.close()
        self.watchers.clear()
        self.objects = {}
        self._sorted = None
        self.events.clear()
        self.floor = revision
        self.changed = revision
        self.snapshots.clear()

    def apply(self, event: WatchEvent) -> None:
        key = event.entry.key
        if self.touched is not None:
            self.touched.add(key)
        # The key list stays sorted through adds and deletes: a SortedList's insert is
        # O(log n) (a flat list's insort moved half the keys each time: at 100,000
        # ConfigMaps a create's largest cost that grew with the store).
        if event.type == DELETED:
            if self.objects.pop(key, None) is not None and self._sorted is not None:
                self._sorted.discard(key)
        else:
            if key not in self.objects and self._sorted is not None:
                self._sorted.add(key)
            self.objects[key] = event.entry
        self.changed = event.revision
        self.snapshots.changed(event.revision)
        event.entry.windowed = True
        self.events.append(event)
        if len(self.events) > EVENT_WINDOW:
            oldest = self.events.popleft()
            self.floor = oldest.revision
            # No watcher registers for it any more (one that still has it in its
            # backlog encodes it again).
            oldest.entry.leave_window()
        for w in tuple(self.watchers):
            w.deliver(event)

    def sorted_keys(self) -> SortedList:
        if self._sorted is None:
            self._sorted = SortedList(self.objects)
        return self._sorted

    def snapshot(self, prefix: str, start_key: str = "") -> list[Entry]:
        """Objects under ``prefix`` in key order, from ``start_key`` on."""
        keys = self.sorted_keys()
        lo = keys.bisect_left(max(prefix, start_key))
        hi = keys.bisect_left(storage.prefix_end(prefix))
        objects = self.objects
        return [objects[k] for k in keys.islice(lo, hi)]

    def list_snapshot(self) -> listsnapshots.Snapshot:
        """A snapshot of the current contents (the one already taken, if nothing
        changed since)."""
        objects = self.objects
        return self.snapshots.current(
            self.changed, lambda: [objects[k] for k in self.sorted_keys()]
        )

    def snapshot_at(self, revision: int) -> listsnapshots.Snapshot | None:
        """The snapshot that holds the contents as of ``revision``, if one is kept."""
        return self.snapshots.at(revision)

    def watch(self, prefix: str, match: Filter | None, after_revision: int) -> Watcher | None:
        """Register a watcher for events after ``after_revision``.

        Returns None when that revision is older than the event window (the
        caller then watches the store's log instead)."""
        if after_revision < self.floor:
            return None
        watcher = Watcher(prefix, match)
        for event in self.events:
            if event.revision > after_revision:
                watcher.deliver(event)
        self.watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)
