"""How the generic registry's writes reach the backend store: an object's encoding,
the watch cache's offer of the written object, and the write's origin for the
history (:class:`~pilothouse.apiserver.registry.store.ResourceStore` decides what
to write; this writes it).

Each call is one request's write; many run concurrently on the event loop and the
backend serialises them, refusing one based on a revision that is no longer the
key's. The watch cache's offer is per key and exact value, so writes to other keys
never meet, and a write that fails withdraws its own offer only.
"""

from __future__ import annotations

import orjson

from pilothouse.api.meta import Obj
from pilothouse.apiserver import watchcache
from pilothouse.apiserver.registry import write_origin
from pilothouse.storage import history
from pilothouse.storage import interface as storage


def encode(obj: Obj) -> tuple[bytes, bytes | None]:
    """Encode an object for the store (the revision is the resourceVersion), and its
    managedFields apart (exact size, None without them), spliced into the whole as
    they are: the watch cache keeps them so (:func:`.cacheentry.adopt`), and they are
    encoded once per write instead of twice."""
    md = obj["metadata"]
    rv = md.pop("resourceVersion", None)
    try:
        if "managedFields" not in md:
            return orjson.dumps(obj), None
        fields = md["managedFields"]
        managed = bytes(memoryview(orjson.dumps(fields)))
        # Assigning an existing key keeps its place: the bytes are those of before.
        md["managedFields"] = orjson.Fragment(managed)
        try:
            return orjson.dumps(obj), managed
        finally:
            md["managedFields"] = fields
    finally:
        if rv is not None:
            md["resourceVersion"] = rv


def stale(store: storage.Store, key: str, revision: int) -> bool:
    """Whether the stored value was written under an older encryption configuration:
    then even an unchanged object is written again (upstream's GuaranteedUpdate does
    the same, which is how ``kubectl replace`` re-encrypts)."""
    needs_rewrite = getattr(store, "needs_rewrite", None)
    return bool(needs_rewrite is not None and needs_rewrite(key, revision))


async def delete(store: storage.Store, key: str, if_revision: int, *, old: Obj) -> storage.KeyValue:
    with history.writing_as(write_origin.origin(old, None, deleting=True)):
        return await store.delete(key, if_revision=if_revision)


async def write(
    store: storage.Store,
    watch_cache: watchcache.WatchCache,
    key: str,
    obj: Obj,
    if_revision: int | None,
    *,
    old: Obj | None,
) -> int:
    """Create (``if_revision`` None) or update ``key``.

    The watch cache adopts ``obj`` itself when the write's event arrives, instead
    of decoding what was stored: the store delivers the event before it answers,
    so by the time this returns the offer has been taken (or, with a backend
    that hands back other bytes, is withdrawn unused)."""
    value, managed = encode(obj)
    watch_cache.writing(key, value, obj, managed=managed)
    try:
        with history.writing_as(write_origin.origin(old, obj)):
            if if_revision is None:
                return await store.create(key, value)
            return await store.update(key, value, if_revision=if_revision)
    finally:
        watch_cache.not_written(key, value)
