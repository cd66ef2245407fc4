"""The watch cache keeps an object a writer offers instead of decoding it again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from pilothouse.api import meta
from pilothouse.apiserver import cacheentry, resourcecache, watchcache
from pilothouse.storage import interface as storage
from pilothouse.storage import memory

PREFIX = "/registry/configmaps/"
KEY = PREFIX + "default/c"


@pytest.fixture
async def setup() -> AsyncIterator[tuple[memory.MemoryStore, watchcache.WatchCache]]:
    store = memory.MemoryStore()
    await store.start()
    cache = watchcache.WatchCache(store, [PREFIX])
    await cache.start()
    yield store, cache
    await cache.stop()
    await store.close()


def _config_map(data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default", "uid": "u"},
        "data": {"k": data},
    }


def _cached(cache: watchcache.WatchCache) -> cacheentry.Entry:
    return cache.resource(PREFIX).objects[KEY]


def _decoded(entry: cacheentry.Entry) -> dict[str, Any]:
    """What decoding the stored value gives, for comparison (key order included)."""
    return cacheentry.decode(
        storage.KeyValue(entry.key, orjson.dumps(_without_rv(entry.obj)), 1, entry.revision)
    ).obj


def _without_rv(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    out["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return out


async def test_an_offered_object_is_kept_as_it_would_be_decoded(
    setup: tuple[memory.MemoryStore, watchcache.WatchCache],
) -> None:
    store, cache = setup
    obj = _config_map("1")
    value = orjson.dumps(obj)
    cache.writing(KEY, value, obj)
    rev = await store.create(KEY, value)
    assert await cache.wait_for(rev)
    entry = _cached(cache)
    assert entry.obj is obj
    assert obj["metadata"]["resourceVersion"] == str(rev)
    assert orjson.dumps(entry.obj) == orjson.dumps(_decoded(entry))
    assert entry.revision == rev
    # An update offered the same way is kept too, with the previous version as prev.
    newer = _config_map("2")
    value = orjson.dumps(newer)
    cache.writing(KEY, value, newer)
    rev2 = await store.update(KEY, value, if_revision=rev)
    assert await cache.wait_for(rev2)
    assert _cached(cache).obj is newer
    event = cache.resource(PREFIX).events[-1]
    assert event.type == cacheentry.MODIFIED and event.prev is entry


async def test_other_bytes_are_decoded_and_the_offer_stays_until_withdrawn(
    setup: tuple[memory.MemoryStore, watchcache.WatchCache],
) -> None:
    store, cache = setup
    obj = _config_map("1")
    offered = orjson.dumps(obj)
    cache.writing(KEY, offered, obj)
    # Bytes that differ from the offer are decoded (an equal copy, as etcd hands back,
    # is adopted: see the next test).
    other = _config_map("other")
    rev = await store.create(KEY, orjson.dumps(other))
    assert await cache.wait_for(rev)
    entry = _cached(cache)
    assert entry.obj is not obj
    assert entry.obj == {**other, "metadata": {**other["metadata"], "resourceVersion": str(rev)}}
    assert "resourceVersion" not in obj["metadata"]  # never touched
    cache.not_written(KEY, bytes(offered))  # another value: the offer stays
    later = _config_map("2")
    cache.writing(KEY, orjson.dumps(later), later)  # a newer offer replaces it
    cache.not_written(KEY, offered)  # the replaced offer is not this one's to withdraw
    cache.writing(KEY, offered, obj)
    cache.not_written(KEY, offered)
    rev2 = await store.update(KEY, offered, if_revision=rev)
    assert await cache.wait_for(rev2)
    assert _cached(cache).obj is not obj  # withdrawn: decoded


async def test_an_equal_copy_of_the_offered_bytes_is_adopted(
    setup: tuple[memory.MemoryStore, watchcache.WatchCache],
) -> None:
    """A backend across the network (etcd) hands back equal bytes, not the same object:
    they encode the offered object all the same, so it is kept, not decoded again."""
    store, cache = setup
    obj = _config_map("1")
    offered = orjson.dumps(obj)
    cache.writing(KEY, offered, obj)
    rev = await store.create(KEY, bytes(bytearray(offered)))
    assert await cache.wait_for(rev)
    assert _cached(cache).obj is obj
    assert obj["metadata"]["resourceVersion"] == str(rev)


async def test_deletes_are_always_decoded(
    setup: tuple[memory.MemoryStore, watchcache.WatchCache],
) -> None:
    store, cache = setup
    obj = _config_map("1")
    value = orjson.dumps(obj)
    rev = await store.create(KEY, value)
    cache.writing(KEY, value, obj)  # the same bytes come back as the deleted value
    deleted = await store.delete(KEY, if_revision=rev)
    assert await cache.wait_for(deleted.mod_revision)
    event = cache.resource(PREFIX).events[-1]
    assert event.type == cacheentry.DELETED and event.entry.obj is not obj
    assert KEY not in cache.resource(PREFIX).objects


async def test_encodings_are_kept_only_inside_the_event_window(
    setup: tuple[memory.MemoryStore, watchcache.WatchCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, cache = setup
    monkeypatch.setattr(resourcecache, "EVENT_WINDOW", 3)
    resource = cache.resource(PREFIX)
    revs = []
    for i in range(5):
        obj = _config_map(str(i))
        obj["metadata"]["name"] = f"c{i}"
        revs.append(await store.create(f"{PREFIX}default/c{i}", orjson.dumps(obj)))
    assert await cache.wait_for(revs[-1])
    entries = [resource.objects[f"{PREFIX}default/c{i}"] for i in range(5)]
    for entry in entries:
        entry.raw()  # what a watch event's fan-out does
    # Only the three in the window keep it.
    assert [e._raw is None for e in entries] == [True, True, False, False, False]
    # One more write: the oldest of them left the window, and its encoding with it;
    # the objects themselves stay cached.
    obj = _config_map("x")
    obj["metadata"]["name"] = "c5"
    assert await cache.wait_for(await store.create(f"{PREFIX}default/c5", orjson.dumps(obj)))
    assert len(resource.events) == 3
    assert [e._raw is None for e in entries] == [True, True, True, False, False]
    assert resource.objects[f"{PREFIX}default/c2"] is entries[2]
    # A LIST's encoding is the same bytes and is not kept.
    first = entries[0]
    assert orjson.loads(first.encode()) == first.obj
    assert first.encode() == orjson.dumps(meta.wire_order(first.obj))
    assert first._raw is None
    assert entries[4].encode() is entries[4].raw()


def _with_managed_fields() -> dict[str, Any]:
    obj = _config_map("v")
    obj["metadata"] = {
        "name": "c",
        "namespace": "default",
        "uid": "u",
        "creationTimestamp": "2026-12-06T12:00:00Z",
        "managedFields": [
            {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:data": {"f:k": {}}}}
        ],
        "labels": {"app": "x"},  # out of upstream's order: answers reorder it as they did
    }
    return obj


async def test_managed_fields_are_kept_apart_and_every_answer_is_unchanged(
    setup: tuple[memory.MemoryStore, watchcache.WatchCache],
) -> None:
    store, cache = setup
    written = _with_managed_fields()
    value = orjson.dumps(written)
    await store.create(KEY, value)
    assert await cache.wait_for(store.current_revision())
    entry = _cached(cache)
    # What the process's informers share has none; the entry keeps them encoded.
    assert "managedFields" not in entry.obj["metadata"]
    assert entry.managed == orjson.dumps(written["metadata"]["managedFields"])
    # Put back where they were: the whole object, key order and all, and its encodings
    # byte for byte what encoding the decoded stored value gives.
    full = orjson.loads(value)
    full["metadata"]["resourceVersion"] = str(entry.revision)
    assert orjson.dumps(entry.whole()) == orjson.dumps(full)
    assert entry.whole() is not entry.whole()  # a fresh copy each time: callers may keep it
    expected = orjson.dumps(meta.wire_order(full))
    assert entry.encode() == expected and entry.raw() == expected
    assert b'"managedFields":[{"manager":"kubectl"' in expected


async def test_an_offered_object_keeps_its_managed_fields_for_the_writers_answer(
    setup: tuple[memory.MemoryStore, watchcache.WatchCache],
) -> None:
    store, cache = setup
    written = _with_managed_fields()
    value = orjson.dumps(written)
    cache.writing(KEY, value, written)
    rev = await store.create(KEY, value)
    assert await cache.wait_for(rev)
    entry = _cached(cache)
    # The writer answers with its object, managedFields in place; the cache holds the
    # same values (not a decoding) without them.
    assert written["metadata"]["managedFields"][0]["manager"] == "kubectl"
    assert "managedFields" not in entry.obj["metadata"]
    assert entry.obj["data"] is written["data"]
    assert entry.obj["metadata"]["labels"] is written["metadata"]["labels"]
    assert orjson.dumps(entry.whole()) == orjson.dumps(written)
    assert entry.encode() == orjson.dumps(meta.wire_order(written))


def test_answers_carry_managed_fields_in_place_byte_for_byte(api: Any, namespace: str) -> None:
    # Two managers (an apply, then an update), so managedFields has two entries.
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mf"}, "data": {"a": "1"}}
    resp = api.request(
        "PATCH",
        f"{path}/mf?fieldManager=applier",
        raw=orjson.dumps(body),
        content_type="application/apply-patch+yaml",
    )
    assert resp.status == 201, resp.data
    status, live = api.json("GET", f"{path}/mf")
    live["data"]["b"] = "2"
    status, _ = api.json("PUT", f"{path}/mf?fieldManager=updater", live)
    assert status == 200
    got = api.request("GET", f"{path}/mf").data
    obj = orjson.loads(got)
    md = list(obj["metadata"])
    assert md.index("managedFields") == md.index("creationTimestamp") + 1  # upstream's place
    assert [m["manager"] for m in obj["metadata"]["managedFields"]] == ["applier", "updater"]
    # The same bytes in a LIST item and in a watch's initial event.
    listed = orjson.loads(api.request("GET", path + "?fieldSelector=metadata.name=mf").data)
    assert orjson.dumps(listed["items"][0]) == got.rstrip(b"\n")
    watch = api.request(
        "GET", path + "?watch=true&fieldSelector=metadata.name=mf&timeoutSeconds=1"
    ).data
    event = orjson.loads(watch.splitlines()[0])
    assert orjson.dumps(event["object"]) == got.rstrip(b"\n")


async def test_an_offered_encoding_of_the_managed_fields_is_kept_as_is(
    setup: tuple[memory.MemoryStore, watchcache.WatchCache],
) -> None:
    store, cache = setup
    written = _with_managed_fields()
    managed = orjson.dumps(written["metadata"]["managedFields"])
    value = orjson.dumps(written)
    cache.writing(KEY, value, written, managed=managed)
    rev = await store.create(KEY, value)
    assert await cache.wait_for(rev)
    entry = _cached(cache)
    assert entry.managed is managed  # not encoded again
    assert "managedFields" not in entry.obj["metadata"]
    assert list(entry.whole()["metadata"]) == list(written["metadata"])
    assert orjson.dumps(entry.whole()) == orjson.dumps(written)


async def test_events_reach_a_prefix_added_after_its_keys_were_routed_nowhere(
    setup: tuple[memory.MemoryStore, watchcache.WatchCache],
) -> None:
    store, cache = setup
    widgets = "/registry/example.com/widgets/"
    value = orjson.dumps(_config_map("w"))
    rev = await store.create(widgets + "default/a", value)  # cached by no one yet
    assert await cache.wait_for(rev)
    added = await cache.add_prefix(widgets)
    rev = await store.create(widgets + "default/b", value)
    assert await cache.wait_for(rev)
    assert sorted(added.objects) == [widgets + "default/a", widgets + "default/b"]
    # A nested prefix takes its keys from the shorter one, in the same directory too.
    nested = await cache.add_prefix(widgets + "default/")
    rev = await store.create(widgets + "default/c", value)
    assert await cache.wait_for(rev)
    assert widgets + "default/c" in nested.objects
    assert widgets + "default/c" not in added.objects
    cache.remove_prefix(widgets + "default/")
    rev = await store.create(widgets + "default/d", value)
    assert await cache.wait_for(rev)
    assert widgets + "default/d" in added.objects


class _HandFed:
    """A ready stream fed by the test the way SQLite's commits feed theirs: events
    pushed wake the consumer, and ``take_ready`` hands them out without waiting."""

    def __init__(self) -> None:
        self.pending: list[storage.Event] = []
        self.waiter: asyncio.Future[None] | None = None
        self.ended = False
        self.batches_iterated = 0

    def __aiter__(self) -> _HandFed:
        return self

    async def __anext__(self) -> list[storage.Event]:
        while not self.pending:
            if self.ended:
                raise StopAsyncIteration
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        batch, self.pending = self.pending, []
        self.batches_iterated += 1
        return batch

    async def aclose(self) -> None:
        self.end_now()

    def push(self, event: storage.Event) -> None:
        self.pending.append(event)
        self._wake()

    def take_ready(self) -> list[storage.Event]:
        batch, self.pending = self.pending, []
        return batch

    def end_now(self) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class _HandFedStore(memory.MemoryStore):
    """The memory store, its watch replaced by a hand-fed stream."""

    def __init__(self) -> None:
        super().__init__()
        self.stream = _HandFed()

    def watch(self, prefix: str, *, after_revision: int) -> Any:  # type: ignore[override]
        return self.stream


@pytest.fixture
async def hand_fed() -> AsyncIterator[tuple[_HandFedStore, watchcache.WatchCache]]:
    store = _HandFedStore()
    await store.start()
    cache = watchcache.WatchCache(store, [PREFIX])
    await cache.start()
    await asyncio.sleep(0)  # the feed waits on its stream
    yield store, cache
    await cache.stop()
    await store.close()


def _created(rev: int, data: str) -> storage.Event:
    kv = storage.KeyValue(KEY, orjson.dumps(_config_map(data)), rev, rev)
    return storage.Event(storage.EventType.CREATE, kv, None)


def _finished_at_once(coro: Any) -> Any:
    """Run ``coro``'s first step: its result if it finished without suspending."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("it waited for the loop")


