"""Object history in the SQLite store: origins, deletes, the retention window, compaction."""

from __future__ import annotations

import asyncio
import pathlib
import sqlite3
import time
from collections.abc import Awaitable, Callable

import pytest

from pilothouse import testing
from pilothouse.storage import encrypt, history, sqlite, transform, value


@pytest.fixture
def db(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "db" / "state.db"


def compacted_past(store: sqlite.SQLiteStore, rev: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return store.compacted_revision() >= rev

    return check


async def test_every_revision_with_its_origin_and_the_delete(db: pathlib.Path) -> None:
    store = sqlite.SQLiteStore(db, compact_interval=0, history_retention=3600)
    await store.start()
    try:
        assert isinstance(store, history.HistoryStore)
        with history.writing_as(history.WriteOrigin("alice", "kubectl", "Update")):
            r1 = await store.create("/registry/configmaps/a/x", b"1")
        with history.writing_as(history.WriteOrigin("bob", "helm", "Apply", "status")):
            r2 = await store.update("/registry/configmaps/a/x", b"2", if_revision=r1)
        await store.create("/registry/configmaps/a/other", b"o")  # no origin: kept empty
        gone = await store.delete("/registry/configmaps/a/x")
        revs = await store.history("/registry/configmaps/a/x")
        assert [(r.kv.mod_revision, r.kv.value, r.deleted) for r in revs] == [
            (r1, b"1", False),
            (r2, b"2", False),
            (gone.mod_revision, b"2", True),  # a delete keeps the last value
        ]
        assert revs[0].origin == history.WriteOrigin("alice", "kubectl", "Update")
        assert revs[1].origin == history.WriteOrigin("bob", "helm", "Apply", "status")
        assert revs[2].origin == history.WriteOrigin()
        now = time.time()
        assert all(now - 10 < r.time <= now for r in revs)
        other = await store.history("/registry/configmaps/a/other")
        assert [r.origin for r in other] == [history.WriteOrigin()]
        assert await store.history("/registry/configmaps/a/none") == []
    finally:
        await store.close()


async def test_compaction_keeps_the_retention_window(db: pathlib.Path) -> None:
    store = sqlite.SQLiteStore(db, compact_interval=0.05, history_retention=1.0)
    await store.start()
    try:
        rev = await store.create("/k", b"0")
        for i in range(1, 4):
            rev = await store.update("/k", str(i).encode(), if_revision=rev)
        await store.create("/gone", b"g")
        await store.delete("/gone")
        await asyncio.sleep(0.5)  # ten compactor ticks, all inside the window
        assert store.compacted_revision() == 0
        assert len(await store.history("/k")) == 4
        assert len(await store.history("/gone")) == 2
        await testing.eventually(compacted_past(store, rev), timeout=5)
        # Past the window: only the live value is left, and its history row with it.
        revs = await store.history("/k")
        assert [(r.kv.value, r.kv.mod_revision) for r in revs] == [(b"3", rev)]
        assert revs[0].time > 0
        assert await store.history("/gone") == []
    finally:
        await store.close()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT count(*) FROM history").fetchone()[0]
        logs = conn.execute("SELECT count(*) FROM log").fetchone()[0]
    assert rows == logs  # the trigger removed every history row whose log row went


async def test_history_off_writes_no_history_and_compacts_as_before(db: pathlib.Path) -> None:
    store = sqlite.SQLiteStore(db, compact_interval=0.05, history_retention=0)
    await store.start()
    try:
        assert store.history_retention == 0
        with history.writing_as(history.WriteOrigin("alice", "m", "Update")):
            rev = await store.create("/k", b"0")
            rev = await store.update("/k", b"1", if_revision=rev)
        await store.create("/z", b"z")  # the tick after this one compacts past /k's update
        await testing.eventually(compacted_past(store, rev), timeout=5)
        assert store.compacted_revision() >= rev
        revs = await store.history("/k")
        assert [(r.kv.value, r.time, r.origin) for r in revs] == [
            (b"1", 0.0, history.WriteOrigin())
        ]
    finally:
        await store.close()


async def test_history_through_encryption_is_decrypted(db: pathlib.Path) -> None:
    chain = [encrypt.keyed("aescbc", "key1", bytes(range(32)))]
    identity = value.PrefixTransformer(b"", value.IDENTITY, "identity")
    inner = sqlite.SQLiteStore(db, compact_interval=0, history_retention=3600)
    store = transform.TransformingStore(
        inner, transformers={"/registry/secrets/": value.PrefixTransformers([*chain, identity])}
    )
    await store.start()
    try:
        rev = await store.create("/registry/secrets/a/s", b'{"data":"v1"}')
        await store.update("/registry/secrets/a/s", b'{"data":"v2"}', if_revision=rev)
        raw = await inner.history("/registry/secrets/a/s")
        assert all(r.kv.value.startswith(b"k8s:enc:aescbc:v1:key1:") for r in raw)
        assert isinstance(store, history.HistoryStore)
        plain = await store.history("/registry/secrets/a/s")
        assert [r.kv.value for r in plain] == [b'{"data":"v1"}', b'{"data":"v2"}']
    finally:
        await store.close()
