"""SQLite-only behaviour: durability, batching, chunked compaction, catch-up from the log."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from pilothouse import looplanes
from pilothouse.storage import sqlite
from pilothouse.storage.interface import (
    CompactedError,
    Event,
    EventType,
    KeyValue,
    StoreError,
)


@pytest.fixture
def db(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "db" / "state.db"


async def open_store(path: pathlib.Path, **options: float) -> sqlite.SQLiteStore:
    options.setdefault("compact_interval", 0)
    store = sqlite.SQLiteStore(path, **options)  # type: ignore[arg-type]
    await store.start()
    return store


async def collect(stream: AsyncIterator[list[Event]], count: int) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(10):
        while len(events) < count:
            events.extend(await anext(stream))
    assert len(events) == count
    return events


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition``: what it watches is changed by the store's threads, which
    offer nothing to await."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.001)


def log_rows(path: pathlib.Path) -> list[tuple[int, str, int]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT revision, key, deleted FROM log ORDER BY revision").fetchall()


async def test_state_and_revisions_survive_reopen(db: pathlib.Path) -> None:
    store = await open_store(db)
    a = await store.create("/k/a", b"1")
    a2 = await store.update("/k/a", b"2", if_revision=a)
    b = await store.create("/k/b", b"1")
    gone = await store.delete("/k/b")
    last = store.current_revision()
    await store.close()

    store = await open_store(db)
    try:
        assert store.current_revision() == last == gone.mod_revision
        assert await store.get("/k/a") == KeyValue("/k/a", b"2", a, a2)
        assert await store.get("/k/b") is None
        assert (await store.list("/k/", at_revision=b)).items == [
            KeyValue("/k/a", b"2", a, a2),
            KeyValue("/k/b", b"1", b, b),
        ]
        assert await store.create("/k/c", b"1") == last + 1
    finally:
        await store.close()


async def test_revision_of_a_compacted_tombstone_is_never_reused(db: pathlib.Path) -> None:
    store = await open_store(db)
    await store.create("/k/a", b"1")
    gone = await store.delete("/k/a")
    await store.compact(gone.mod_revision)
    assert log_rows(db) == []  # the tombstone and its predecessor are gone
    await store.close()

    store = await open_store(db)
    try:
        assert store.current_revision() == gone.mod_revision
        assert store.compacted_revision() == gone.mod_revision
        assert await store.create("/k/a", b"2") == gone.mod_revision + 1
    finally:
        await store.close()


async def test_compaction_persists_across_reopen(db: pathlib.Path) -> None:
    store = await open_store(db)
    first = await store.create("/k/a", b"1")
    second = await store.update("/k/a", b"2", if_revision=first)
    await store.create("/k/b", b"1")
    await store.compact(second)
    await store.close()

    store = await open_store(db)
    try:
        assert store.compacted_revision() == second
        with pytest.raises(CompactedError):
            await store.list("/k/", at_revision=first)
        with pytest.raises(CompactedError):
            store.watch("/k/", after_revision=first)
        assert [kv.key for kv in (await store.list("/k/", at_revision=second)).items] == ["/k/a"]
    finally:
        await store.close()


async def test_watch_catches_up_from_the_log_after_reopen(db: pathlib.Path) -> None:
    store = await open_store(db)
    start = await store.create("/w/0", b"x")
    a = await store.create("/w/a", b"1")
    a2 = await store.update("/w/a", b"2", if_revision=a)
    await store.create("/other/1", b"x")
    gone = await store.delete("/w/a")
    await store.close()

    store = await open_store(db, watch_chunk=2)  # several backlog reads
    try:
        stream = store.watch("/w/", after_revision=start)
        live = await store.create("/w/b", b"live")
        events = await collect(stream, 4)
        assert events == [
            Event(EventType.CREATE, KeyValue("/w/a", b"1", a, a), None),
            Event(
                EventType.UPDATE,
                KeyValue("/w/a", b"2", a, a2),
                KeyValue("/w/a", b"1", a, a),
            ),
            Event(
                EventType.DELETE,
                KeyValue("/w/a", b"2", a, gone.mod_revision),
                KeyValue("/w/a", b"2", a, a2),
            ),
            Event(EventType.CREATE, KeyValue("/w/b", b"live", live, live), None),
        ]
    finally:
        await store.close()


async def test_long_backlog_with_concurrent_writers_has_no_gap_or_duplicate(
    db: pathlib.Path,
) -> None:
    store = await open_store(db, watch_chunk=50)
    try:
        start = store.current_revision()
        for i in range(500):
            await store.create(f"/w/{i:04}", b"x")

        async def write_more() -> list[int]:
            return [await store.create(f"/w/late{i:04}", b"y") for i in range(200)]

        stream = store.watch("/w/", after_revision=start)
        writer = asyncio.create_task(write_more())
        events = await collect(stream, 700)
        late = await writer
        revisions = [e.revision for e in events]
        assert revisions == sorted(set(revisions))
        assert revisions[-200:] == late
    finally:
        await store.close()


async def test_backlog_overtaken_by_compaction_fails_with_compacted(db: pathlib.Path) -> None:
    store = await open_store(db, watch_chunk=10)
    try:
        for i in range(50):
            await store.create(f"/w/{i:02}", b"x")
        stream = store.watch("/w/", after_revision=0)
        assert len(await anext(stream)) == 10
        await store.compact(30)
        with pytest.raises(CompactedError):
            await anext(stream)
    finally:
        await store.close()


async def test_concurrent_creates_share_commits(db: pathlib.Path) -> None:
    store = await open_store(db)
    try:
        revisions = await asyncio.gather(*(store.create(f"/b/{i:05}", b"x") for i in range(2000)))
        assert sorted(revisions) == list(range(1, 2001))
        assert store.writes == 2000
        # One fsync'd transaction per write would be 2,000 commits.
        assert store.commits <= 100, store.commits
        listed = await store.list("/b/", limit=1)
        assert listed.remaining == 1999
    finally:
        await store.close()


async def test_a_batch_carries_any_bytes_and_any_key_exactly(db: pathlib.Path) -> None:
    # The batch's load returns every value in one row (concatenated, with lengths):
    # NULs, bytes that are not UTF-8 and empty values must come back as they went in.
    store = await open_store(db)
    values = [b"", b"\x00", b"\xff\xfe\x00a", os.urandom(3000), "é".encode(), b"plain"]
    keys = [f"/bin/ключ-{i}-\u00e9" for i in range(len(values))]
    try:
        stream = store.watch("/bin/", after_revision=0)
        created = await asyncio.gather(
            *(store.create(k, v) for k, v in zip(keys, values, strict=True))
        )
        # One batch of updates and deletes: each event's previous value is the stored one.
        results = await asyncio.gather(
            *(
                store.update(k, v[::-1] + b"!", if_revision=r)
                for k, v, r in zip(keys[:3], values[:3], created[:3], strict=True)
            ),
            *(store.delete(k) for k in keys[3:]),
        )
        events = await collect(stream, 2 * len(values))
        changes = {e.kv.key: e for e in events[len(values) :]}
        for key, value in zip(keys, values, strict=True):
            assert changes[key].prev is not None and changes[key].prev.value == value, key
        for key, value in zip(keys[:3], values[:3], strict=True):
            assert (await store.get(key)) == KeyValue(
                key, value[::-1] + b"!", created[keys.index(key)], changes[key].kv.mod_revision
            )
        for key, value in zip(keys[3:], values[3:], strict=True):
            assert (await store.get(key)) is None
            assert isinstance(results[keys.index(key)], KeyValue)
            assert results[keys.index(key)].value == value  # type: ignore[union-attr]
        await stream.aclose()
    finally:
        await store.close()


async def test_a_batch_of_empty_values_loads_them(db: pathlib.Path) -> None:
    store = await open_store(db)
    try:
        created = await asyncio.gather(*(store.create(f"/e/{i}", b"") for i in range(5)))
        updated = await asyncio.gather(
            *(store.update(f"/e/{i}", b"", if_revision=r) for i, r in enumerate(created))
        )
        assert all(isinstance(r, int) for r in updated), updated
        assert [kv.value for kv in (await store.list("/e/")).items] == [b""] * 5
    finally:
        await store.close()


async def test_a_batch_is_a_few_statements_whatever_its_size(db: pathlib.Path) -> None:
    # The sqlite3 module lets go of the GIL at every step of a statement (every row of
    # an executemany or of a fetch); a batch's statements must not grow with its size.
    store = await open_store(db, history_retention=3600)
    statements: list[str] = []
    try:
        await asyncio.gather(*(store.create(f"/s/{i:04}", b"v" * 100) for i in range(400)))
        writer = store._live_writer()
        assert writer._conn is not None
        writer._conn.set_trace_callback(statements.append)
        commits = store.commits
        await asyncio.gather(
            *(store.update(f"/s/{i:04}", b"w" * 100, if_revision=0) for i in range(300)),
            *(store.delete(f"/s/{i:04}") for i in range(300, 400)),
        )
        writer._conn.set_trace_callback(None)
        batches = store.commits - commits
        assert batches >= 1
        # BEGIN, load, log inserts (power-of-two chunks), history, index, deletes, COMMIT.
        assert len(statements) <= 16 * batches, (batches, len(statements), statements[:20])
    finally:
        await store.close()


async def test_failed_precondition_fails_only_its_own_write(db: pathlib.Path) -> None:
    store = await open_store(db)
    try:
        await store.create("/k/taken", b"x")
        results = await asyncio.gather(
            store.create("/k/new1", b"1"),
            store.create("/k/taken", b"2"),
            store.update("/k/new1", b"3", if_revision=0),  # sees new1 from the same batch
            store.delete("/k/missing"),
            store.create("/k/new2", b"4"),
            return_exceptions=True,
        )
        assert [type(r).__name__ for r in results] == [
            "int",
            "KeyExistsError",
            "int",
            "KeyNotFoundError",
            "int",
        ]
        assert (await store.get("/k/new1")) == KeyValue("/k/new1", b"3", results[0], results[2])  # type: ignore[arg-type]
    finally:
        await store.close()


async def test_a_write_sqlite_cannot_store_fails_alone(db: pathlib.Path) -> None:
    store = await open_store(db)
    try:
        results = await asyncio.gather(
            store.create("/k/good1", b"1"),
            store.create("/k/\ud800", b"lone surrogate: not encodable as UTF-8"),
            store.create("/k/good2", b"2"),
            return_exceptions=True,
        )
        assert isinstance(results[1], StoreError)
        assert [kv.key for kv in (await store.list("/k/")).items] == ["/k/good1", "/k/good2"]
        revisions = sorted([results[0], results[2]])  # type: ignore[type-var]
        assert revisions == [1, 2]  # the failed write took no revision
    finally:
        await store.close()


async def test_commits_are_durable_and_use_the_wal(db: pathlib.Path) -> None:
    store = await open_store(db)
    try:
        writer = store._writer
        assert writer is not None and writer._conn is not None
        conn = writer._conn
        pragmas = await store._run_job(
            lambda: (
                conn.execute("PRAGMA journal_mode").fetchone()[0],
                conn.execute("PRAGMA synchronous").fetchone()[0],
            )
        )
        assert pragmas == ("wal", 2)  # 2 is FULL: the WAL is fsynced at every commit
    finally:
        await store.close()


async def test_big_compaction_truncates_the_wal(db: pathlib.Path) -> None:
    store = await open_store(db, checkpoint_after=100)
    try:
        for i in range(200):
            await store.create(f"/k/{i:03}", b"x" * 1000)
            await store.update(f"/k/{i:03}", b"y" * 1000, if_revision=0)
        wal = db.with_name(db.name + "-wal")
        assert wal.stat().st_size > 0
        await store.compact(store.current_revision())
        assert wal.stat().st_size == 0
        assert len(log_rows(db)) == 200
    finally:
        await store.close()


async def test_compaction_runs_in_chunks_while_writers_progress(db: pathlib.Path) -> None:
    store = await open_store(db, compact_chunk=100)
    try:
        for i in range(100):
            await store.create(f"/c/{i:03}", b"0")
        for round_ in range(1, 30):
            await asyncio.gather(
                *(
                    store.update(f"/c/{i:03}", str(round_).encode(), if_revision=0)
                    for i in range(100)
                )
            )
        target = store.current_revision()
        assert len(log_rows(db)) == 3000

        done_during: list[int] = []
        compaction = asyncio.create_task(store.compact(target))
        while not compaction.done():
            done_during.append(await store.create(f"/new/{len(done_during)}", b"x"))
        assert await compaction == target
        # 30 chunks of 100 revisions; a write gets in between chunks.
        assert len(done_during) >= 10, len(done_during)

        rows = log_rows(db)
        assert len(rows) == 100 + len(done_during)
        listed = await store.list("/c/")
        assert [kv.value for kv in listed.items] == [b"29"] * 100
    finally:
        await store.close()


async def test_interrupted_compaction_resumes_at_start(db: pathlib.Path) -> None:
    store = await open_store(db)
    for i in range(20):
        await store.create(f"/k/{i:02}", b"0")
        await store.update(f"/k/{i:02}", b"1", if_revision=0)
    await store.close()
    # As if the process died right after the first compaction chunk committed.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = 40 WHERE name = 'compacted'")

    store = await open_store(db)
    try:
        assert store.compacted_revision() == 40
        await store.compact(0)  # waits for the resumed compaction
        assert len(log_rows(db)) == 20
        assert len((await store.list("/k/")).items) == 20
    finally:
        await store.close()


async def test_periodic_compaction_trails_one_interval(db: pathlib.Path) -> None:
    store = await open_store(db, compact_interval=0.05)
    try:
        first = await store.create("/k/a", b"1")
        await store.update("/k/a", b"2", if_revision=first)
        await wait_until(lambda: store.compacted_revision() >= first)
        assert store.compacted_revision() <= store.current_revision()
    finally:
        await store.close()


async def test_reads_wait_until_what_they_saw_is_delivered(db: pathlib.Path) -> None:
    store = sqlite.SQLiteStore(db, compact_interval=0)
    deliver = store._on_commit

    def deliver_late(*args: Any) -> None:
        # As on a busy loop: commits reach it well after reader threads see them.
        asyncio.get_running_loop().call_later(0.05, deliver, *args)

    store._on_commit = deliver_late  # type: ignore[method-assign,assignment]
    await store.start()
    try:
        stream = store.watch("/r/", after_revision=0)
        write = asyncio.create_task(store.create("/r/a", b"x"))
        await wait_until(lambda: store.writes == 1)
        assert store.current_revision() == 0  # committed, not delivered yet

        listed = await store.list("/r/")
        assert [kv.key for kv in listed.items] == ["/r/a"]
        assert listed.revision == store.current_revision() == 1
        assert [e.revision for e in await collect(stream, 1)] == [1]
        assert await write == 1

        update = asyncio.create_task(store.update("/r/a", b"y", if_revision=1))
        await wait_until(lambda: store.writes == 2)
        kv = await store.get("/r/a")
        assert kv is not None
        assert kv.mod_revision == store.current_revision() == 2
        await update
    finally:
        await store.close()


async def test_lists_under_write_load_are_valid_watch_starts(db: pathlib.Path) -> None:
    store = await open_store(db)
    stop = asyncio.Event()

    async def write(task: int) -> None:
        i = 0
        while not stop.is_set():
            await store.create(f"/r/{task}/{i}", b"x")
            i += 1

    writers = [asyncio.create_task(write(t)) for t in range(5)]
    try:
        for _ in range(50):
            listed = await store.list("/r/")
            assert listed.revision <= store.current_revision()
            stream = store.watch("/r/", after_revision=listed.revision)  # never a future one
            await stream.aclose()
            kv = await store.get("/r/0/0")
            assert kv is None or kv.mod_revision <= store.current_revision()
    finally:
        stop.set()
        await asyncio.gather(*writers)
        await store.close()


async def test_a_file_is_opened_by_one_store_at_a_time(db: pathlib.Path) -> None:
    store = await open_store(db)
    try:
        second = sqlite.SQLiteStore(db, compact_interval=0)
        with pytest.raises(StoreError, match="in use"):
            await second.start()
    finally:
        await store.close()
    again = await open_store(db)
    await again.close()


async def test_acknowledged_writes_survive_sigkill(db: pathlib.Path) -> None:
    helper = pathlib.Path(__file__).with_name("crash_writer.py")
    errors = db.with_name("crash_writer.stderr")
    db.parent.mkdir(parents=True)
    with errors.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(helper), str(db), "8", stdout=asyncio.subprocess.PIPE, stderr=stderr
        )
    assert proc.stdout is not None
    acked: dict[str, int] = {}
    try:
        async with asyncio.timeout(60):
            line = await proc.stdout.readline()
            assert line == b"ready\n", errors.read_text()
            while len(acked) < 2000:
                key, ack = (await proc.stdout.readline()).decode().split()
                acked[key] = int(ack)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed mid-flight, not finished

    store = await open_store(db)
    try:
        assert len(set(acked.values())) == len(acked)
        for key, revision in acked.items():
            assert await store.get(key) == KeyValue(key, key.encode(), revision, revision)
        before = store.current_revision()
        assert before >= max(acked.values())
        assert await store.create("/after/crash", b"x") == before + 1
    finally:
        await store.close()


def test_on_a_laned_loop_a_commit_is_settled_in_the_fast_lane(db: pathlib.Path) -> None:
    # What a commit's writers wait for runs before the loop's queued bulk, not after.
    loop = looplanes.LanedEventLoop()
    try:
        store = loop.run_until_complete(open_store(db))
        seen: list[int] = []  # blockers done when the commit's revision showed up
        done: list[int] = []

        def block(i: int) -> None:
            time.sleep(0.002)
            if not seen and store.current_revision() >= 1:
                seen.append(len(done))
            done.append(i)

        async def main() -> None:
            write = asyncio.ensure_future(store.create("/fast/one", b"x"))
            await asyncio.sleep(0)  # submitted to the writer thread
            for i in range(200):
                loop.call_soon(block, i)
            await write

        loop.run_until_complete(main())
        assert len(done) == 200
        assert seen and seen[0] < 100, seen  # asyncio's own loop: 200, after the queue
        loop.run_until_complete(store.close())
    finally:
        loop.close()
