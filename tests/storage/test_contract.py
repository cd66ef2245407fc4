"""The store contract: every backend must pass this suite unchanged."""

from __future__ import annotations

import asyncio
import pathlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from pilothouse.storage import memory, sqlite
from pilothouse.storage.etcd import client as etcd_client
from pilothouse.storage.etcd import store as etcd_store
from pilothouse.storage.interface import (
    CompactedError,
    Event,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RevisionMismatchError,
    Store,
    StoreClosedError,
)

BACKENDS: dict[str, Callable[[pathlib.Path], Store]] = {
    "memory": lambda _: memory.MemoryStore(),
    "sqlite": lambda tmp: sqlite.SQLiteStore(tmp / "state.db", compact_interval=0),
}


def etcd_backend(endpoint: str) -> Store:
    """A store on the session's real etcd, under a prefix of its own."""
    return etcd_store.EtcdStore(
        etcd_client.parse_endpoints(endpoint),
        prefix=f"/test-{uuid.uuid4().hex[:12]}",
        compact_interval=0,
    )


@pytest.fixture(params=[*sorted(BACKENDS), "etcd"])
async def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> AsyncIterator[Store]:
    if request.param == "etcd":
        etcd: Any = request.getfixturevalue("etcd_server")
        s = etcd_backend(etcd.endpoint)
    else:
        s = BACKENDS[request.param](tmp_path)
    await s.start()
    yield s
    await s.close()


async def collect(stream: AsyncIterator[list[Event]], count: int) -> list[Event]:
    """The next ``count`` events (fails if more arrive in the last batch)."""
    events: list[Event] = []
    async with asyncio.timeout(5):
        while len(events) < count:
            events.extend(await anext(stream))
    assert len(events) == count, events
    return events


def take_buffered(stream: AsyncIterator[list[Event]]) -> list[Event] | None:
    """The stream's next batch if it is already buffered (obtained without yielding to
    the event loop), else None."""
    step: Awaitable[list[Event]] = anext(stream)
    coro = step.__await__()
    try:
        coro.send(None)
    except StopIteration as done:
        result: list[Event] = done.value
        return result
    coro.close()
    return None


def brief(events: list[Event]) -> list[tuple[EventType, str, bytes, int]]:
    return [(e.type, e.kv.key, e.kv.value, e.revision) for e in events]


# -- writes and reads ---------------------------------------------------------------


async def test_create_then_get(store: Store) -> None:
    rev = await store.create("/k/a", b"one")
    assert rev > 0
    assert store.current_revision() == rev
    assert await store.get("/k/a") == KeyValue("/k/a", b"one", rev, rev)
    assert await store.get("/k/missing") is None


async def test_create_existing_key_fails(store: Store) -> None:
    rev = await store.create("/k/a", b"one")
    with pytest.raises(KeyExistsError) as info:
        await store.create("/k/a", b"two")
    assert info.value.key == "/k/a"
    assert await store.get("/k/a") == KeyValue("/k/a", b"one", rev, rev)
    assert store.current_revision() == rev  # a failed write takes no revision


async def test_create_after_delete_starts_a_new_life(store: Store) -> None:
    first = await store.create("/k/a", b"one")
    await store.delete("/k/a")
    again = await store.create("/k/a", b"two")
    assert again > first
    assert await store.get("/k/a") == KeyValue("/k/a", b"two", again, again)


async def test_update_checks_the_revision(store: Store) -> None:
    created = await store.create("/k/a", b"v1")
    updated = await store.update("/k/a", b"v2", if_revision=created)
    assert updated > created
    assert await store.get("/k/a") == KeyValue("/k/a", b"v2", created, updated)

    with pytest.raises(RevisionMismatchError) as info:
        await store.update("/k/a", b"stale", if_revision=created)
    assert info.value.current == KeyValue("/k/a", b"v2", created, updated)
    assert store.current_revision() == updated

    forced = await store.update("/k/a", b"v3", if_revision=0)
    assert forced > updated
    assert await store.get("/k/a") == KeyValue("/k/a", b"v3", created, forced)


async def test_update_and_delete_of_missing_key(store: Store) -> None:
    with pytest.raises(KeyNotFoundError):
        await store.update("/k/none", b"x", if_revision=0)
    with pytest.raises(KeyNotFoundError):
        await store.delete("/k/none")
    rev = await store.create("/k/gone", b"x")
    await store.delete("/k/gone", if_revision=rev)
    with pytest.raises(KeyNotFoundError):
        await store.update("/k/gone", b"y", if_revision=rev)
    with pytest.raises(KeyNotFoundError):
        await store.delete("/k/gone", if_revision=0)


