"""The etcd store: the revision-based store interface over etcd v3.

How the interface maps onto etcd:

* Keys live under a prefix (``--datastore-prefix``, default none: the keys are
  ``/registry/…`` exactly as kube-apiserver writes them). A value's revision is
  etcd's mod revision; etcd's revision is global, so writes of other users of
  the same etcd take revisions too (ours stay increasing, not consecutive).
* Optimistic concurrency is a transaction comparing the key's create or mod
  revision; a failed comparison reads the key in the same transaction, to tell
  "missing" from "changed" and report the current value. One transaction per
  write, never several writes in one: etcd gives a transaction one revision, and
  objects sharing a resourceVersion break watch resumption (docs/DESIGN.md).
* One feeder watch (``progress_notify`` on) follows every key of ours; its
  events reach the consumers' streams and a ring of recent history, and a write
  is answered only once its own event has come back through it — the
  interface's promise that watchers see a write before its caller does.
  ``current_revision`` is how far the feeder has got; reads are pinned to that
  revision, so a read never shows what watchers have not been given, and a
  list's revision is always a valid point to start a watch from.
* Compaction is kube-apiserver's: a transaction on the version of
  ``compact_rev_key`` elects one compactor among servers sharing the etcd, then
  ``Compact``. A revision older than the compacted one is CompactedError (410).

Requested progress notifications (``WatchProgressRequest``) are deliberately not
used: etcd before 3.4.25/3.5.8 (Debian ships 3.4.23) may send one ahead of
events still queued for the stream (etcd#15220), which would let the store
claim a revision whose events it has not delivered. The periodic notifications
that ``progress_notify`` asks for are sent in order and are safe.

Concurrency: everything runs on the event loop; the feeder and the periodic
compactor are supervised children. Many requests are in flight at once on
gRPC's HTTP/2 connection; etcd orders them.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
from collections.abc import Sequence
from typing import Any

import grpc  # type: ignore[import-untyped]

from pilothouse import supervisor
from pilothouse.storage import interface as storage
from pilothouse.storage.etcd import client as etcd_client
from pilothouse.storage.etcd import proto
from pilothouse.storage.etcd import watch as etcd_watch

log = logging.getLogger(__name__)

COMPACT_REV_KEY = "compact_rev_key"
# Written (empty) to find a point every server's feeder will reach: see linearizable_revision.
BARRIER_KEY = "/registry/pilothouse/read-barrier"
RING_SIZE = 10_000


def _bytes_prefix_end(prefix: bytes) -> bytes:
    """The first byte string after every string that starts with ``prefix``."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\x00"  # etcd: no upper bound
    return trimmed[:-1] + bytes((trimmed[-1] + 1,))


