"""The SQLite store's single writer: one thread owning the only write connection.

Callers on the event loop put operations on a thread-safe queue, each with an
asyncio future. The writer thread takes everything queued (up to ``max_batch``)
and applies it in ONE transaction: it loads the current rows of the keys
involved with a single query, checks every operation's precondition in queue
order against that state (a failed precondition fails only its own operation),
writes all new log rows and index changes with ``executemany`` and commits once.
One fsync thus covers the whole batch, which is what makes durable writes fast
under load. Should the transaction itself fail, the batch is retried one write
at a time so that only the culprit fails. The results go back to the loop with
one ``call_soon_threadsafe``
per commit; the store delivers the events there before resolving any future.

Compaction and WAL checkpoints are *jobs*: functions run on this thread in their
own short transactions, between write batches, so they never hold writers back
for long.

Schema (``SCHEMA_VERSION`` 1):

* ``log``: append-only, one row per write; the INTEGER PRIMARY KEY is the
  revision. ``prev_revision`` names the row this one supersedes (0 for a
  create); a delete row carries the last value and ``deleted = 1``.
* ``latest``: key -> revision of its live row (keys without a live value are
  absent), maintained in the same transaction as the log.
* ``meta``: the schema version, the compacted revision and how far compaction
  has actually removed rows (``compact_progress``), so an interrupted compaction
  resumes after a restart.
* ``history``: when each revision was committed and who wrote it (user, field
  manager, operation, subresource), written in the same transaction as its log
  row while history is kept, and removed with it by a trigger when compaction
  removes that row (see :mod:`~pilothouse.storage.history`).

Revisions are assigned here, consecutively. The last revision is recovered at
open as the larger of the newest log row and the compacted revision: compaction
only removes rows at or before the compacted revision (it can remove the newest
row when that is a delete tombstone), so no revision is ever handed out twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import pathlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import orjson

from pilothouse import looplanes
from pilothouse.storage import history
from pilothouse.storage.interface import (
    Event,
    EventType,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RevisionMismatchError,
    StoreError,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CREATE, UPDATE, DELETE = 0, 1, 2
BUSY_TIMEOUT_MS = 5000

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS log (
    revision INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    deleted INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key_revision ON log (key, revision);
CREATE TABLE IF NOT EXISTS latest (
    key TEXT PRIMARY KEY,
    revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
-- Object history (storage/history.py): when each revision was committed and who
-- wrote it, while history is kept. A row goes when its log row goes (the trigger).
CREATE TABLE IF NOT EXISTS history (
    revision INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    user TEXT NOT NULL,
    manager TEXT NOT NULL,
    operation TEXT NOT NULL,
    subresource TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (name, value)
    VALUES ('schema_version', {SCHEMA_VERSION}), ('compacted', 0), ('compact_progress', 0);
"""

# Run on its own: its body holds a ";", which the schema's split would cut.
_HISTORY_TRIGGER = (
    "CREATE TRIGGER IF NOT EXISTS history_follows_log AFTER DELETE ON log"
    " BEGIN DELETE FROM history WHERE revision = OLD.revision; END"
)

_LOAD_ONE = (
    "SELECT l.key, g.value, g.create_revision, l.revision FROM latest AS l"
    " JOIN log AS g ON g.revision = l.revision WHERE l.key = ?"
)
# A batch is a few statements of one SQLite step each, whatever its size: the sqlite3
# module lets go of the GIL around every step (every row of an executemany, every
# row fetched), and on a server whose loop thread is busy each step's return waits
# for the GIL — ~1 ms a write in a rollout, 10 times the transaction's own CPU. So
# the load returns one row (the values concatenated, their lengths beside them), the
# index and the history take their rows as one JSON parameter (fixed statement
# texts, which stay in the statement cache), and the log's rows (BLOBs, which JSON
# cannot carry) go in multi-row INSERTs of power-of-two sizes (a few texts).
_LOAD_MANY = (
    "SELECT json_group_array(json_array(l.key, length(CAST(g.value AS BLOB)),"
    " g.create_revision, l.revision)), group_concat(CAST(g.value AS BLOB), '')"
    " FROM latest AS l JOIN log AS g ON g.revision = l.revision"
    " WHERE l.key IN (SELECT value FROM json_each(?))"
)
_LOG_COLUMNS = "INSERT INTO log (revision, key, value, create_revision, prev_revision, deleted)"
_LOG_ROW = "(?, ?, ?, ?, ?, ?)"
# The largest multi-row INSERT into the log (6 parameters a row: 3,072 of SQLite's
# 32,766).
_LOG_CHUNK = 512
_INSERT_HISTORY = (
    "INSERT INTO history (revision, time, user, manager, operation, subresource)"
    " SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5"
    " FROM json_each(?)"
)
_UPSERT_LATEST = (
    "INSERT OR REPLACE INTO latest (key, revision)"
    " SELECT value ->> 0, value ->> 1 FROM json_each(?)"
)
_DELETE_LATEST = "DELETE FROM latest WHERE key IN (SELECT value FROM json_each(?))"
# Every row superseded at or before the compacted revision is the prev of a row
# in some already-scanned range, and every tombstone lies in one; scanning the
# log in revision ranges therefore finds each removable row exactly once. Rows
# after the compacted revision are never touched, nor are their prevs, so
# events read back from the log always have their previous values.
_DELETE_SUPERSEDED = (
    "DELETE FROM log WHERE revision IN (SELECT prev_revision FROM log"
    " WHERE revision > ? AND revision <= ? AND prev_revision > 0)"
)
_DELETE_TOMBSTONES = "DELETE FROM log WHERE revision > ? AND revision <= ? AND deleted = 1"
_SET_META = "UPDATE meta SET value = ? WHERE name = ?"