async def test_delete_checks_the_revision(store: Store) -> None:
    created = await store.create("/k/a", b"v1")
    updated = await store.update("/k/a", b"v2", if_revision=created)
    with pytest.raises(RevisionMismatchError) as info:
        await store.delete("/k/a", if_revision=created)
    assert info.value.current.mod_revision == updated
    assert (await store.get("/k/a")) is not None

    deleted = await store.delete("/k/a", if_revision=updated)
    assert deleted.key == "/k/a"
    assert deleted.value == b"v2"
    assert deleted.create_revision == created
    assert deleted.mod_revision > updated
    assert deleted.mod_revision == store.current_revision()
    assert await store.get("/k/a") is None

    await store.create("/k/b", b"x")
    await store.update("/k/b", b"y", if_revision=0)
    unconditional = await store.delete("/k/b", if_revision=0)
    assert unconditional.value == b"y"


async def test_revisions_are_global_and_strictly_increasing(store: Store) -> None:
    revisions = [await store.create(f"/r/{i}", b"x") for i in range(5)]
    revisions.append(await store.update("/r/0", b"y", if_revision=0))
    revisions.append((await store.delete("/r/1")).mod_revision)
    revisions.append(await store.create("/other/1", b"x"))
    assert revisions == sorted(set(revisions))
    assert store.current_revision() == revisions[-1]


async def test_concurrent_creates_all_succeed_with_distinct_revisions(store: Store) -> None:
    revisions = await asyncio.gather(*(store.create(f"/c/{i:02}", b"x") for i in range(50)))
    assert len(set(revisions)) == 50
    assert store.current_revision() == max(revisions)
    listed = await store.list("/c/")
    assert sorted(kv.mod_revision for kv in listed.items) == sorted(revisions)


# -- list ---------------------------------------------------------------------------


async def test_list_respects_prefix_boundaries(store: Store) -> None:
    for key in ["/a", "/a/1", "/a/2", "/a/2/x", "/ab/1", "/a0", "/b/1"]:
        await store.create(key, key.encode())
    keys = [kv.key for kv in (await store.list("/a/")).items]
    assert keys == ["/a/1", "/a/2", "/a/2/x"]
    assert [kv.key for kv in (await store.list("/ab/")).items] == ["/ab/1"]
    everything = await store.list("")
    assert [kv.key for kv in everything.items] == sorted(
        ["/a", "/a/1", "/a/2", "/a/2/x", "/ab/1", "/a0", "/b/1"]
    )
    assert everything.revision == store.current_revision()
    assert (await store.list("/zzz/")).items == []


async def test_list_pages_with_limit_and_start_key(store: Store) -> None:
    for i in range(10):
        await store.create(f"/p/{i}", str(i).encode())
    await store.create("/q/0", b"outside")

    page = await store.list("/p/", limit=3)
    assert [kv.key for kv in page.items] == ["/p/0", "/p/1", "/p/2"]
    assert (page.more, page.remaining) == (True, 7)

    page = await store.list("/p/", limit=3, start_key="/p/2\x00")
    assert [kv.key for kv in page.items] == ["/p/3", "/p/4", "/p/5"]
    assert (page.more, page.remaining) == (True, 4)

    page = await store.list("/p/", limit=4, start_key="/p/6")  # start_key is inclusive
    assert [kv.key for kv in page.items] == ["/p/6", "/p/7", "/p/8", "/p/9"]
    assert (page.more, page.remaining) == (False, 0)

    page = await store.list("/p/", limit=100)
    assert len(page.items) == 10
    assert (page.more, page.remaining) == (False, 0)

    page = await store.list("/p/", start_key="/a")  # before the prefix: from its start
    assert len(page.items) == 10


async def test_list_at_older_revisions_reconstructs_the_state(store: Store) -> None:
    model: dict[str, KeyValue] = {}
    history: dict[int, dict[str, KeyValue]] = {}

    async def create(key: str, value: bytes) -> None:
        rev = await store.create(key, value)
        model[key] = KeyValue(key, value, rev, rev)
        history[rev] = dict(model)

    async def update(key: str, value: bytes) -> None:
        rev = await store.update(key, value, if_revision=0)
        model[key] = KeyValue(key, value, model[key].create_revision, rev)
        history[rev] = dict(model)

    async def delete(key: str) -> None:
        rev = (await store.delete(key)).mod_revision
        del model[key]
        history[rev] = dict(model)

    await create("/h/a", b"a1")
    await create("/h/b", b"b1")
    await create("/x/outside", b"o")
    await update("/h/a", b"a2")
    await delete("/h/b")
    await create("/h/c", b"c1")
    await create("/h/b", b"b2")  # a new life for a deleted key
    await update("/h/c", b"c2")
    await delete("/h/a")
    await update("/h/b", b"b3")

    for rev, state in history.items():
        listed = await store.list("/h/", at_revision=rev)
        expected = [state[k] for k in sorted(state) if k.startswith("/h/")]
        assert listed.items == expected, rev
        assert listed.revision == rev
        page = await store.list("/h/", at_revision=rev, limit=1)
        assert page.items == expected[:1]
        assert page.remaining == max(len(expected) - 1, 0)


