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

Each resource's objects, event ring and watchers are a resource cache
(:mod:`pilothouse.apiserver.resourcecache`); the entries and events it holds,
and their encoding, are :mod:`pilothouse.apiserver.cacheentry`'s. Paged lists are
served from list snapshots of a resource cache
(:mod:`pilothouse.apiserver.listsnapshots`).

The feeder is a supervised child (RESTART). Should it fail, it lists the store
again when restarted, as upstream's reflector re-lists: the caches are rebuilt at
that revision and every open watch is closed, so its client resumes from the
last resourceVersion it saw (served from the store's log if need be).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

from pilothouse import supervisor as supervision
from pilothouse.apiserver.cacheentry import Entry, Filter, Written, decode, decode_event, filtered
from pilothouse.apiserver.resourcecache import ResourceCache
from pilothouse.storage import interface as storage

log = logging.getLogger(__name__)

# Key directories (a resource and namespace) whose cache is remembered; beyond this
# many the memory starts again.
ROUTES_KEPT = 10000


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
