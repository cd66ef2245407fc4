"""An in-memory store for unit tests and simulations (never the default).

Everything happens on the event loop, so every write is atomic with respect to
every other; watchers are fed synchronously before a write returns, which keeps
the interface's ordering promise trivially. History is kept as a list of events
since the last compaction; a list at an older revision rolls the live state back
through that history.
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
from collections.abc import AsyncGenerator

from pilothouse.storage.interface import (
    CompactedError,
    Event,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionMismatchError,
    StoreClosedError,
    prefix_end,
)


class _Watcher:
    __slots__ = ("prefix", "queue")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.queue: asyncio.Queue[list[Event] | None] = asyncio.Queue()


class MemoryStore:
    """A :class:`~pilothouse.storage.interface.Store` kept in dicts."""

    def __init__(self) -> None:
        self._live: dict[str, KeyValue] = {}
        self._keys: list[str] = []  # sorted live keys
        self._events: list[Event] = []  # history since the compacted revision
        self._revision = 0
        self._compacted = 0
        self._watchers: list[_Watcher] = []
        self._closed = False

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._closed = True
        for w in self._watchers:
            w.queue.put_nowait(None)

    def current_revision(self) -> int:
        return self._revision

    def compacted_revision(self) -> int:
        return self._compacted

    async def get(self, key: str) -> KeyValue | None:
        self._check_open()
        return self._live.get(key)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("store is closed")

    def _emit(self, event: Event) -> int:
        self._events.append(event)
        for w in self._watchers:
            if event.kv.key.startswith(w.prefix):
                w.queue.put_nowait([event])
        return event.revision

    async def create(self, key: str, value: bytes) -> int:
        self._check_open()
        if key in self._live:
            raise KeyExistsError(key)
        self._revision += 1
        kv = KeyValue(key, value, self._revision, self._revision)
        self._live[key] = kv
        bisect.insort(self._keys, key)
        return self._emit(Event(EventType.CREATE, kv, None))

    def _current(self, key: str, if_revision: int) -> KeyValue:
        prev = self._live.get(key)
        if prev is None:
            raise KeyNotFoundError(key)
        if if_revision and prev.mod_revision != if_revision:
            raise RevisionMismatchError(key, prev)
        return prev

    async def update(self, key: str, value: bytes, *, if_revision: int) -> int:
        self._check_open()
        prev = self._current(key, if_revision)
        self._revision += 1
        kv = KeyValue(key, value, prev.create_revision, self._revision)
        self._live[key] = kv
        return self._emit(Event(EventType.UPDATE, kv, prev))

    async def delete(self, key: str, *, if_revision: int = 0) -> KeyValue:
        self._check_open()
        prev = self._current(key, if_revision)
        self._revision += 1
        del self._live[key]
        del self._keys[bisect.bisect_left(self._keys, key)]
        kv = KeyValue(key, prev.value, prev.create_revision, self._revision)
        self._emit(Event(EventType.DELETE, kv, prev))
        return kv

    def _check_revision(self, revision: int) -> None:
        if revision and revision < self._compacted:
            raise CompactedError(revision, self._compacted)
        if revision > self._revision:
            raise FutureRevisionError(revision, self._revision)

    async def list(
        self,
        prefix: str,
        *,
        at_revision: int = 0,
        limit: int = 0,
        start_key: str = "",
    ) -> ListResult:
        self._check_open()
        self._check_revision(at_revision)
        revision = at_revision or self._revision
        lo = max(prefix, start_key)
        # The empty prefix has no end: every key is under it.
        hi = prefix_end(prefix) if prefix else None
        if revision == self._revision:
            start = bisect.bisect_left(self._keys, lo)
            end = bisect.bisect_left(self._keys, hi) if hi is not None else len(self._keys)
            keys = self._keys[start:end]
            items = [self._live[k] for k in keys]
        else:
            state = {k: v for k, v in self._live.items() if lo <= k and (hi is None or k < hi)}
            for event in reversed(self._events):
                if event.revision <= revision:
                    break
                key = event.kv.key
                if key < lo or (hi is not None and key >= hi):
                    continue
                if event.type is EventType.CREATE:
                    state.pop(key, None)
                elif event.prev is not None:
                    state[key] = event.prev
            items = [state[k] for k in sorted(state)]
        if limit and len(items) > limit:
            return ListResult(items[:limit], revision, True, len(items) - limit)
        return ListResult(items, revision, False, 0)

    def watch(
        self, prefix: str, *, after_revision: int
    ) -> AsyncGenerator[builtins.list[Event], None]:
        self._check_open()
        # Unlike a list's, an after_revision of 0 means "from the beginning", which
        # compaction may have removed.
        if after_revision < self._compacted:
            raise CompactedError(after_revision, self._compacted)
        self._check_revision(after_revision)
        backlog = [
            e for e in self._events if e.revision > after_revision and e.kv.key.startswith(prefix)
        ]
        watcher = _Watcher(prefix)
        self._watchers.append(watcher)
        return self._iterate(watcher, backlog)

    async def _iterate(
        self, watcher: _Watcher, backlog: builtins.list[Event]
    ) -> AsyncGenerator[builtins.list[Event], None]:
        try:
            if backlog:
                yield backlog
            while True:
                batch = await watcher.queue.get()
                if batch is None:
                    raise StoreClosedError("store is closed")
                yield batch
        finally:
            self._watchers.remove(watcher)

    async def compact(self, revision: int) -> int:
        self._check_open()
        revision = min(revision, self._revision)
        if revision <= self._compacted:
            return self._compacted
        self._events = [e for e in self._events if e.revision > revision]
        self._compacted = revision
        return self._compacted
