"""The watch cache: every object in memory, fed by one watch on the store.

Like upstream's cacher, it serves LIST, GET and WATCH without touching the store.
One feeder task reads the store's event stream for the whole keyspace and
applies each batch to the per-resource caches in revision order; it is the only
writer of cache state, and it never awaits between applying an event and
delivering it to watchers, so a watcher registered at revision R sees exactly
the events after R. Readers that need a consistent view wait until the cache
has reached the store's current revision (:meth:`WatchCache.wait_for`).

Each event keeps the object before and after the change so a filtered watch can
turn a MODIFIED into ADDED or DELETED when an object starts or stops matching,
as upstream does. A bounded ring of recent events per resource lets watches
resume from a recent ``resourceVersion``; older (but not compacted) revisions
are served from the store's log by :func:`store_watch`.

Paged lists are served from list snapshots of a resource cache
(:mod:`pilothouse.apiserver.listsnapshots`).

The feeder is a supervised child (RESTART). Should it fail, it lists the store
again when restarted, as upstream's reflector re-lists: the caches are rebuilt at
that revision and every open watch is closed, so its client resumes from the
last resourceVersion it saw (served from the store's log if need be).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import orjson
from sortedcontainers import SortedList

from pilothouse import supervisor as supervision
from pilothouse.api import meta
from pilothouse.apiserver import listsnapshots
from pilothouse.storage import interface as storage

log = logging.getLogger(__name__)

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"

Filter = Callable[[dict[str, Any]], bool]
# What a writer in this process offers for its write: the object the stored value
# encodes, and the exact-size encoding of its managedFields when it made one.
Written = tuple[dict[str, Any], bytes | None]

# How many events each resource keeps for watches that resume from a past
# resourceVersion. Older resumes fall back to the store's log.
EVENT_WINDOW = 1000
# A watcher that falls this many events behind is closed; its client re-watches from
# the last resourceVersion it got (upstream closes an unresponsive watcher the same way).
WATCHER_BACKLOG_LIMIT = 20000
# Key directories (a resource and namespace) whose cache is remembered; beyond this
# many the memory starts again.
ROUTES_KEPT = 10000


class Entry:
    """One object version, with its JSON encoding made once on demand.

    ``obj`` is the object without ``metadata.managedFields``: they are kept apart,
    encoded (``managed``, exact-size bytes, None when the object has none), so the
    object the cache shares with the process's informers is the one they want
    (control loops never read managedFields; they were a third of a pod's memory,
    decoded). Whatever answers a request or bases a write on the object puts them
    back: :meth:`whole` (decoded afresh, in their place) or the encodings below,
    which splice the bytes in, so every answer is byte for byte what it was.

    The encoding is kept only while an event of this version is in the event
    window, where watchers fan it out (one encoding for every watcher, as
    upstream's cachingObject); a LIST encodes what it serves afresh
    (:meth:`encode`) and keeps nothing, so the cache holds each object once,
    decoded, rather than decoded and encoded (a third more for a pod).
    """

    __slots__ = ("_raw", "key", "managed", "managed_at", "obj", "revision", "windowed")

    def __init__(
        self,
        key: str,
        obj: dict[str, Any],
        revision: int,
        managed: tuple[bytes, int] | None = None,
    ) -> None:
        self.key = key
        self.obj = obj
        self.revision = revision
        # The managedFields' encoding and their place among the metadata fields.
        self.managed: bytes | None = None
        self.managed_at = 0
        if managed is not None:
            self.managed, self.managed_at = managed
        self._raw: bytes | None = None
        # Whether an event of this version is in its cache's event window.
        self.windowed = False

    def whole(self) -> dict[str, Any]:
        """The object with its managedFields: ``obj`` itself when it has none apart,
        else a shallow copy (metadata copied, managedFields decoded afresh) — what a
        response or a write (field management, admission's old object) needs."""
        if self.managed is None:
            return self.obj
        return meta.with_managed_fields(self.obj, orjson.loads(self.managed), at=self.managed_at)

    def _wire(self) -> dict[str, Any]:
        if self.managed is None:
            return meta.wire_order(self.obj)
        spliced = orjson.Fragment(self.managed)  # encoded already: no decoding
        return meta.wire_order(meta.with_managed_fields(self.obj, spliced, at=self.managed_at))

    def raw(self) -> bytes:
        """The object as responses carry it (fields in upstream's order), kept for
        the other watchers of the same event while that event is in the window."""
        if self._raw is not None:
            return self._raw
        raw = orjson.dumps(self._wire())
        if self.windowed:
            # Kept as a copy of exactly its size: orjson's bytes keep the buffer they
            # grew in (8 KB of memory for a 4 KB pod).
            raw = self._raw = bytes(memoryview(raw))
        return raw

    def encode(self) -> bytes:
        """What :meth:`raw` gives, without keeping it (a LIST's items)."""
        if self._raw is not None:
            return self._raw
        return orjson.dumps(self._wire())

    def leave_window(self) -> None:
        self.windowed = False
        self._raw = None


class WatchEvent:
    """A change to one object, as the cache saw it."""

    __slots__ = ("entry", "prev", "type")

    def __init__(self, type: str, entry: Entry, prev: Entry | None) -> None:
        self.type = type
        self.entry = entry
        self.prev = prev

    @property
    def revision(self) -> int:
        return self.entry.revision


def _take_managed(md: dict[str, Any]) -> tuple[bytes, int] | None:
    """Remove ``managedFields`` from ``md``: their encoding (exact size) and the place
    they had among its fields, or None."""
    for at, key in enumerate(md):
        if key == "managedFields":
            return bytes(memoryview(orjson.dumps(md.pop(key)))), at
    return None


def decode(kv: storage.KeyValue) -> Entry:
    """Decode a stored value and stamp its ``resourceVersion``."""
    obj = orjson.loads(kv.value)
    md = obj.setdefault("metadata", {})
    md["resourceVersion"] = str(kv.mod_revision)
    return Entry(kv.key, obj, kv.mod_revision, _take_managed(md))


def adopt(kv: storage.KeyValue, obj: dict[str, Any], managed: bytes | None = None) -> Entry:
    """What :func:`decode` would make of ``kv``, from the object ``kv.value`` encodes.

    The writer still answers its request with ``obj`` (managedFields and all), so when
    there are managedFields to keep apart the cache takes a shallow copy of it, its
    metadata copied without them; nested values are shared, read-only for both.
    ``managed`` is their encoding (exact size) when the writer made it already, as
    part of ``kv.value``: then they are not encoded a second time."""
    md = obj.setdefault("metadata", {})
    md["resourceVersion"] = str(kv.mod_revision)
    if "managedFields" not in md:
        return Entry(kv.key, obj, kv.mod_revision)
    cached_md = dict(md)
    if managed is None:
        apart = _take_managed(cached_md)
    else:
        apart = managed, list(cached_md).index("managedFields")
        del cached_md["managedFields"]
    return Entry(kv.key, {**obj, "metadata": cached_md}, kv.mod_revision, apart)


def decode_event(
    event: storage.Event, known: Entry | None = None, written: Written | None = None
) -> WatchEvent:
    """Decode a store event; ``known`` is the cached previous version, if any,
    reused instead of decoding the previous value again; ``written`` the object
    the new value encodes and its managedFields' encoding, if this process wrote it
    (see :meth:`WatchCache.writing`)."""
    if event.type is storage.EventType.CREATE:
        return WatchEvent(
            ADDED, adopt(event.kv, *written) if written is not None else decode(event.kv), None
        )
    prev: Entry | None = None
    if event.prev is not None:
        if known is not None and known.revision == event.prev.mod_revision:
            prev = known
        else:
            prev = decode(event.prev)
    if event.type is storage.EventType.UPDATE:
        entry = adopt(event.kv, *written) if written is not None else decode(event.kv)
        return WatchEvent(MODIFIED, entry, prev)
    # A deleted object is sent as it last was, at the deletion's revision.
    return WatchEvent(DELETED, decode(event.kv), prev)


def filtered(event: WatchEvent, match: Filter | None) -> tuple[str, Entry] | None:
    """The event a filtered watcher should see, or None."""
    if match is None:
        return event.type, event.entry
    if event.type == ADDED:
        return (ADDED, event.entry) if match(event.entry.obj) else None
    before = event.prev is not None and match(event.prev.obj)
    if event.type == DELETED:
        return (DELETED, event.entry) if before else None
    now = match(event.entry.obj)
    if now:
        return (MODIFIED if before else ADDED), event.entry
    if before:
        return DELETED, event.entry
    return None


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


class WatchCache:
    """All resource caches, kept current by one feeder (a supervised child)."""

    def __init__(
        self,
        store: storage.Store,
        prefixes: list[str],
        *,
        supervisor: supervision.Supervisor | None = None,
    ) -> None:
        self.store = store
        self.revision = 0
        self._prefixes = sorted(set(prefixes), key=len, reverse=True)
        # The cache of each key's directory (up to its last "/"), found once: with
        # every prefix ending in "/", a key and its directory start with the same ones.
        self._routes: dict[str, ResourceCache | None] = {}
        self.caches: dict[str, ResourceCache] = {}
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0
        self.supervisor = supervisor or supervision.Supervisor("watch-cache")
        self._own_supervisor = supervisor is None
        self._stream: storage.WatchStream | None = None
        self.resyncs = 0  # how often a failed feed was replaced by a fresh listing
        # Objects this process is writing, by key: (the value stored, the object).
        self._writing: dict[str, tuple[bytes, Written]] = {}

    async def start(self) -> None:
        """Load every object, then follow the store from that revision."""
        await self._load()
        self.supervisor.start("watch-cache", self._feed)

    async def _load(self) -> None:
        listing = await self.store.list("/registry/")
        # Only what a cache holds is decoded: other keys under /registry/ (the etcd
        # store's read barrier, say) are not objects.
        entries = [
            decode(kv)
            for kv in listing.items
            if any(kv.key.startswith(prefix) for prefix in self._prefixes)
        ]
        # No await from here on: readers see the old contents or the new ones, whole.
        # (The ResourceCache objects stay: the registry's stores hold them.)
        stream = self.store.watch("/registry/", after_revision=listing.revision)
        for prefix in self._prefixes:
            cache = self.caches.get(prefix)
            if cache is None:
                self.caches[prefix] = ResourceCache(prefix, listing.revision)
            else:
                cache.reset(listing.revision)
        for entry in entries:
            routed = self._route(entry.key)
            if routed is not None:
                routed.load(entry)
        self._writing.clear()
        self._stream = stream
        self.revision = max(self.revision, listing.revision)
        self._wake()

    async def add_prefix(self, prefix: str) -> ResourceCache:
        """Start caching ``prefix`` while the cache runs (a CustomResourceDefinition's
        resource, whose objects may already be stored).

        The new cache is routed events at once, then filled from a listing of the
        store at the revision it started from; keys an event changed meanwhile keep
        the event's version. Returns once the cache is complete."""
        found = self.caches.get(prefix)
        if found is not None:
            return found
        revision = self.revision
        cache = ResourceCache(prefix, revision)
        cache.touched = set()
        self.caches[prefix] = cache
        self._prefixes = sorted({*self._prefixes, prefix}, key=len, reverse=True)
        self._routes.clear()
        try:
            listing = await self.store.list(prefix, at_revision=revision)
        except BaseException:
            self.remove_prefix(prefix)
            raise
        touched, cache.touched = cache.touched, None
        for kv in listing.items:
            if kv.key not in touched and kv.key.startswith(prefix):
                cache.load(decode(kv))
        return cache

    def remove_prefix(self, prefix: str) -> None:
        """Stop caching ``prefix``; its watchers end (clients re-watch and get 404s)."""
        cache = self.caches.pop(prefix, None)
        self._prefixes = [p for p in self._prefixes if p != prefix]
        self._routes.clear()
        if cache is not None:
            for w in tuple(cache.watchers):
                w.close()

    async def stop(self) -> None:
        await self.supervisor.stop_child("watch-cache")
        if self._own_supervisor:
            await self.supervisor.stop()
        if self._stream is not None:
            with contextlib.suppress(Exception):
                await self._stream.aclose()
            self._stream = None
        self.close_watchers()

    def close_watchers(self) -> None:
        """End every open watch (shutdown, or a cache rebuilt from a new listing)."""
        for cache in self.caches.values():
            for w in tuple(cache.watchers):
                w.close()

    def _route(self, key: str) -> ResourceCache | None:
        directory = key[: key.rfind("/") + 1]
        try:
            return self._routes[directory]
        except KeyError:
            pass
        found = self._scan(key)
        if all(prefix.endswith("/") for prefix in self._prefixes):
            if len(self._routes) >= ROUTES_KEPT:
                self._routes.clear()  # namespaces come and go: start again
            self._routes[directory] = found
        return found

    def _scan(self, key: str) -> ResourceCache | None:
        for prefix in self._prefixes:  # the longest first
            if key.startswith(prefix):
                return self.caches[prefix]
        return None

    async def _feed(self) -> None:
        if self._stream is None:  # restarted after a failure: start from a fresh listing
            self.resyncs += 1
            await self._load()
        stream = self._stream
        assert stream is not None
        try:
            async for batch in stream:
                self._apply(batch)
        except asyncio.CancelledError:
            raise
        except BaseException:
            # The caches may have missed events: close every watch now.
            self.close_watchers()
            raise
        finally:
            # However the feed ended, the stream is spent: a restart lists again.
            self._stream = None
            with contextlib.suppress(Exception):
                await stream.aclose()

    def _apply(self, batch: list[storage.Event]) -> None:
        for event in batch:
            key = event.kv.key
            cache = self._route(key)
            if cache is not None:
                written = self._take_written(event) if self._writing else None
                cache.apply(decode_event(event, cache.objects.get(key), written))
        self.revision = batch[-1].revision
        self._wake()

    def _apply_delivered(self) -> None:
        """Apply now the events the store has already handed to the feed's stream.

        The store hands a commit's events to the stream and settles its writers in one
        callback; the feed applies them in its next step, a turn of the loop later (and
        under load a turn is tens of milliseconds). A client's read that needs them — a
        GET or LIST must see every acknowledged write — takes them off the stream itself
        instead of waiting for that turn, the way the feed would have, in order; the
        feed then finds nothing pending and waits for the next commit. A write's own
        read of the object it replaces waits for the feed as before: the feed applies
        what several commits delivered as one batch (one wake-up of every watcher), and
        taking them in every update's turn cut them into many more, smaller ones. Only a
        stream that can say what it holds without waiting (``take_ready``; SQLite's) is
        read here, and only after the history it reads first: otherwise the read waits
        as before."""
        if not hasattr(self._stream, "take_ready"):  # (a Protocol's isinstance is slow)
            return
        stream = cast(storage.ReadyStream, self._stream)
        batch = stream.take_ready()
        if not batch:
            return
        try:
            self._apply(batch)
        except Exception:
            # As a failure in the feed: every watch ends, and the feed, its stream
            # ended under it, starts again from a fresh listing (its supervisor's
            # restart). The read waits for that.
            log.exception("watch cache: applying delivered events failed; resyncing")
            self.close_watchers()
            stream.end_now()

    def writing(
        self, key: str, value: bytes, obj: dict[str, Any], *, managed: bytes | None = None
    ) -> None:
        """``obj`` is being stored at ``key`` as ``value`` (its encoding, without
        ``resourceVersion``) by this process; ``managed`` is the encoding of its
        managedFields inside ``value`` (exact size), kept apart by the cache as is.

        When the event of that very write arrives, the cache keeps ``obj`` instead
        of decoding ``value`` again (a backend that hands back another bytes object
        is simply decoded). The caller gives ``obj`` away: from now on it is the
        cache's, read-only like every cached object; only ``metadata.resourceVersion``
        may still be set, to the revision of the write. Once the write is answered
        the caller withdraws the offer with :meth:`not_written` (a no-op when the
        event took it), so no offer outlives its write.
        """
        self._writing[key] = (value, (obj, managed))

    def not_written(self, key: str, value: bytes) -> None:
        """Withdraw what :meth:`writing` offered for this very value, if still there."""
        found = self._writing.get(key)
        if found is not None and found[0] is value:
            del self._writing[key]

    def _take_written(self, event: storage.Event) -> Written | None:
        if event.type is storage.EventType.DELETE:
            return None
        kv = event.kv
        found = self._writing.get(kv.key)
        # Identity is the usual case; a backend across the network (etcd) hands back
        # equal bytes, which encode the very same object just as well.
        if found is None or (found[0] is not kv.value and found[0] != kv.value):
            return None
        del self._writing[kv.key]
        return found[1]

    def _wake(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.revision:
            _, _, fut = self._waiters.pop(0)
            if not fut.done():
                fut.set_result(None)

    async def wait_for(self, revision: int, *, timeout: float = 3.0) -> bool:
        """Wait until the cache has applied ``revision``; False on timeout."""
        if self.revision >= revision:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        bisect.insort(self._waiters, (revision, self._seq, fut), key=lambda w: (w[0], w[1]))
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        return True

    async def consistent(self, *, linearizable: bool = False) -> None:
        """Wait until everything the store has acknowledged is in the cache; with
        ``linearizable``, everything any server sharing the store had acknowledged (a
        client's GET or LIST: it may have written through another server)."""
        revision = self.store.current_revision()
        barrier = getattr(self.store, "linearizable_revision", None) if linearizable else None
        if barrier is not None:
            try:
                revision = await barrier()
            except storage.StoreError as exc:
                # etcd is away: serve what this server has (reads go on from the cache).
                log.debug("linearizable read point unavailable: %s", exc)
        if linearizable and self.revision < revision:
            self._apply_delivered()
        await self.wait_for(revision, timeout=10.0)

    def resource(self, prefix: str) -> ResourceCache:
        return self.caches[prefix]


async def store_watch(
    store: storage.Store, prefix: str, match: Filter | None, after_revision: int
) -> AsyncIterator[list[tuple[str, Entry]]]:
    """Watch straight from the store's log (for resumes older than the cache window).

    ``store.watch`` raises CompactedError at once when the revision is gone."""
    stream = store.watch(prefix, after_revision=after_revision)

    async def iterate() -> AsyncIterator[list[tuple[str, Entry]]]:
        try:
            async for batch in stream:
                out = []
                for event in batch:
                    item = filtered(decode_event(event), match)
                    if item is not None:
                        out.append(item)
                if out:
                    yield out
        finally:
            await stream.aclose()

    return iterate()