_NO_ORIGIN = history.WriteOrigin()


class Op(NamedTuple):
    """A write queued for the writer thread."""

    kind: int  # CREATE, UPDATE or DELETE
    key: str
    value: bytes
    if_revision: int
    future: asyncio.Future[Any]
    origin: history.WriteOrigin | None = None


class Job(NamedTuple):
    """A function to run on the writer thread, in its own transactions."""

    run: Callable[[], Any]
    future: asyncio.Future[Any]


# (future, result, error): resolved on the loop after the events are delivered.
Result = tuple[asyncio.Future[Any], Any, BaseException | None]
CommitCallback = Callable[[int, list[Event], list[Result]], None]
JobCallback = Callable[[asyncio.Future[Any], Any, BaseException | None], None]


@dataclasses.dataclass(frozen=True, slots=True)
class OpenState:
    """What the writer found on disk when it opened the database."""

    revision: int
    compacted: int
    compact_progress: int


@dataclasses.dataclass(frozen=True, slots=True)
class CompactionStep:
    """The outcome of one compaction chunk."""

    compacted: int
    progress: int
    removed: int


def _json(value: object) -> str:
    """A statement's JSON parameter (keys as they are: no ASCII escapes). orjson, not the
    json module: this runs in the writer thread holding the GIL the event loop waits for."""
    return orjson.dumps(value).decode()


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


def connect(path: pathlib.Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) usable from any thread."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=64
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


