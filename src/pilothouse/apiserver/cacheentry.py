"""An object version in the watch cache, its encoding, and the events made of them.

:class:`Entry` is one version of one object as the cache holds it: decoded once,
its ``managedFields`` kept apart as exact-size bytes, its JSON encoding made on
demand and kept only while its event is in an event window (upstream's
cachingObject). :func:`decode`, :func:`adopt` and :func:`decode_event` make entries
and :class:`WatchEvent` s from what the store hands out; :func:`filtered` turns an
event into what a filtered watcher sees (a MODIFIED becomes ADDED or DELETED when
the object starts or stops matching, as upstream does).

Nothing here runs on its own or awaits: entries are made and read on the event
loop, by the watch cache's feeder, the writers that offer their objects to it and
the requests that serve them. An entry's object is shared and read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from pilothouse.api import meta
from pilothouse.storage import interface as storage

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"

Filter = Callable[[dict[str, Any]], bool]
# What a writer in this process offers for its write: the object the stored value
# encodes, and the exact-size encoding of its managedFields when it made one.
Written = tuple[dict[str, Any], bytes | None]


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
    (see :meth:`.watchcache.WatchCache.writing`)."""
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
