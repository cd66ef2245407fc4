"""The transforming store: ciphertext below it, plain values above it."""

from __future__ import annotations

import asyncio
import pathlib

import pytest

from pilothouse.storage import encrypt, memory, sqlite, transform, value
from pilothouse.storage.interface import EventType, KeyValue, RevisionMismatchError

SECRETS = "/registry/secrets/"
KEY1 = bytes(range(32))
KEY2 = bytes(range(32, 64))
IDENTITY = value.PrefixTransformer(b"", value.IDENTITY, "identity")


def aescbc(*names_and_keys: tuple[str, bytes]) -> dict[str, value.PrefixTransformers]:
    chain = [encrypt.keyed("aescbc", n, k) for n, k in names_and_keys]
    return {SECRETS: value.PrefixTransformers([*chain, IDENTITY])}


@pytest.fixture
async def stores() -> tuple[transform.TransformingStore, memory.MemoryStore]:
    inner = memory.MemoryStore()
    store = transform.TransformingStore(inner, transformers=aescbc(("key1", KEY1)))
    await store.start()
    return store, inner


async def test_values_of_configured_resources_are_encrypted_below_and_plain_above(
    stores: tuple[transform.TransformingStore, memory.MemoryStore],
) -> None:
    store, inner = stores
    rev = await store.create(SECRETS + "ns/s", b'{"data":"v"}')
    await store.create("/registry/configmaps/ns/c", b'{"data":"v"}')
    raw = await inner.get(SECRETS + "ns/s")
    assert raw is not None
    assert raw.value.startswith(b"k8s:enc:aescbc:v1:key1:") and b'"v"' not in raw.value
    assert (await inner.get("/registry/configmaps/ns/c")) == KeyValue(
        "/registry/configmaps/ns/c", b'{"data":"v"}', rev + 1, rev + 1
    )
    assert await store.get(SECRETS + "ns/s") == KeyValue(
        SECRETS + "ns/s", b'{"data":"v"}', rev, rev
    )
    listed = await store.list("/registry/")
    assert [kv.value for kv in listed.items] == [b'{"data":"v"}', b'{"data":"v"}']
    deleted = await store.delete(SECRETS + "ns/s")
    assert deleted.value == b'{"data":"v"}'


async def test_watch_events_are_plain_and_a_writes_own_event_reuses_its_bytes(
    tmp_path: pathlib.Path,
) -> None:
    store = transform.TransformingStore(
        sqlite.SQLiteStore(tmp_path / "state.db", compact_interval=0),
        transformers=aescbc(("key1", KEY1)),
    )
    await store.start()
    stream = store.watch("/registry/", after_revision=store.current_revision())
    body = b'{"data":"first"}'
    # A consumer already waiting (as the watch cache's feeder is) gets the event
    # before the write's caller resumes, while the write is still in flight.
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    created = await store.create(SECRETS + "ns/s", body)
    events = await first
    assert events[0].kv.value is body  # no decryption: the very bytes the caller gave
    await store.update(SECRETS + "ns/s", b'{"data":"second"}', if_revision=created)
    await store.delete(SECRETS + "ns/s")
    async with asyncio.timeout(5):
        while len(events) < 3:
            events.extend(await anext(stream))
    assert [e.type for e in events] == [EventType.CREATE, EventType.UPDATE, EventType.DELETE]
    assert events[0].kv.value == body
    assert events[1].kv.value == b'{"data":"second"}'
    assert events[1].prev is not None and events[1].prev.value == body
    assert events[2].kv.value == b'{"data":"second"}'
    await stream.aclose()
    await store.close()


async def test_ciphertext_nobody_can_read_is_an_error_never_data() -> None:
    inner = memory.MemoryStore()
    writer = transform.TransformingStore(inner, transformers=aescbc(("key1", KEY1)))
    await writer.create(SECRETS + "ns/s", b"{}")
    for transformers in ({}, aescbc(("other", KEY2))):
        reader = transform.TransformingStore(inner, transformers=transformers)
        with pytest.raises(value.TransformError) as info:
            await reader.get(SECRETS + "ns/s")
        assert info.value.key == SECRETS + "ns/s"
        assert "k8s:enc:aescbc:v1:key1" in info.value.reason
        with pytest.raises(value.TransformError):
            await reader.list(SECRETS)