class EtcdStore:
    """A :class:`~pilothouse.storage.interface.Store` in etcd (see the module docstring).

    Options: ``prefix`` for every key, ``tls`` files, ``compact_interval`` seconds
    between compactions (0: none), ``timeout`` per etcd request (and for a write's
    event to come back), ``ring_size`` events of recent history kept in memory.
    """

    def __init__(
        self,
        endpoints: Sequence[etcd_client.Endpoint],
        *,
        prefix: str = "",
        tls: etcd_client.TLSFiles | None = None,
        compact_interval: float = 300.0,
        timeout: float = etcd_client.DEFAULT_TIMEOUT,
        ring_size: int = RING_SIZE,
        parent: supervisor.Supervisor | None = None,
    ) -> None:
        self.client = etcd_client.Client(endpoints, tls=tls, timeout=timeout)
        self.key_prefix = prefix.encode()
        self._compact_key = self.key_prefix + COMPACT_REV_KEY.encode()
        self._compact_interval = compact_interval
        self._timeout = timeout
        self.ring = etcd_watch.Ring(ring_size, 0)
        self.streams = etcd_watch.new_registry()
        self._revision = 0
        self._compacted = 0
        self._compact_version = 0  # version of compact_rev_key we last saw
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        # The feeder and compactor run under the API server's supervisor when given
        # (its /readyz sees them), else under one of the store's own.
        self._children = (
            parent.nest("etcd-store", backoff_max=5.0)
            if parent is not None
            else supervisor.Supervisor("etcd-store", backoff_max=5.0)
        )
        self._compact_lock = asyncio.Lock()
        self._feeding = asyncio.Event()
        self._barrier: asyncio.Future[int] | None = None
        self._started = False
        self._closed = False

    # -- keys ----------------------------------------------------------------------

    def _key(self, key: str) -> bytes:
        if not key.startswith("/"):
            raise ValueError(f"store keys start with '/': {key!r}")
        return self.key_prefix + key.encode()

    def data_range(self, prefix: str = "") -> tuple[bytes, bytes]:
        """[start, end) in etcd of the store keys under ``prefix``."""
        if not prefix:
            # Every store key starts with "/"; "0" follows "/" in ASCII.
            return self.key_prefix + b"/", self.key_prefix + b"0"
        full = self.key_prefix + prefix.encode()
        return full, _bytes_prefix_end(full)

    def _kv(self, kv: Any) -> storage.KeyValue:
        return storage.KeyValue(
            kv.key[len(self.key_prefix) :].decode(), kv.value, kv.create_revision, kv.mod_revision
        )

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        if self._started or self._closed:
            raise RuntimeError("EtcdStore.start() is called once, before use")
        self._started = True
        await self.client.wait_reachable()
        found = await self.client.range(proto.RangeRequest(key=self._compact_key))
        if found.kvs:
            self._compacted = int(found.kvs[0].value or 0)
            self._compact_version = int(found.kvs[0].version)
        lo, hi = self.data_range()
        head = await self.client.range(proto.RangeRequest(key=lo, range_end=hi, count_only=True))
        self._revision = max(int(head.header.revision), self._compacted)
        self.ring.reset(self._revision)
        self._children.start("feeder", self._feed)
        if self._compact_interval > 0:
            self._children.start("compactor", self._compact_periodically)
        # The first writes must not wait for an event of a watch not yet created.
        try:
            async with asyncio.timeout(self._timeout):
                await self._feeding.wait()
        except TimeoutError:
            raise storage.StoreUnavailableError(
                f"etcd did not start a watch within {self._timeout:.0f}s"
            ) from None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._children.stop()
        for stream in list(self.streams):
            stream.end(storage.StoreClosedError("store is closed"))
        for _, _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(storage.StoreClosedError("store is closed"))
        self._waiters = []
        await self.client.close()

    def _check_open(self) -> None:
        if self._closed:
            raise storage.StoreClosedError("store is closed")
        if not self._started:
            raise RuntimeError("EtcdStore used before start()")

    # -- state ---------------------------------------------------------------------

    def current_revision(self) -> int:
        return self._revision

    def healthy(self) -> bool:
        """Whether the feeder's watch is established (``/readyz``'s etcd check): False
        from a failed watch until a member of etcd takes the watch again."""
        return self._feeding.is_set()

    def compacted_revision(self) -> int:
        return self._compacted

    def _check_revision(self, revision: int) -> None:
        if revision and revision < self._compacted:
            raise storage.CompactedError(revision, self._compacted)
        if revision > self._revision:
            raise storage.FutureRevisionError(revision, self._revision)

    # -- the feeder ------------------------------------------------------------------

    async def _feed(self) -> None:
        delay = 0.2
        while True:
            call, endpoint = self.client.watch_call()
            lo, hi = self.data_range()
            try:
                await call.write(
                    proto.WatchRequest(
                        create_request=proto.WatchCreateRequest(
                            key=lo,
                            range_end=hi,
                            start_revision=self._revision + 1,
                            prev_kv=True,
                            progress_notify=True,
                        )
                    )
                )
                while True:
                    response = await call.read()
                    if response is grpc.aio.EOF:
                        raise storage.StoreUnavailableError("etcd closed the watch stream")
                    if response.canceled:
                        if response.compact_revision:
                            self._history_lost(int(response.compact_revision))
                            break
                        raise storage.StoreError(
                            f"etcd cancelled the watch: {response.cancel_reason}"
                        )
                    if response.created:
                        delay = 0.2
                        self._feeding.set()
                        continue
                    if response.events:
                        self._apply(response.events)
                    elif response.header.revision > self._revision:
                        # A periodic progress notification: nothing of ours changed
                        # up to this revision (etcd sends them in order with events).
                        self._advance(int(response.header.revision))
            except grpc.aio.AioRpcError as exc:
                log.warning("etcd watch at %s failed: %s; resuming", endpoint, exc.details())
                self._feeding.clear()
                self.client.watch_failed(endpoint)
            except storage.StoreError as exc:
                log.warning("etcd watch at %s ended: %s; resuming", endpoint, exc)
                self._feeding.clear()
                self.client.watch_failed(endpoint)
            finally:
                call.cancel()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _apply(self, raw_events: Any) -> None:
        strip = len(self.key_prefix)
        events = [etcd_watch.convert(e, strip) for e in raw_events]
        self.ring.extend(events)
        for stream in list(self.streams):
            stream.push(events)
        self._advance(events[-1].revision)

    def _advance(self, revision: int) -> None:
        if revision <= self._revision:
            return
        self._revision = revision
        self._wake_writers()

    def _wake_writers(self) -> None:
        waiters, revision = self._waiters, self._revision
        while waiters and waiters[0][0] <= revision:
            _, _, waiter = waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)

    def _history_lost(self, compacted: int) -> None:
        """etcd compacted past the feeder's position (it was away too long): events
        are lost, so every stream ends with CompactedError and consumers start over."""
        log.error(
            "etcd compacted to revision %d while the store's watch was at %d; watchers must"
            " list again",
            compacted,
            self._revision,
        )
        self._compacted = max(self._compacted, compacted)
        for stream in list(self.streams):
            stream.end(storage.CompactedError(self._revision, compacted))
            self.streams.discard(stream)
        self._revision = max(self._revision, compacted)
        self.ring.reset(self._revision)
        self._wake_writers()

    async def _delivered(self, revision: int) -> None:
        """Wait until the feeder has delivered ``revision`` (a write of ours)."""
        if revision <= self._revision:
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (revision, next(self._seq), waiter)
        bisect.insort(self._waiters, entry)
        try:
            async with asyncio.timeout(self._timeout):
                await waiter
        except TimeoutError:
            raise storage.StoreTimeoutError(
                f"etcd applied the write at revision {revision}, but its watch event did not"
                f" arrive within {self._timeout:.0f}s"
            ) from None
        finally:
            if not waiter.done():
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)

    # -- writes ----------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> int:
        self._check_open()
        k = self._key(key)
        response = await self.client.txn(
            proto.TxnRequest(
                compare=[
                    proto.Compare(result=proto.EQUAL, target=proto.CREATE, key=k, create_revision=0)
                ],
                success=[proto.RequestOp(request_put=proto.PutRequest(key=k, value=value))],
            )
        )
        if not response.succeeded:
            raise storage.KeyExistsError(key)
        revision = int(response.header.revision)
        await self._delivered(revision)
        return revision

    def _precondition(self, k: bytes, if_revision: int) -> Any:
        if if_revision:
            return proto.Compare(
                result=proto.EQUAL, target=proto.MOD, key=k, mod_revision=if_revision
            )
        return proto.Compare(result=proto.GREATER, target=proto.VERSION, key=k, version=0)

    def _refused(self, key: str, response: Any) -> storage.StoreError:
        kvs = response.responses[0].response_range.kvs
        if not kvs:
            return storage.KeyNotFoundError(key)
        return storage.RevisionMismatchError(key, self._kv(kvs[0]))

    async def update(self, key: str, value: bytes, *, if_revision: int) -> int:
        self._check_open()
        k = self._key(key)
        response = await self.client.txn(
            proto.TxnRequest(
                compare=[self._precondition(k, if_revision)],
                success=[proto.RequestOp(request_put=proto.PutRequest(key=k, value=value))],
                failure=[proto.RequestOp(request_range=proto.RangeRequest(key=k))],
            )
        )
        if not response.succeeded:
            raise self._refused(key, response)
        revision = int(response.header.revision)
        await self._delivered(revision)
        return revision

    async def delete(self, key: str, *, if_revision: int = 0) -> storage.KeyValue:
        self._check_open()
        k = self._key(key)
        response = await self.client.txn(
            proto.TxnRequest(
                compare=[self._precondition(k, if_revision)],
                success=[
                    proto.RequestOp(
                        request_delete_range=proto.DeleteRangeRequest(key=k, prev_kv=True)
                    )
                ],
                failure=[proto.RequestOp(request_range=proto.RangeRequest(key=k))],
            )
        )
        if not response.succeeded:
            raise self._refused(key, response)
        revision = int(response.header.revision)
        prev = response.responses[0].response_delete_range.prev_kvs[0]
        await self._delivered(revision)
        return storage.KeyValue(key, prev.value, prev.create_revision, revision)

    # -- reads -----------------------------------------------------------------------

    async def linearizable_revision(self) -> int:
        """A revision at or after every write etcd acknowledged before this call — to any
        server — that this store's feeder is sure to deliver (a consistent read waits
        for it). etcd's own current revision would not do: the feeder only reaches a
        revision through events of our keys or periodic progress notifications, and
        requested ones are unsafe on etcd before 3.4.25 (see the module docstring). So
        the point is made with a write of our own, one for all the readers that asked
        before it was sent (upstream reads from etcd where we read from the cache)."""
        self._check_open()
        pending = self._barrier
        if pending is None:
            pending = self._barrier = asyncio.get_running_loop().create_future()
            self._children.spawn(self._send_barrier(pending), name="read-barrier")
        return await asyncio.shield(pending)

    async def _send_barrier(self, pending: asyncio.Future[int]) -> None:
        await asyncio.sleep(0)  # readers arriving in this same turn of the loop share it
        self._barrier = None  # later readers need a write sent after they asked
        try:
            revision = await self.client.put(self._key(BARRIER_KEY), b"", timeout=3.0)
        except asyncio.CancelledError:
            pending.cancel()
            raise
        except Exception as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved: a reader that gave up does not leave it unseen
            return
        pending.set_result(revision)

    async def _range(self, request: Any, *, pinned: bool) -> Any:
        try:
            return await self.client.range(request)
        except storage.CompactedError:
            if not pinned:
                raise storage.CompactedError(request.revision, self._compacted) from None
            # Someone compacted etcd past our feeder: read the newest state instead.
            request.revision = 0
            return await self.client.range(request)

    async def get(self, key: str) -> storage.KeyValue | None:
        self._check_open()
        response = await self._range(
            proto.RangeRequest(key=self._key(key), revision=self._revision), pinned=True
        )
        return self._kv(response.kvs[0]) if response.kvs else None

    async def list(
        self,
        prefix: str,
        *,
        at_revision: int = 0,
        limit: int = 0,
        start_key: str = "",
    ) -> storage.ListResult:
        self._check_open()
        self._check_revision(at_revision)
        revision = at_revision or self._revision
        lo, hi = self.data_range(prefix)
        if start_key:
            lo = max(lo, self.key_prefix + start_key.encode())
        response = await self._range(
            proto.RangeRequest(key=lo, range_end=hi, revision=revision, limit=limit),
            pinned=not at_revision,
        )
        items = [self._kv(kv) for kv in response.kvs]
        if response.more:
            return storage.ListResult(items, revision, True, int(response.count) - len(items))
        return storage.ListResult(items, revision, False, 0)

    def watch(self, prefix: str, *, after_revision: int) -> etcd_watch.LocalStream:
        self._check_open()
        if after_revision < self._compacted:
            raise storage.CompactedError(after_revision, self._compacted)
        if after_revision > self._revision:
            raise storage.FutureRevisionError(after_revision, self._revision)
        return etcd_watch.LocalStream(self, prefix, after=after_revision)

    # -- compaction ------------------------------------------------------------------

    async def compact(self, revision: int) -> int:
        self._check_open()
        async with self._compact_lock:
            target = min(revision, self._revision)
            if target <= self._compacted:
                return self._compacted
            # kube-apiserver's election: whoever bumps compact_rev_key's version compacts.
            response = await self.client.txn(
                proto.TxnRequest(
                    compare=[
                        proto.Compare(
                            result=proto.EQUAL,
                            target=proto.VERSION,
                            key=self._compact_key,
                            version=self._compact_version,
                        )
                    ],
                    success=[
                        proto.RequestOp(
                            request_put=proto.PutRequest(
                                key=self._compact_key, value=str(target).encode()
                            )
                        )
                    ],
                    failure=[
                        proto.RequestOp(request_range=proto.RangeRequest(key=self._compact_key))
                    ],
                )
            )
            if not response.succeeded:
                kvs = response.responses[0].response_range.kvs
                if kvs:
                    self._compact_version = int(kvs[0].version)
                    self._compacted = max(self._compacted, int(kvs[0].value or 0))
                return self._compacted
            self._compact_version += 1
            # CompactedError: etcd was compacted further already (its auto-compaction).
            with contextlib.suppress(storage.CompactedError):
                await self.client.compact(target)
            self._compacted = target
            return self._compacted

    async def _compact_periodically(self) -> None:
        """Like kube-apiserver's compactor: every interval, compact to the revision that
        was current at the previous tick, so watchers get that long to catch up."""
        previous = 0
        while True:
            await asyncio.sleep(self._compact_interval)
            if previous:
                try:
                    await self.compact(previous)
                except storage.StoreError as exc:
                    log.warning("etcd compaction to %d failed: %s", previous, exc)
            previous = self._revision