class Writer:
    """Owns the write connection and the thread that applies queued writes in batches."""

    def __init__(
        self,
        path: pathlib.Path,
        *,
        loop: asyncio.AbstractEventLoop,
        on_commit: CommitCallback,
        on_job_done: JobCallback,
        max_batch: int = 1000,
        keep_history: bool = False,
    ) -> None:
        self._path = path
        self._keep_history = keep_history
        self._loop = loop
        self._on_commit = on_commit
        self._on_job_done = on_job_done
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Op | Job | None] = queue.SimpleQueue()
        # Held while queueing and while the thread gives up for good, so no item is
        # queued after the last look at the queue.
        self._submit_lock = threading.Lock()
        self._dead: str = ""  # why the thread ended unexpectedly
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock_file: Any = None
        self._stopped: asyncio.Future[None] = loop.create_future()
        # Owned by the writer thread (read elsewhere only as statistics).
        self.revision = 0
        self.compacted = 0
        self.compact_progress = 0
        self.commits = 0
        self.writes = 0

    # -- lifecycle (called on the loop) ------------------------------------------

    async def start(self) -> OpenState:
        ready: asyncio.Future[OpenState] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=f"sqlite-writer:{self._path.name}", daemon=True
        )
        self._thread.start()
        return await ready

    def submit(self, item: Op | Job) -> None:
        with self._submit_lock:
            if self._dead:
                raise StoreError(self._dead)
            self._queue.put(item)

    async def wait_stopped(self) -> None:
        """Until the thread has ended (after :meth:`stop`, or on its own through a bug)."""
        await asyncio.shield(self._stopped)

    async def stop(self) -> None:
        """Apply everything queued so far, then close the connection and end the thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        await self._stopped
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    # -- the thread ----------------------------------------------------------------

    def _run(self, ready: asyncio.Future[OpenState]) -> None:
        try:
            state = self._open()
        except BaseException as exc:
            self._close_files()
            self._loop.call_soon_threadsafe(settle, ready, None, exc)
            self._loop.call_soon_threadsafe(settle, self._stopped, None, None)
            return
        self._loop.call_soon_threadsafe(settle, ready, state, None)
        try:
            self._serve()
        except Exception as exc:
            # Only reachable through a bug or a closed event loop; say so loudly, and
            # fail what waits rather than leave it waiting for ever.
            log.exception("SQLite writer for %s stopped", self._path)
            self._give_up(f"the writer of {self._path} stopped: {exc!r}")
        finally:
            self._close_files()
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                self._loop.call_soon_threadsafe(settle, self._stopped, None, None)

    def _give_up(self, why: str) -> None:
        with self._submit_lock:
            self._dead = why
            items = []
            with contextlib.suppress(queue.Empty):
                while True:
                    items.append(self._queue.get_nowait())
        for item in items:
            if item is not None:
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(settle, item.future, None, StoreError(why))

    def _serve(self) -> None:
        get, get_nowait, limit = self._queue.get, self._queue.get_nowait, self._max_batch
        stopping = False
        while not stopping:
            item = get()
            batch: list[Op | Job] = []
            while True:
                if item is None:
                    # Everything queued before the sentinel still gets applied.
                    stopping = True
                else:
                    batch.append(item)
                if len(batch) >= limit:
                    break
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
            self._apply(batch)
            if stopping:
                with contextlib.suppress(queue.Empty):
                    while True:
                        late = get_nowait()
                        if late is not None:
                            self._apply([late])

    def _apply(self, batch: list[Op | Job]) -> None:
        ops: list[Op] = []
        for item in batch:
            if isinstance(item, Op):
                ops.append(item)
                continue
            if ops:
                self._write(ops)
                ops = []
            self._run_job(item)
        if ops:
            self._write(ops)

    def _run_job(self, job: Job) -> None:
        try:
            result = job.run()
        except BaseException as exc:
            self._loop.call_soon_threadsafe(self._on_job_done, job.future, None, exc)
        else:
            self._loop.call_soon_threadsafe(self._on_job_done, job.future, result, None)

    # -- opening -------------------------------------------------------------------

    def _open(self) -> OpenState:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # A second process writing the same file would hand out the same revisions.
        self._lock_file = open(self._path.with_name(self._path.name + ".lock"), "a+b")  # noqa: SIM115
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{self._path} is in use by another process") from None
        conn = self._conn = connect(self._path)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{self._path}: cannot use WAL journal mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA cache_size = -32000")
        conn.execute("PRAGMA journal_size_limit = 67108864")
        with _transaction(conn):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(_HISTORY_TRIGGER)
            meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
            if meta["schema_version"] != SCHEMA_VERSION:
                raise StoreError(
                    f"{self._path}: schema version {meta['schema_version']} is not supported"
                )
        newest = conn.execute("SELECT coalesce(max(revision), 0) FROM log").fetchone()[0]
        self.compacted = meta["compacted"]
        self.compact_progress = meta["compact_progress"]
        self.revision = max(newest, self.compacted)
        return OpenState(self.revision, self.compacted, self.compact_progress)

    def _close_files(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # -- writes --------------------------------------------------------------------

    def _load(self, ops: list[Op]) -> dict[str, KeyValue | None]:
        conn = self._conn
        assert conn is not None
        if len(ops) == 1:
            return {row[0]: KeyValue(*row) for row in conn.execute(_LOAD_ONE, (ops[0].key,))}
        keys = _json([*{op.key: None for op in ops}])
        conn.text_factory = bytes  # the values arrive as one BLOB-as-text: keep the bytes
        try:
            meta, values = conn.execute(_LOAD_MANY, (keys,)).fetchone()
        finally:
            conn.text_factory = str
        values = values or b""  # no row, or only empty values
        state: dict[str, KeyValue | None] = {}
        at = 0
        for key, length, create_revision, revision in orjson.loads(meta):
            state[key] = KeyValue(key, values[at : at + length], create_revision, revision)
            at += length
        return state

    def _insert_log(self, rows: list[tuple[int, str, bytes, int, int, int]]) -> None:
        conn = self._conn
        assert conn is not None
        at = 0
        while at < len(rows):
            # The largest power of two that fits what is left (at most _LOG_CHUNK).
            n = min(_LOG_CHUNK, 1 << ((len(rows) - at).bit_length() - 1))
            chunk = rows[at : at + n]
            conn.execute(
                f"{_LOG_COLUMNS} VALUES {', '.join([_LOG_ROW] * n)}",
                [field for row in chunk for field in row],
            )
            at += n

    def _write(self, ops: list[Op]) -> None:
        conn = self._conn
        assert conn is not None
        base = rev = self.revision
        rows: list[tuple[int, str, bytes, int, int, int]] = []
        origins: list[tuple[int, float, str, str, str, str]] = []
        keep_history, now = self._keep_history, time.time()
        events: list[Event] = []
        results: list[Result] = []
        try:
            with _transaction(conn):
                state = self._load(ops)
                for kind, key, value, if_revision, future, origin in ops:
                    cur = state.get(key)
                    written = rev
                    if kind == CREATE:
                        if cur is not None:
                            results.append((future, None, KeyExistsError(key)))
                            continue
                        rev += 1
                        kv = KeyValue(key, value, rev, rev)
                        rows.append((rev, key, value, rev, 0, 0))
                        events.append(Event(EventType.CREATE, kv, None))
                        state[key] = kv
                        results.append((future, rev, None))
                    elif cur is None:
                        results.append((future, None, KeyNotFoundError(key)))
                    elif if_revision and cur.mod_revision != if_revision:
                        results.append((future, None, RevisionMismatchError(key, cur)))
                    elif kind == UPDATE:
                        rev += 1
                        kv = KeyValue(key, value, cur.create_revision, rev)
                        rows.append((rev, key, value, cur.create_revision, cur.mod_revision, 0))
                        events.append(Event(EventType.UPDATE, kv, cur))
                        state[key] = kv
                        results.append((future, rev, None))
                    else:
                        rev += 1
                        kv = KeyValue(key, cur.value, cur.create_revision, rev)
                        rows.append((rev, key, cur.value, cur.create_revision, cur.mod_revision, 1))
                        events.append(Event(EventType.DELETE, kv, cur))
                        state[key] = None
                        results.append((future, kv, None))
                    if keep_history and rev != written:
                        o = origin or _NO_ORIGIN
                        origins.append((rev, now, o.user, o.manager, o.operation, o.subresource))
                if rows:
                    self._insert_log(rows)
                    if origins:
                        conn.execute(_INSERT_HISTORY, (_json(origins),))
                    # Only each key's final state matters to the index.
                    latest = [
                        (k, v.mod_revision) for k, v in state.items() if v and v.mod_revision > base
                    ]
                    if latest:
                        conn.execute(_UPSERT_LATEST, (_json(latest),))
                    gone = [k for k, v in state.items() if v is None]
                    if gone:
                        conn.execute(_DELETE_LATEST, (_json(gone),))
        except Exception as exc:
            if len(ops) > 1:
                # Whatever broke the batch (a key SQLite cannot store, a full disk)
                # should fail only the writes it concerns.
                for op in ops:
                    self._write([op])
                return
            error = StoreError(f"write failed: {exc}")
            error.__cause__ = exc
            failed: list[Result] = [(ops[0].future, None, error)]
            self._loop.call_soon_threadsafe(
                self._on_commit, self.revision, [], failed, context=looplanes.fast_context()
            )
            return
        if rows:
            self.revision = rev
            self.commits += 1
            self.writes += len(rows)
        # The loop's fast lane (a laned loop's): what the writers wait for, cheap to run.
        self._loop.call_soon_threadsafe(
            self._on_commit, rev, events, results, context=looplanes.fast_context()
        )

    # -- jobs (run on this thread through Job) -------------------------------------

    def compact_step(self, target: int, *, chunk: int) -> CompactionStep:
        """Raise the compacted revision to ``target`` (never past the last write) and
        remove the removable rows of the next ``chunk`` revisions not yet scanned."""
        conn = self._conn
        assert conn is not None
        compacted = max(self.compacted, min(target, self.revision))
        start = self.compact_progress
        end = min(start + chunk, compacted)
        if compacted == self.compacted and end <= start:
            return CompactionStep(compacted, start, 0)
        removed = 0
        with _transaction(conn):
            if compacted != self.compacted:
                conn.execute(_SET_META, (compacted, "compacted"))
            if end > start:
                removed += conn.execute(_DELETE_SUPERSEDED, (start, end)).rowcount
                removed += conn.execute(_DELETE_TOMBSTONES, (start, end)).rowcount
                conn.execute(_SET_META, (end, "compact_progress"))
        self.compacted = compacted
        self.compact_progress = max(start, end)
        return CompactionStep(self.compacted, self.compact_progress, removed)

    def checkpoint(self) -> None:
        """Fold the WAL into the database file and truncate it, giving up soon if
        readers keep old snapshots open (the WAL is then just reused later)."""
        conn = self._conn
        assert conn is not None
        conn.execute("PRAGMA busy_timeout = 200")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Resolve ``future`` unless its caller has given up on it already."""
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
