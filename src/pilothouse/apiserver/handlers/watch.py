"""Streaming watches: newline-delimited ``{"type", "object"}`` over a chunked response.

Each watch runs as its own request task. Events come from a
:class:`~pilothouse.apiserver.resourcecache.Watcher`, filled synchronously by the
cache's feeder task (or, for resumes older than the cache's window, by a pump
task reading the store's log). The request task only drains the watcher's
backlog and writes; a client too slow to keep up is disconnected and re-watches,
as upstream does: once its backlog overflows (``WATCHER_BACKLOG_LIMIT`` events) the
watch ends after what is being written, and if even that write does not finish
within ``SLOW_WATCHER_GRACE`` seconds (a client that stopped reading) the
connection is cut. Either way the client resumes from the last resourceVersion
it received, and nothing is buffered without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import orjson
from aiohttp import web

from pilothouse.api import errors, meta
from pilothouse.apiserver import cacheentry, negotiation, resourcecache, table
from pilothouse.apiserver.handlers.options import ListParams
from pilothouse.apiserver.handlers.render import metadata_only
from pilothouse.apiserver.registry.listing import parse_rv, too_large_rv
from pilothouse.apiserver.registry.store import ResourceStore
from pilothouse.storage import interface as storage

log = logging.getLogger(__name__)

BOOKMARK_INTERVAL = 60.0
SLOW_WATCHER_GRACE = 5.0
# Upstream's default: a random duration between the minimum request timeout
# (30 minutes) and twice that, so watches do not all end together.
DEFAULT_TIMEOUT_RANGE = (1800.0, 3600.0)
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
# How many initial events are encoded and written at a time.
INITIAL_EVENTS_SLICE = 500


class _Encoder:
    """Encodes events for one watch in its negotiated form."""

    def __init__(
        self, store: ResourceStore, output: negotiation.Output, include_object: str
    ) -> None:
        self.store = store
        self.output = output
        self.include_object = include_object
        self.first_table = True

    def event(self, type_: str, entry: cacheentry.Entry, *, initial: bool = False) -> bytes:
        """One event; ``initial`` for the current state a watch starts with, whose
        encoding no other watcher shares (so the cache does not keep it)."""
        form = self.output.form
        if form == "object" and self.store.convert is None and self.store.remote is None:
            raw = entry.encode() if initial else entry.raw()
            return b'{"type":"' + type_.encode() + b'","object":' + raw + b"}\n"
        obj = self.store.output(entry.whole())
        body: Any
        if form == "table":
            body = table.build_table(
                self.store.resource,
                [obj],
                now=time.time(),
                list_metadata={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                include_object=self.include_object,
                no_headers=not self.first_table,
                printer=self.store.strategy.printer(),
            )
            body["apiVersion"] = f"meta.k8s.io/{self.output.version}"
            self.first_table = False
        elif form == "metadata":
            body = metadata_only(obj, self.output.version)
        else:
            body = meta.wire_order(obj)
        return orjson.dumps({"type": type_, "object": body}) + b"\n"

    def bookmark(self, revision: int, *, initial_end: bool = False) -> bytes:
        r = self.store.resource
        md: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial_end:
            md["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = {"kind": r.kind, "apiVersion": r.api_version, "metadata": md}
        return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


def error_event(err: errors.StatusError) -> bytes:
    return orjson.dumps({"type": "ERROR", "object": err.status()}) + b"\n"


async def _pump(
    store: storage.Store, prefix: str, after: int, watcher: resourcecache.Watcher
) -> None:
    stream = store.watch(prefix, after_revision=after)
    try:
        async for batch in stream:
            for event in batch:
                watcher.deliver(cacheentry.decode_event(event))
    except storage.StoreError:
        pass
    finally:
        watcher.close()
        await stream.aclose()


async def serve(
    request: web.Request,
    store: ResourceStore,
    namespace: str,
    params: ListParams,
    match: cacheentry.Filter | None,
    output: negotiation.Output,
) -> web.StreamResponse:
    cache = store.watch_cache
    prefix = store.resource.prefix(namespace)
    rv = parse_rv(params.resource_version)
    send_initial = params.send_initial_events
    if send_initial is None:
        send_initial = params.resource_version in ("", "0")
    elif send_initial and (
        params.resource_version_match != "NotOlderThan" or not params.allow_bookmarks
    ):
        raise errors.invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            [
                errors.field_forbidden(
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled "
                    "and resourceVersionMatch is NotOlderThan and allowWatchBookmarks is true",
                )
            ],
        )
    if params.resource_version == "":
        await cache.consistent()
    elif rv > cache.revision and not await cache.wait_for(rv):
        raise too_large_rv(rv, cache.revision)

    encoder = _Encoder(store, output, params.include_object)
    initial: list[bytes] = []
    pump: asyncio.Task[None] | None = None
    expired: errors.StatusError | None = None
    # No await between taking the snapshot and registering the watcher: the
    # watcher then sees exactly the events after the snapshot.
    initial_entries: list[cacheentry.Entry] = []
    if send_initial:
        start = cache.revision
        for entry in store.cache.snapshot(prefix):
            if match is None or match(entry.obj):
                initial_entries.append(entry)
        watcher = store.cache.watch(prefix, match, start)
        assert watcher is not None
    else:
        start = rv
        maybe = store.cache.watch(prefix, match, rv)
        if maybe is None:
            watcher = resourcecache.Watcher(prefix, match)
            compacted = store.store.compacted_revision()
            if rv < compacted:
                expired = errors.too_old_resource_version(rv, compacted)
            else:
                pump = asyncio.create_task(
                    _pump(store.store, prefix, rv, watcher), name="watch-pump"
                )
        else:
            watcher = maybe

    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    loop = asyncio.get_running_loop()
    writing = False

    async def send(data: bytes) -> None:
        nonlocal writing
        writing = True
        try:
            await resp.write(data)
        finally:
            writing = False

    def cut_if_stuck() -> None:
        if writing and request.transport is not None:
            log.info("watch of %s: the client stopped reading; cutting it off", prefix)
            request.transport.abort()

    def overflowed() -> None:
        log.info(
            "watch of %s closed: its client fell %d events behind (it resumes from its "
            "last resourceVersion)",
            prefix,
            watcher.limit,
        )
        loop.call_later(SLOW_WATCHER_GRACE, cut_if_stuck)

    watcher.on_overflow = overflowed
    try:
        await resp.prepare(request)
        if expired is not None:
            await send(error_event(expired))
            return resp
        if initial_entries:
            converted = await store.api_entries(initial_entries)
            # In slices: the whole state at once would be a second copy of the cache.
            for i in range(0, len(converted), INITIAL_EVENTS_SLICE):
                initial = [
                    encoder.event(cacheentry.ADDED, e, initial=True)
                    for e in converted[i : i + INITIAL_EVENTS_SLICE]
                ]
                await send(b"".join(initial))
        if send_initial and params.send_initial_events:
            await send(encoder.bookmark(start, initial_end=True))
        timeout = params.timeout_seconds
        if timeout is None or timeout <= 0:
            timeout_s = random.uniform(*DEFAULT_TIMEOUT_RANGE)
        else:
            timeout_s = float(timeout)
        deadline = loop.time() + timeout_s
        next_bookmark = loop.time() + BOOKMARK_INTERVAL
        while True:
            now = loop.time()
            if now >= deadline:
                break
            until = min(deadline, next_bookmark) if params.allow_bookmarks else deadline
            batch = await watcher.next_batch(max(0.0, until - now))
            if batch and store.remote is not None:
                entries = await store.api_entries([e for _, e in batch])
                batch = [(t, e) for (t, _), e in zip(batch, entries, strict=True)]
            if batch:
                await send(b"".join(encoder.event(t, e) for t, e in batch))
            elif watcher.closed:
                break
            if params.allow_bookmarks and loop.time() >= next_bookmark:
                if not watcher.backlog and pump is None:
                    await send(encoder.bookmark(cache.revision))
                next_bookmark = loop.time() + BOOKMARK_INTERVAL
    except ConnectionResetError:
        pass
    finally:
        store.cache.unwatch(watcher)
        watcher.close()
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        # What it still holds goes now: the watcher and its overflow callback refer to
        # each other, so it would otherwise wait for a full collection (rare here).
        watcher.backlog.clear()
        watcher.on_overflow = None
    writing = True  # the end of the response may wait on a client that does not read
    stuck = loop.call_later(SLOW_WATCHER_GRACE, cut_if_stuck)
    try:
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await resp.write_eof()
    finally:
        stuck.cancel()
        writing = False
    return resp