async def test_rewrite_stale_moves_every_value_to_the_first_provider(
    stores: tuple[transform.TransformingStore, memory.MemoryStore],
) -> None:
    store, inner = stores
    for i in range(7):
        await store.create(f"{SECRETS}ns/s{i}", b'{"i":%d}' % i)
    await inner.create(f"{SECRETS}ns/plain", b'{"plain":true}')  # from before encryption
    store.set_transformers(aescbc(("key2", KEY2), ("key1", KEY1)))
    progress: list[tuple[int, int]] = []
    rewritten, seen = await store.rewrite_stale(
        SECRETS, page=3, progress=lambda r, s: progress.append((r, s))
    )
    assert (rewritten, seen) == (8, 8)
    assert progress[-1] == (8, 8) and len(progress) == 3
    for kv in (await inner.list(SECRETS)).items:
        assert kv.value.startswith(b"k8s:enc:aescbc:v1:key2:"), kv.key
    assert (await store.get(f"{SECRETS}ns/s3")) is not None
    assert (await store.get(f"{SECRETS}ns/plain")).value == b'{"plain":true}'  # type: ignore[union-attr]
    # Nothing left to do the second time.
    assert await store.rewrite_stale(SECRETS) == (0, 8)


async def test_rewrite_stale_rereads_a_value_changed_under_it(
    stores: tuple[transform.TransformingStore, memory.MemoryStore],
) -> None:
    store, inner = stores
    rev = await store.create(f"{SECRETS}ns/s", b'{"v":1}')
    stale = await inner.get(f"{SECRETS}ns/s")
    assert stale is not None
    store.set_transformers(aescbc(("key2", KEY2), ("key1", KEY1)))
    # A concurrent writer (another server still on key1) changes it first.
    old_writer = transform.TransformingStore(inner, transformers=aescbc(("key1", KEY1)))
    await old_writer.update(f"{SECRETS}ns/s", b'{"v":2}', if_revision=rev)
    assert await store._rewrite_one(stale)
    now = await inner.get(f"{SECRETS}ns/s")
    assert now is not None and now.value.startswith(b"k8s:enc:aescbc:v1:key2:")
    assert (await store.get(f"{SECRETS}ns/s")).value == b'{"v":2}'  # type: ignore[union-attr]


async def test_a_revision_mismatch_reports_the_current_value_in_plain(
    stores: tuple[transform.TransformingStore, memory.MemoryStore],
) -> None:
    store, _ = stores
    rev = await store.create(f"{SECRETS}ns/s", b'{"v":1}')
    await store.update(f"{SECRETS}ns/s", b'{"v":2}', if_revision=rev)
    with pytest.raises(RevisionMismatchError) as info:
        await store.delete(f"{SECRETS}ns/s", if_revision=rev)
    assert info.value.current.value == b'{"v":2}'


async def test_drain_writes_waits_for_writes_encoded_before_a_switch() -> None:
    gate = asyncio.Event()

    class Slow(memory.MemoryStore):
        async def create(self, key: str, value: bytes) -> int:
            await gate.wait()
            return await super().create(key, value)

    store = transform.TransformingStore(Slow(), transformers=aescbc(("key1", KEY1)))
    write = asyncio.ensure_future(store.create(f"{SECRETS}ns/s", b"{}"))
    await asyncio.sleep(0)
    store.set_transformers(aescbc(("key2", KEY2), ("key1", KEY1)))
    drained = asyncio.ensure_future(store.drain_writes())
    await asyncio.sleep(0.01)
    assert not drained.done()
    gate.set()
    await asyncio.wait_for(drained, 2)
    await write


async def test_a_value_under_a_key_learnt_later_is_read_after_a_refresh() -> None:
    # Another server (writer) encrypts under key2, which this one (reader) lacks: the
    # reader's hook fetches the cluster's configuration and the value decodes then —
    # in reads and in watch events — and stays an error without a hook.
    inner = memory.MemoryStore()
    await inner.start()
    writer = transform.TransformingStore(inner, transformers=aescbc(("key2", KEY2)))
    reader = transform.TransformingStore(inner, transformers=aescbc(("key1", KEY1)))
    stream = reader.watch(SECRETS, after_revision=inner.current_revision())
    await writer.create(SECRETS + "ns/s", b'{"data":"v"}')
    with pytest.raises(value.TransformError):
        await reader.get(SECRETS + "ns/s")
    refreshes = []

    async def learn() -> bool:
        refreshes.append(1)
        reader.set_transformers(aescbc(("key2", KEY2), ("key1", KEY1)))
        return True

    reader.on_unreadable = learn
    events = await asyncio.wait_for(stream.__anext__(), 5)
    assert events[0].kv.value == b'{"data":"v"}'
    got = await reader.get(SECRETS + "ns/s")
    assert got is not None and got.value == b'{"data":"v"}'
    assert refreshes == [1]  # once: the new configuration reads the rest
    await stream.aclose()
    await inner.close()