async def test_list_at_compacted_or_future_revision_fails(store: Store) -> None:
    first = await store.create("/l/a", b"1")
    second = await store.update("/l/a", b"2", if_revision=first)
    third = await store.create("/l/b", b"3")
    assert await store.compact(second) == second
    assert store.compacted_revision() == second
    with pytest.raises(CompactedError) as info:
        await store.list("/l/", at_revision=first)
    assert (info.value.requested, info.value.compacted) == (first, second)
    at_compacted = await store.list("/l/", at_revision=second)
    assert at_compacted.items == [KeyValue("/l/a", b"2", first, second)]
    assert len((await store.list("/l/", at_revision=third)).items) == 2
    with pytest.raises(FutureRevisionError):
        await store.list("/l/", at_revision=third + 1)


async def test_compaction_keeps_live_keys_and_clamps(store: Store) -> None:
    a = await store.create("/m/a", b"1")
    b = await store.create("/m/b", b"1")
    a2 = await store.update("/m/a", b"2", if_revision=a)
    gone = await store.delete("/m/b")
    now = store.current_revision()
    assert await store.compact(now + 100) == now
    assert await store.compact(1) == now  # never goes back
    assert await store.get("/m/a") == KeyValue("/m/a", b"2", a, a2)
    assert await store.get("/m/b") is None
    assert (await store.list("/m/")).items == [KeyValue("/m/a", b"2", a, a2)]
    assert gone.mod_revision == now
    rev = await store.create("/m/c", b"1")
    assert rev > now  # a compacted-away tombstone never frees its revision
    assert b < rev


# -- watch --------------------------------------------------------------------------


async def test_watch_from_current_sees_changes_with_prev_values(store: Store) -> None:
    stream = store.watch("/w/", after_revision=store.current_revision())
    created = await store.create("/w/a", b"v1")
    updated = await store.update("/w/a", b"v2", if_revision=created)
    deleted = await store.delete("/w/a")
    events = await collect(stream, 3)

    assert events[0] == Event(EventType.CREATE, KeyValue("/w/a", b"v1", created, created), None)
    assert events[1] == Event(
        EventType.UPDATE,
        KeyValue("/w/a", b"v2", created, updated),
        KeyValue("/w/a", b"v1", created, created),
    )
    assert events[2] == Event(
        EventType.DELETE,
        KeyValue("/w/a", b"v2", created, deleted.mod_revision),
        KeyValue("/w/a", b"v2", created, updated),
    )
    assert events[2].revision == deleted.mod_revision


async def test_watch_filters_by_prefix(store: Store) -> None:
    start = store.current_revision()
    stream = store.watch("/a/", after_revision=start)
    everything = store.watch("", after_revision=start)
    await store.create("/ab/1", b"no")
    await store.create("/a", b"no")
    inside = await store.create("/a/1", b"yes")
    await store.create("/b/1", b"no")
    last = await store.create("/a/2", b"yes")
    events = await collect(stream, 2)
    assert [(e.kv.key, e.revision) for e in events] == [("/a/1", inside), ("/a/2", last)]
    assert len(await collect(everything, 5)) == 5
    # The same from the history rather than live.
    events = await collect(store.watch("/a/", after_revision=start), 2)
    assert [(e.kv.key, e.revision) for e in events] == [("/a/1", inside), ("/a/2", last)]
    assert len(await collect(store.watch("", after_revision=start), 5)) == 5


async def test_watch_catches_up_then_goes_live_without_gap_or_duplicate(store: Store) -> None:
    start = await store.create("/w/0", b"before")
    expected = []
    for i in range(1, 6):
        await store.create("/elsewhere/" + str(i), b"x")
        rev = await store.create(f"/w/{i}", b"backlog")
        expected.append((EventType.CREATE, f"/w/{i}", b"backlog", rev))
    rev = await store.update("/w/1", b"backlog2", if_revision=0)
    expected.append((EventType.UPDATE, "/w/1", b"backlog2", rev))

    stream = store.watch("/w/", after_revision=start)
    # Written after the watch began but before anything was read from it.
    for i in range(6, 9):
        rev = await store.create(f"/w/{i}", b"live")
        expected.append((EventType.CREATE, f"/w/{i}", b"live", rev))
    deleted = await store.delete("/w/2")
    expected.append((EventType.DELETE, "/w/2", b"backlog", deleted.mod_revision))
    events = await collect(stream, len(expected))
    assert brief(events) == expected

    # Nothing more is pending: the next event is the next write.
    rev = await store.create("/w/sentinel", b"s")
    assert brief(await collect(stream, 1)) == [(EventType.CREATE, "/w/sentinel", b"s", rev)]


