"""A store that transforms the values of some resources on their way in and out.

It sits between the registry (and its watch cache) and the real backend, as
upstream's transformer sits inside its etcd3 store: values under the storage
prefixes given (``/registry/secrets/``, …) are encrypted before they are
written and decrypted when they are read, listed or watched, so everything
above this layer only ever sees plain objects. Values of every other resource
pass untouched — but a value anywhere that starts with ``k8s:enc:`` and has no
transformer to read it raises :class:`~pilothouse.storage.value.TransformError`
instead of being handed out as data.

Several servers on one datastore: a value another server encrypted under a key this
one does not have yet (it changed its configuration a moment ago) is not an error at
once — ``on_unreadable``, when given, fetches the cluster's current configuration
(and installs it) and the value is decoded again; only a value still unreadable
after that is a :class:`~pilothouse.storage.value.TransformError`.

Concurrency: the transformers are swapped (``set_transformers``) on the event
loop, atomically with respect to every request; a write encodes with the
transformers current when it starts. A write's own event is translated back
to the very plain bytes object the caller gave (no decryption), so the watch
cache keeps adopting the object it was offered. ``rewrite_stale`` runs beside
ordinary traffic: each rewrite is conditional on the revision it read, and a
value changed meanwhile is read again, so nothing written concurrently is lost.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from pilothouse.storage import history
from pilothouse.storage import interface as storage
from pilothouse.storage import value as values


class TransformingStore:
    """A :class:`~pilothouse.storage.interface.Store` that transforms values by key prefix.

    ``transformers`` maps storage prefixes (``/registry/secrets/``, or
    ``/registry/<group>/<plural>/``) to the transformers of that resource.
    """

    def __init__(
        self,
        store: storage.Store,
        *,
        transformers: Mapping[str, values.PrefixTransformers] | None = None,
        on_unreadable: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.inner = store
        # Fetch and install the cluster's configuration; True when it changed.
        self.on_unreadable = on_unreadable
        self._routes: dict[str, values.PrefixTransformers] = dict(transformers or {})
        # key -> (stored bytes, plain bytes, generation) of writes in flight from here.
        self._pending: dict[str, tuple[bytes, bytes, int]] = {}
        # Writes in flight, by the generation of transformers that encoded them.
        self._generation = 0
        self._in_flight: collections.Counter[int] = collections.Counter()
        self._drain_waiters: list[asyncio.Event] = []
        # key -> mod revision of its value last seen written by the current writer.
        self._fresh: dict[str, int] = {}

    # -- configuration ---------------------------------------------------------------

    @property
    def transformers(self) -> Mapping[str, values.PrefixTransformers]:
        return self._routes

    def set_transformers(self, transformers: Mapping[str, values.PrefixTransformers]) -> None:
        """Use new transformers from now on (a reloaded encryption configuration)."""
        self._routes = dict(transformers)
        self._generation += 1
        self._fresh.clear()

    def needs_rewrite(self, key: str, revision: int) -> bool:
        """Whether the value of ``key`` at ``revision`` should be written again even if
        unchanged: it was not (known to be) written by its resource's first provider.
        Upstream's GuaranteedUpdate rewrites such "stale" values on a no-op update,
        which is how ``kubectl replace`` of every Secret re-encrypts them."""
        if self.transformer_for(key) is None:
            return False
        return self._fresh.get(key) != revision

    async def drain_writes(self) -> None:
        """Wait until every write encoded before the last :meth:`set_transformers` has
        been answered (re-encryption must not miss one that lands after its scan)."""
        generation = self._generation
        while any(g < generation for g in self._in_flight):
            done = asyncio.Event()
            self._drain_waiters.append(done)
            await done.wait()

    def transformer_for(self, key: str) -> values.PrefixTransformers | None:
        routes = self._routes
        if not routes:
            return None
        # Keys are /registry/<plural>/… or /registry/<group>/<plural>/….
        parts = key.split("/", 4)
        found = routes.get("/".join(parts[:3]) + "/")
        if found is None and len(parts) > 4:
            found = routes.get("/".join(parts[:4]) + "/")
        return found

    # -- the transformations -----------------------------------------------------------

    def _encode(self, key: str, value: bytes) -> bytes:
        transformer = self.transformer_for(key)
        if transformer is None:
            return value
        try:
            return transformer.to_storage(value, key.encode())
        except values.TransformError as exc:
            raise values.TransformError(exc.reason, key=key) from None

    def decode_value(self, key: str, value: bytes) -> tuple[bytes, bool]:
        """(plain bytes, stale) of a value stored at ``key``."""
        transformer = self.transformer_for(key)
        if transformer is None:
            if value.startswith(values.ENCRYPTED_PREFIX):
                raise values.TransformError(
                    f"the value is encrypted ({values.value_prefix(value)}), but no encryption"
                    " provider is configured for this resource",
                    key=key,
                )
            return value, False
        try:
            return transformer.from_storage(value, key.encode())
        except values.TransformError as exc:
            raise values.TransformError(exc.reason, key=key) from None

    def _decode(self, kv: storage.KeyValue) -> storage.KeyValue:
        plain, stale = self.decode_value(kv.key, kv.value)
        if self._routes:
            self._note(kv.key, kv.mod_revision, stale)
        if plain is kv.value:
            return kv
        return storage.KeyValue(kv.key, plain, kv.create_revision, kv.mod_revision)

    def _note(self, key: str, revision: int, stale: bool) -> None:
        if self.transformer_for(key) is None:
            return
        if not stale:
            if revision >= self._fresh.get(key, 0):
                self._fresh[key] = revision
        elif self._fresh.get(key, 0) <= revision:
            self._fresh.pop(key, None)

    def _decode_event(self, event: storage.Event) -> storage.Event:
        kv = event.kv
        pending = self._pending.get(kv.key) if self._pending else None
        prev = self._decode(event.prev) if event.prev is not None else None
        if event.type is storage.EventType.DELETE:
            new = self._decode(kv)
            if self._fresh.get(kv.key, 0) <= kv.mod_revision:
                self._fresh.pop(kv.key, None)
        elif pending is not None and (pending[0] is kv.value or pending[0] == kv.value):
            new = storage.KeyValue(kv.key, pending[1], kv.create_revision, kv.mod_revision)
            if pending[2] == self._generation:
                self._note(kv.key, kv.mod_revision, False)
        else:
            new = self._decode(kv)
        if new is kv and prev is event.prev:
            return event
        return storage.Event(event.type, new, prev)

    # -- lifecycle and state -----------------------------------------------------------

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    def current_revision(self) -> int:
        return self.inner.current_revision()

    def compacted_revision(self) -> int:
        return self.inner.compacted_revision()

    # -- reads ---------------------------------------------------------------------

    async def refreshed(self) -> bool:
        """After an unreadable value: whether the configuration changed (decode again)."""
        return self.on_unreadable is not None and await self.on_unreadable()

    async def get(self, key: str) -> storage.KeyValue | None:
        kv = await self.inner.get(key)
        if kv is None:
            return None
        try:
            return self._decode(kv)
        except values.TransformError:
            if not await self.refreshed():
                raise
            return self._decode(kv)

    async def list(
        self, prefix: str, *, at_revision: int = 0, limit: int = 0, start_key: str = ""
    ) -> storage.ListResult:
        result = await self.inner.list(
            prefix, at_revision=at_revision, limit=limit, start_key=start_key
        )
        try:
            items = [self._decode(kv) for kv in result.items]
        except values.TransformError:
            if not await self.refreshed():
                raise
            items = [self._decode(kv) for kv in result.items]
        return storage.ListResult(items, result.revision, result.more, result.remaining)

    def watch(self, prefix: str, *, after_revision: int) -> storage.WatchStream:
        return _TransformingStream(self.inner.watch(prefix, after_revision=after_revision), self)

    # -- writes --------------------------------------------------------------------

    async def _write(self, key: str, value: bytes, write: Callable[[bytes], Any]) -> Any:
        generation = self._generation
        stored = self._encode(key, value)
        if stored is not value:
            self._pending[key] = (stored, value, generation)
        self._in_flight[generation] += 1
        try:
            return await write(stored)
        finally:
            left = self._in_flight[generation] - 1
            if left:
                self._in_flight[generation] = left
            else:
                del self._in_flight[generation]
                for waiter in self._drain_waiters:
                    waiter.set()
                self._drain_waiters.clear()
            if stored is not value:
                found = self._pending.get(key)
                if found is not None and found[0] is stored:
                    del self._pending[key]

    async def create(self, key: str, value: bytes) -> int:
        revision: int = await self._write(key, value, lambda v: self.inner.create(key, v))
        return revision

    async def update(self, key: str, value: bytes, *, if_revision: int) -> int:
        revision: int = await self._write(
            key, value, lambda v: self.inner.update(key, v, if_revision=if_revision)
        )
        return revision

    async def delete(self, key: str, *, if_revision: int = 0) -> storage.KeyValue:
        try:
            kv = await self.inner.delete(key, if_revision=if_revision)
        except storage.RevisionMismatchError as exc:
            raise storage.RevisionMismatchError(key, self._decode(exc.current)) from None
        return self._decode(kv)

    async def history(self, key: str) -> builtins.list[history.Revision]:
        """The backend's history of ``key`` with every value decrypted (see
        :mod:`~pilothouse.storage.history`); raises AttributeError without one."""
        inner = self.inner
        if not isinstance(inner, history.HistoryStore):
            raise AttributeError("history")
        out = []
        for rev in await inner.history(key):
            plain, _ = self.decode_value(key, rev.kv.value)
            kv = storage.KeyValue(key, plain, rev.kv.create_revision, rev.kv.mod_revision)
            out.append(history.Revision(kv, rev.deleted, rev.time, rev.origin))
        return out

    async def compact(self, revision: int) -> int:
        return await self.inner.compact(revision)

    # -- re-encryption -------------------------------------------------------------

    async def rewrite_stale(
        self,
        prefix: str,
        *,
        page: int = 500,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[int, int]:
        """Rewrite every value under ``prefix`` that its resource's first transformer
        did not write (an older key, or plain where encryption is now first).

        Returns (values rewritten, values seen); ``progress`` is called after every page.
        """
        rewritten = seen = 0
        start = ""
        while True:
            result = await self.inner.list(prefix, limit=page, start_key=start)
            for kv in result.items:
                seen += 1
                if await self._rewrite_one(kv):
                    rewritten += 1
            if progress is not None:
                progress(rewritten, seen)
            if not result.more or not result.items:
                return rewritten, seen
            start = result.items[-1].key + "\x00"

    async def _rewrite_one(self, kv: storage.KeyValue) -> bool:
        while True:
            transformer = self.transformer_for(kv.key)
            if transformer is None or transformer.written_by_writer(kv.value):
                return False
            plain, _ = self.decode_value(kv.key, kv.value)
            try:
                await self.update(kv.key, plain, if_revision=kv.mod_revision)
                return True
            except storage.KeyNotFoundError:
                return False
            except storage.RevisionMismatchError:
                current = await self.inner.get(kv.key)
                if current is None:
                    return False
                kv = current

    def __getattr__(self, name: str) -> Any:
        # Backend-specific extras (paths, statistics) stay reachable through the wrapper.
        return getattr(self.inner, name)


class _TransformingStream:
    """The inner store's watch stream with every event's values transformed back.

    Transforms lazily in ``__anext__``, so a batch the inner stream has buffered
    is still handed out without yielding to the loop."""

    __slots__ = ("_inner", "_store")

    def __init__(self, inner: storage.WatchStream, store: TransformingStore) -> None:
        self._inner = inner
        self._store = store

    def __aiter__(self) -> _TransformingStream:
        return self

    async def __anext__(self) -> builtins.list[storage.Event]:
        batch = await self._inner.__anext__()
        decode = self._store._decode_event
        try:
            return [decode(event) for event in batch]
        except values.TransformError:
            if not await self._store.refreshed():
                raise
            return [decode(event) for event in batch]

    async def aclose(self) -> None:
        await self._inner.aclose()

    def take_ready(self) -> builtins.list[storage.Event]:
        """The inner stream's delivered events, transformed (see
        :class:`~pilothouse.storage.interface.ReadyStream`); none if the inner stream
        cannot say, or if a value needs keys this server has not loaded yet: the
        events then go back, for ``__anext__`` to refresh the keys and hand them out."""
        inner = self._inner
        if not hasattr(inner, "take_ready"):
            return []
        ready = cast(storage.ReadyStream, inner)
        batch = ready.take_ready()
        if not batch:
            return batch
        decode = self._store._decode_event
        try:
            return [decode(event) for event in batch]
        except values.TransformError:
            inner.give_back(batch)  # type: ignore[attr-defined]
            return []

    def end_now(self) -> None:
        if hasattr(self._inner, "end_now"):
            cast(storage.ReadyStream, self._inner).end_now()


if TYPE_CHECKING:

    def _conforms(store: TransformingStore) -> storage.Store:
        return store

    def _streams(stream: _TransformingStream) -> AsyncIterator[builtins.list[storage.Event]]:
        return stream
