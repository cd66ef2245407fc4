"""Watches of the etcd store: the recent-history ring and the consumers' streams.

The store keeps ONE etcd watch (its feeder) over all of its keys and fans the
events out to local streams, so every consumer sees them in the same order and
before the write that caused them is answered. The feeder also appends each
event to a bounded :class:`Ring`; a stream that starts at a revision the ring
still covers takes its backlog from there. A stream that starts further back
reads the history from etcd with a watch of its own (:meth:`LocalStream._history`)
until that history reaches the ring, then switches to the ring and the feeder,
without a gap or a duplicate: it drops anything at or before its position.

Everything runs on the event loop; a stream is fed synchronously by the store
(``push``) and read by one consumer.
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc  # type: ignore[import-untyped]

from pilothouse.storage import interface as storage
from pilothouse.storage.etcd import client as etcd_client
from pilothouse.storage.etcd import proto

if TYPE_CHECKING:
    from pilothouse.storage.etcd.store import EtcdStore


def convert(event: Any, strip: int) -> storage.Event:
    """A store event from an etcd ``mvccpb.Event`` (keys lose the store's prefix)."""
    kv = event.kv
    key = kv.key[strip:].decode()
    has_prev = event.HasField("prev_kv")
    prev = (
        storage.KeyValue(
            key, event.prev_kv.value, event.prev_kv.create_revision, event.prev_kv.mod_revision
        )
        if has_prev
        else None
    )
    if event.type == proto.DELETE:
        if prev is None:
            # etcd no longer has the deleted value: the history is gone.
            raise storage.CompactedError(kv.mod_revision, 0)
        return storage.Event(
            storage.EventType.DELETE,
            storage.KeyValue(key, prev.value, prev.create_revision, kv.mod_revision),
            prev,
        )
    new = storage.KeyValue(key, kv.value, kv.create_revision, kv.mod_revision)
    if kv.create_revision == kv.mod_revision:
        return storage.Event(storage.EventType.CREATE, new, None)
    if prev is None:
        raise storage.CompactedError(kv.mod_revision, 0)
    return storage.Event(storage.EventType.UPDATE, new, prev)


class Ring:
    """The feeder's most recent events; every event after ``floor`` is here."""

    def __init__(self, size: int, floor: int) -> None:
        self.size = size
        self.floor = floor
        self.events: collections.deque[storage.Event] = collections.deque()

    def extend(self, events: list[storage.Event]) -> None:
        self.events.extend(events)
        while len(self.events) > self.size:
            self.floor = self.events.popleft().revision

    def reset(self, floor: int) -> None:
        self.events.clear()
        self.floor = floor

    def after(self, revision: int, prefix: str) -> list[storage.Event]:
        return [e for e in self.events if e.revision > revision and e.kv.key.startswith(prefix)]


class LocalStream:
    """One consumer's watch (see the module docstring). Ends with StoreClosedError
    when the store closes; :meth:`aclose` ends it early."""

    def __init__(self, store: EtcdStore, prefix: str, *, after: int) -> None:
        self.prefix = prefix
        self._store = store
        self._position = after
        self._pending: list[storage.Event] = []
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._done = False
        self._history: Any = None  # the etcd watch call while reading old history
        self._history_endpoint = ""
        if after >= store.ring.floor:
            self._attach()
        else:
            self._history = True  # opened lazily by the first __anext__

    def _attach(self) -> None:
        """Follow the feeder from ``_position``: the ring's backlog, then what is pushed."""
        self._history = None
        self._pending = self._store.ring.after(self._position, self.prefix)
        self._store.streams.add(self)

    def __aiter__(self) -> AsyncIterator[list[storage.Event]]:
        return self

    async def __anext__(self) -> list[storage.Event]:
        while True:
            if self._done:
                raise StopAsyncIteration
            if self._history is not None:
                batch = await self._read_history()
                if batch:
                    return batch
                continue
            if self._pending:
                batch, self._pending = self._pending, []
                self._position = batch[-1].revision
                return batch
            if self._error is not None:
                error, self._done = self._error, True
                raise error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def push(self, events: list[storage.Event]) -> None:
        if self._done or self._history is not None:
            return
        position, prefix = self._position, self.prefix
        fresh = [e for e in events if e.revision > position and e.kv.key.startswith(prefix)]
        if fresh:
            self._pending.extend(fresh)
            self._wake()

    def end(self, error: BaseException) -> None:
        """Hand out what is buffered, then raise ``error``."""
        self._error = error
        if self._history is not None:
            self._stop_history()
            self._pending = []
        self._wake()

    async def aclose(self) -> None:
        self._done = True
        self._pending = []
        self._stop_history()
        self._store.streams.discard(self)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- old history, read from etcd -------------------------------------------------

    def _stop_history(self) -> None:
        call, self._history = self._history, None
        if call is not None and call is not True:
            call.cancel()

    async def _read_history(self) -> list[storage.Event]:
        store = self._store
        if self._error is not None:
            error, self._done = self._error, True
            raise error
        if self._history is True:
            call, self._history_endpoint = store.client.watch_call()
            self._history = call
            lo, hi = store.data_range()
            await call.write(
                proto.WatchRequest(
                    create_request=proto.WatchCreateRequest(
                        key=lo, range_end=hi, start_revision=self._position + 1, prev_kv=True
                    )
                )
            )
        call = self._history
        try:
            response = await call.read()
        except grpc.aio.AioRpcError as exc:
            self._stop_history()
            self._done = True
            raise etcd_client.translate(exc, self._history_endpoint) from None
        if response is grpc.aio.EOF:
            self._stop_history()
            self._done = True
            raise storage.StoreUnavailableError("etcd closed a watch stream")
        if response.canceled:
            self._stop_history()
            self._done = True
            if response.compact_revision:
                raise storage.CompactedError(self._position, response.compact_revision - 1)
            raise storage.StoreError(f"etcd cancelled a watch: {response.cancel_reason}")
        if not response.events:
            return []
        strip = len(store.key_prefix)
        try:
            events = [convert(e, strip) for e in response.events]
        except storage.CompactedError:
            self._stop_history()
            self._done = True
            raise
        last = events[-1].revision
        batch = [e for e in events if e.kv.key.startswith(self.prefix)]
        self._position = last
        if store.ring.floor <= last:
            # Everything after ``last`` is in the ring (or yet to be pushed).
            self._stop_history()
            self._attach()
        return batch


def new_registry() -> weakref.WeakSet[LocalStream]:
    return weakref.WeakSet()
