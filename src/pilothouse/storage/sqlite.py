"""The durable SQLite store: the embedded default backend for a single server.

What runs where:

* The event loop runs the public API, the watch streams and two supervised
  children: the periodic compaction (restarted with back-off if it fails) and a
  watchdog on the writer thread (FATAL: a store that can no longer write takes
  the process down, so its service manager restarts it).
* One writer thread (:mod:`~pilothouse.storage.sqlite_writer`) owns the only
  write connection and applies everything queued in one transaction per batch;
  compaction runs there too, in small chunks between batches.
* A few reader threads (:mod:`~pilothouse.storage.sqlite_reader`) serve get,
  list and watch catch-up on their own connections, never queued behind writes.

Ordering: after each commit the writer hands (revision, events, results) to the
loop, where :meth:`SQLiteStore._on_commit` first advances the current revision,
then pushes the events into every matching watch stream, and only then answers
the callers. A read may see a commit whose events are not delivered yet; it then
waits for that delivery before answering, so nothing a read returns is newer
than what watchers have been given, and a list's revision is always a valid
point to start a watch from.
"""

from __future__ import annotations

import asyncio
import builtins
import collections.abc
import functools
import logging
import pathlib
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from pilothouse import supervisor as supervision
from pilothouse.storage import history, sqlite_reader, sqlite_writer
from pilothouse.storage.interface import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyValue,
    ListResult,
    StoreClosedError,
    StoreError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# Spelled out here because inside SQLiteStore ``list`` names the method.
EventBatch = list[Event]
ReadEvents = Callable[[str, int, int], Awaitable[tuple[EventBatch, int]]]