async def test_a_read_applies_delivered_events_itself_instead_of_waiting_for_the_feed(
    hand_fed: tuple[_HandFedStore, watchcache.WatchCache],
) -> None:
    store, cache = hand_fed
    watch = cache.resource(PREFIX)
    seen = len(watch.events)
    # A commit delivered its event; the feed has not had its turn yet.
    rev = await store.create(KEY, orjson.dumps(_config_map("1")))
    store.stream.push(_created(rev, "1"))
    assert cache.revision < rev
    # A client's read needs it: applied now, in this step, not a loop turn later.
    assert _finished_at_once(cache.consistent(linearizable=True)) is None
    assert cache.revision == rev
    assert _cached(cache).obj["data"] == {"k": "1"}
    assert len(watch.events) == seen + 1
    # The feed then finds nothing pending and nothing is applied twice.
    for _ in range(3):
        await asyncio.sleep(0)
    assert store.stream.batches_iterated == 0
    assert len(watch.events) == seen + 1
    # Later events still come through the feed, in order.
    store.stream.push(_created(rev + 1, "2"))
    assert await cache.wait_for(rev + 1)
    assert _cached(cache).obj["data"] == {"k": "2"}


async def test_a_read_waits_for_the_feed_when_the_stream_cannot_hand_out_events(
    setup: tuple[memory.MemoryStore, watchcache.WatchCache],
) -> None:
    store, cache = setup  # the memory store's stream has no take_ready
    rev = await store.create(KEY, orjson.dumps(_config_map("1")))
    assert cache.revision < rev
    waiting = cache.consistent(linearizable=True)
    with pytest.raises(AssertionError, match="waited"):
        _finished_at_once(waiting)
    assert await cache.wait_for(rev)
    assert _cached(cache).obj["data"] == {"k": "1"}