async def test_watch_backlog_events_carry_prev_values(store: Store) -> None:
    start = store.current_revision()
    created = await store.create("/w/a", b"v1")
    updated = await store.update("/w/a", b"v2", if_revision=created)
    await store.delete("/w/a")
    events = await collect(store.watch("/w/", after_revision=start), 3)
    assert [e.prev for e in events] == [
        None,
        KeyValue("/w/a", b"v1", created, created),
        KeyValue("/w/a", b"v2", created, updated),
    ]
    assert events[2].kv.value == b"v2"


async def test_concurrent_writes_reach_a_watcher_once_in_order(store: Store) -> None:
    stream = store.watch("/c/", after_revision=store.current_revision())
    revisions = await asyncio.gather(*(store.create(f"/c/{i}", b"x") for i in range(50)))
    events = await collect(stream, 50)
    assert [e.revision for e in events] == sorted(revisions)


async def test_events_reach_watchers_before_the_write_returns(store: Store) -> None:
    stream = store.watch("/e/", after_revision=store.current_revision())
    created = await store.create("/e/a", b"1")
    assert brief(take_buffered(stream) or []) == [(EventType.CREATE, "/e/a", b"1", created)]
    updated = await store.update("/e/a", b"2", if_revision=created)
    assert brief(take_buffered(stream) or []) == [(EventType.UPDATE, "/e/a", b"2", updated)]
    deleted = await store.delete("/e/a")
    assert brief(take_buffered(stream) or []) == [
        (EventType.DELETE, "/e/a", b"2", deleted.mod_revision)
    ]


async def test_watch_checks_revisions_when_called(store: Store) -> None:
    first = await store.create("/w/a", b"1")
    second = await store.update("/w/a", b"2", if_revision=first)
    await store.compact(second)
    with pytest.raises(CompactedError):
        store.watch("/w/", after_revision=first)
    with pytest.raises(CompactedError):
        store.watch("/w/", after_revision=0)
    with pytest.raises(FutureRevisionError):
        store.watch("/w/", after_revision=second + 1)


async def test_watch_from_the_compacted_revision_still_has_prev_values(store: Store) -> None:
    created = await store.create("/w/a", b"1")
    other = await store.create("/w/b", b"1")
    await store.delete("/w/b")
    compacted = await store.compact(store.current_revision())
    updated = await store.update("/w/a", b"2", if_revision=created)
    events = await collect(store.watch("/w/", after_revision=compacted), 1)
    assert events == [
        Event(
            EventType.UPDATE,
            KeyValue("/w/a", b"2", created, updated),
            KeyValue("/w/a", b"1", created, created),
        )
    ]
    assert other < compacted


async def test_aclose_ends_a_watch(store: Store) -> None:
    stream = store.watch("/w/", after_revision=store.current_revision())
    await store.create("/w/a", b"1")
    await stream.aclose()  # type: ignore[attr-defined]
    await store.create("/w/b", b"1")
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_close_ends_watchers_with_store_closed(store: Store) -> None:
    waiting = store.watch("/w/", after_revision=store.current_revision())
    buffered = store.watch("/w/", after_revision=store.current_revision())
    reader = asyncio.ensure_future(anext(waiting))
    rev = await store.create("/w/a", b"1")
    assert [e.revision for e in await reader] == [rev]
    reader = asyncio.ensure_future(anext(waiting))
    await asyncio.sleep(0)
    await store.close()
    with pytest.raises(StoreClosedError):
        await asyncio.wait_for(reader, 5)
    # Events already given to a watcher are still handed out before the error.
    assert [e.revision for e in await collect(buffered, 1)] == [rev]
    with pytest.raises(StoreClosedError):
        await anext(buffered)


async def test_calls_after_close_fail(store: Store) -> None:
    rev = await store.create("/k/a", b"1")
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.create("/k/b", b"1")
    with pytest.raises(StoreClosedError):
        await store.update("/k/a", b"2", if_revision=rev)
    with pytest.raises(StoreClosedError):
        await store.delete("/k/a")
    with pytest.raises(StoreClosedError):
        await store.get("/k/a")
    with pytest.raises(StoreClosedError):
        await store.list("/k/")
    with pytest.raises(StoreClosedError):
        store.watch("/k/", after_revision=rev)
    with pytest.raises(StoreClosedError):
        await store.compact(rev)
    await store.close()  # closing twice is harmless