class WatchStream(collections.abc.AsyncIterator[list[Event]]):
    """One watch: the backlog read from the log in chunks, then the events the store
    pushes as writes commit (buffered from the moment the watch was created, so the
    two meet without a gap or a duplicate). Ends with StoreClosedError when the store
    closes; :meth:`aclose` ends it early. A consumer that falls behind only grows
    the buffer."""

    __slots__ = (
        "__weakref__",
        "_closed",
        "_done",
        "_live_from",
        "_pending",
        "_position",
        "_read_events",
        "_registry",
        "_waiter",
        "prefix",
    )

    def __init__(
        self,
        prefix: str,
        *,
        after: int,
        live_from: int,
        read_events: ReadEvents,
        registry: weakref.WeakSet[WatchStream],
    ) -> None:
        self.prefix = prefix
        self._position = after
        self._live_from = live_from
        self._read_events = read_events
        self._registry = registry
        self._pending: list[Event] = []
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._done = False
        registry.add(self)

    async def __anext__(self) -> list[Event]:
        if self._done:
            raise StopAsyncIteration
        while self._position < self._live_from:
            try:
                events, reached = await self._read_events(
                    self.prefix, self._position, self._live_from
                )
            except StoreError:
                self._finish()
                raise
            self._position = reached
            if events:
                return events
        while not self._pending:
            if self._done:
                raise StopAsyncIteration
            if self._closed:
                self._finish()
                raise StoreClosedError("store is closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        batch, self._pending = self._pending, []
        return batch

    async def aclose(self) -> None:
        self._finish()

    def take_ready(self) -> list[Event]:
        """What :meth:`__anext__` would return next, taken now without waiting: the
        events delivered so far. Empty while the stream still reads the history before
        them (they must not be taken out of order) or when nothing is pending."""
        if self._done or self._position < self._live_from or not self._pending:
            return []
        batch, self._pending = self._pending, []
        return batch

    def give_back(self, batch: list[Event]) -> None:
        """Put back, in front, what :meth:`take_ready` took and could not be used."""
        if not self._done:
            self._pending[:0] = batch

    def end_now(self) -> None:
        self._finish()

    def push(self, events: list[Event]) -> None:
        if not self._done:
            self._pending.extend(events)
            self._wake()

    def end(self) -> None:
        """The store closed: hand out what is buffered, then raise StoreClosedError."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _finish(self) -> None:
        self._done = True
        self._pending = []
        self._registry.discard(self)
        self._wake()


class SQLiteStore:
    """A :class:`~pilothouse.storage.interface.Store` in one SQLite file (WAL, durable
    commits, batched by a single writer thread).

    Options: ``compact_interval`` seconds between background compactions (0: none),
    ``max_batch`` writes per transaction, ``compact_chunk`` revisions scanned per
    compaction transaction, ``watch_chunk`` rows per catch-up read, ``reader_threads``
    and ``checkpoint_after`` (rows a compaction must remove before the WAL is
    truncated), ``history_retention`` seconds of object history to keep (0: none;
    see :mod:`~pilothouse.storage.history`). A write whose caller is cancelled may
    still be applied. The background children run on ``supervisor`` (the API
    server's), or on a supervisor of the store's own.
    """

    def __init__(
        self,
        path: pathlib.Path,
        *,
        compact_interval: float = 300.0,
        max_batch: int = 1000,
        compact_chunk: int = 500,
        watch_chunk: int = 1000,
        reader_threads: int = 2,
        checkpoint_after: int = 10_000,
        history_retention: float = 0.0,
        supervisor: supervision.Supervisor | None = None,
    ) -> None:
        self.path = path
        self._retention = max(0.0, history_retention)
        self.supervisor = supervisor or supervision.Supervisor(f"sqlite:{path.name}")
        self._own_supervisor = supervisor is None
        self._compact_interval = compact_interval
        self._max_batch = max_batch
        self._compact_chunk = compact_chunk
        self._watch_chunk = watch_chunk
        self._reader_threads = reader_threads
        self._checkpoint_after = checkpoint_after
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: sqlite_writer.Writer | None = None
        self._readers: sqlite_reader.Readers | None = None
        self._compact_lock = asyncio.Lock()
        self._streams: weakref.WeakSet[WatchStream] = weakref.WeakSet()
        self._visibility_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._revision = 0
        self._compacted = 0
        self._compact_progress = 0
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        if self._writer is not None or self._closed:
            raise RuntimeError("SQLiteStore.start() is called once, before use")
        loop = self._loop = asyncio.get_running_loop()
        writer = sqlite_writer.Writer(
            self.path,
            loop=loop,
            on_commit=self._on_commit,
            on_job_done=sqlite_writer.settle,
            max_batch=self._max_batch,
            keep_history=self._retention > 0,
        )
        state = await writer.start()
        self._writer = writer
        self._revision = state.revision
        self._compacted = state.compacted
        self._compact_progress = state.compact_progress
        self._readers = sqlite_reader.Readers(self.path, threads=self._reader_threads)
        self.supervisor.start("store-writer", self._watch_writer, policy=supervision.Policy.FATAL)
        self.supervisor.start(
            "store-compactor",
            self._compact_periodically,
            # Without an interval it runs once (to finish an interrupted compaction).
            policy=(
                supervision.Policy.RESTART
                if self._compact_interval > 0
                else supervision.Policy.TRANSIENT
            ),
        )

    async def _watch_writer(self) -> None:
        """Fail (FATAL) if the writer thread ends while the store is open."""
        assert self._writer is not None
        await self._writer.wait_stopped()
        if not self._closed:
            raise StoreError(f"the writer of {self.path} stopped; no write can be stored")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.supervisor.stop_child("store-compactor")
        await self.supervisor.stop_child("store-writer")
        if self._own_supervisor:
            await self.supervisor.stop()
        if self._writer is not None:
            await self._writer.stop()  # delivers every write queued before this point
        for stream in list(self._streams):
            stream.end()
        for _, waiter in self._visibility_waiters:
            sqlite_writer.settle(waiter, None, None)
        self._visibility_waiters = []
        if self._readers is not None:
            await asyncio.to_thread(self._readers.close)

    # -- state ---------------------------------------------------------------------

    def current_revision(self) -> int:
        return self._revision

    def compacted_revision(self) -> int:
        return self._compacted

    @property
    def commits(self) -> int:
        """Write transactions committed since start (each may hold many writes)."""
        return self._writer.commits if self._writer else 0

    @property
    def writes(self) -> int:
        """Writes (log rows) committed since start."""
        return self._writer.writes if self._writer else 0

    def _live_writer(self) -> sqlite_writer.Writer:
        if self._closed:
            raise StoreClosedError("store is closed")
        if self._writer is None:
            raise RuntimeError("SQLiteStore used before start()")
        return self._writer

    def _live_readers(self) -> sqlite_reader.Readers:
        if self._closed:
            raise StoreClosedError("store is closed")
        if self._readers is None:
            raise RuntimeError("SQLiteStore used before start()")
        return self._readers

    def _check_revision(self, revision: int) -> None:
        if revision and revision < self._compacted:
            raise CompactedError(revision, self._compacted)
        if revision > self._revision:
            raise FutureRevisionError(revision, self._revision)

    # -- writes --------------------------------------------------------------------

    def _submit(self, kind: int, key: str, value: bytes, if_revision: int) -> asyncio.Future[Any]:
        writer = self._live_writer()
        assert self._loop is not None
        future = self._loop.create_future()
        origin = history.current_origin() if self._retention else None
        writer.submit(sqlite_writer.Op(kind, key, value, if_revision, future, origin))
        return future

    async def create(self, key: str, value: bytes) -> int:
        return cast(int, await self._submit(sqlite_writer.CREATE, key, value, 0))

    async def update(self, key: str, value: bytes, *, if_revision: int) -> int:
        return cast(int, await self._submit(sqlite_writer.UPDATE, key, value, if_revision))

    async def delete(self, key: str, *, if_revision: int = 0) -> KeyValue:
        return cast(KeyValue, await self._submit(sqlite_writer.DELETE, key, b"", if_revision))

    def _on_commit(
        self, revision: int, events: list[Event], results: list[sqlite_writer.Result]
    ) -> None:
        if events:
            self._revision = revision
            self._deliver(events)
            if self._visibility_waiters:
                self._wake_readers()
        for future, result, error in results:
            sqlite_writer.settle(future, result, error)

    def _deliver(self, events: list[Event]) -> None:
        by_prefix: dict[str, list[Event]] = {}
        for stream in self._streams:
            prefix = stream.prefix
            batch = by_prefix.get(prefix)
            if batch is None:
                batch = [e for e in events if e.kv.key.startswith(prefix)] if prefix else events
                by_prefix[prefix] = batch
            if batch:
                stream.push(batch)

    # -- reads ---------------------------------------------------------------------

    async def _until_visible(self, revision: int) -> None:
        """Wait until the events of ``revision`` (already committed) are delivered."""
        if revision <= self._revision or self._closed:
            return
        assert self._loop is not None
        waiter = self._loop.create_future()
        self._visibility_waiters.append((revision, waiter))
        await waiter

    def _wake_readers(self) -> None:
        waiting = []
        for revision, waiter in self._visibility_waiters:
            if revision <= self._revision:
                sqlite_writer.settle(waiter, None, None)
            else:
                waiting.append((revision, waiter))
        self._visibility_waiters = waiting

    async def get(self, key: str) -> KeyValue | None:
        revision, kv = await self._live_readers().run(sqlite_reader.read_get, key)
        await self._until_visible(revision)
        return kv

    async def list(
        self,
        prefix: str,
        *,
        at_revision: int = 0,
        limit: int = 0,
        start_key: str = "",
    ) -> ListResult:
        readers = self._live_readers()
        self._check_revision(at_revision)
        result = await readers.run(
            sqlite_reader.read_list,
            prefix=prefix,
            start_key=start_key,
            limit=limit,
            at_revision=at_revision,
        )
        await self._until_visible(result.revision)
        return result

    def watch(self, prefix: str, *, after_revision: int) -> WatchStream:
        self._live_readers()
        if after_revision < self._compacted:
            raise CompactedError(after_revision, self._compacted)
        if after_revision > self._revision:
            raise FutureRevisionError(after_revision, self._revision)
        return WatchStream(
            prefix,
            after=after_revision,
            live_from=self._revision,
            read_events=self._read_events,
            registry=self._streams,
        )

    async def _read_events(self, prefix: str, after: int, upto: int) -> tuple[EventBatch, int]:
        return await self._live_readers().run(
            sqlite_reader.read_events,
            prefix=prefix,
            after=after,
            upto=upto,
            limit=self._watch_chunk,
        )

    # -- history -------------------------------------------------------------------

    @property
    def history_retention(self) -> float:
        return self._retention

    async def history(self, key: str) -> builtins.list[history.Revision]:
        return await self._live_readers().run(sqlite_reader.read_history, key)

    async def _retained_from(self) -> int:
        """The newest revision older than the retention window: compaction may reach it."""
        cutoff = time.time() - self._retention
        return await self._live_readers().run(sqlite_reader.read_revision_at_time, cutoff)

    # -- compaction ----------------------------------------------------------------

    async def _run_job(self, run: Callable[[], T]) -> T:
        writer = self._live_writer()
        assert self._loop is not None
        future = self._loop.create_future()
        writer.submit(sqlite_writer.Job(run, future))
        return cast(T, await future)

    async def compact(self, revision: int) -> int:
        writer = self._live_writer()
        async with self._compact_lock:
            target = min(revision, self._revision)
            removed = 0
            # Also finishes a compaction that a crash interrupted.
            while target > self._compacted or self._compact_progress < self._compacted:
                step = await self._run_job(
                    functools.partial(writer.compact_step, target, chunk=self._compact_chunk)
                )
                self._compacted = max(self._compacted, step.compacted)
                self._compact_progress = step.progress
                removed += step.removed
            if removed >= self._checkpoint_after:
                await self._run_job(writer.checkpoint)
        return self._compacted

    async def _compact_periodically(self) -> None:
        """Like the API server's compactor: every interval, compact to the revision that
        was current at the previous tick, so clients get that long to catch up — and,
        while history is kept, never past a revision younger than the retention window."""
        previous = 0  # at start: only finish a compaction that a crash interrupted
        while True:
            try:
                target = previous
                if self._retention and target:
                    target = min(target, await self._retained_from())
                await self.compact(target)
            except StoreClosedError:
                return
            except Exception:
                log.exception("compaction of %s failed", self.path)
            if self._compact_interval <= 0:
                return
            previous = self._revision
            await asyncio.sleep(self._compact_interval)