async def test_a_delivered_event_that_cannot_be_applied_restarts_the_feed_from_a_listing(
    hand_fed: tuple[_HandFedStore, watchcache.WatchCache],
) -> None:
    store, cache = hand_fed
    rev = await store.create(KEY, orjson.dumps(_config_map("1")))
    broken = storage.KeyValue(KEY, b"{not json", rev, rev)
    store.stream.push(storage.Event(storage.EventType.CREATE, broken, None))
    store.stream = _HandFed()  # what the restarted feed will watch
    # The read applies it, fails, ends the stream; the feed lists again.
    await asyncio.wait_for(cache.consistent(linearizable=True), 10)
    assert cache.resyncs == 1
    assert _cached(cache).obj["data"] == {"k": "1"}


async def test_a_writes_own_read_waits_for_the_feed_to_batch_what_was_delivered(
    hand_fed: tuple[_HandFedStore, watchcache.WatchCache],
) -> None:
    store, cache = hand_fed
    rev = await store.create(KEY, orjson.dumps(_config_map("1")))
    store.stream.push(_created(rev, "1"))
    with pytest.raises(AssertionError, match="waited"):
        _finished_at_once(cache.consistent())  # an update's read of the current object
    assert await cache.wait_for(rev)
    assert store.stream.batches_iterated == 1  # the feed applied it
