"""Reads for the SQLite store, run on a small thread pool with connections of its own.

In WAL mode readers never wait for the writer, so reads do not queue behind
writes. Every read that needs more than one statement runs in one read
transaction, i.e. one consistent snapshot, and learns that snapshot's revision:
the larger of the newest log row and the compacted revision (compaction may
have removed the newest row when it was a delete tombstone, but never anything
after the compacted revision).

The functions here run on a reader thread and take the thread's connection as
their first argument; :class:`Readers` supplies it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import pathlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Concatenate, ParamSpec, TypeVar, cast

from pilothouse.storage import history, sqlite_writer
from pilothouse.storage.interface import (
    CompactedError,
    Event,
    EventType,
    FutureRevisionError,
    KeyValue,
    ListResult,
    StoreClosedError,
    StoreError,
    prefix_end,
)

P = ParamSpec("P")
T = TypeVar("T")

# SQLite sorts every BLOB after every TEXT, so this upper bound excludes no key
# (the empty prefix has no prefix_end).
_NO_UPPER_BOUND = b"\xff"

_SNAPSHOT = (
    "SELECT coalesce((SELECT max(revision) FROM log), 0),"
    " (SELECT value FROM meta WHERE name = 'compacted')"
)
_GET = (
    "SELECT l.key, g.value, g.create_revision, l.revision FROM latest AS l"
    " JOIN log AS g ON g.revision = l.revision WHERE l.key = ?"
)
_LIST_NOW = (
    "SELECT l.key, g.value, g.create_revision, l.revision FROM latest AS l"
    " JOIN log AS g ON g.revision = l.revision"
    " WHERE l.key >= ? AND l.key < ? ORDER BY l.key LIMIT ?"
)
_COUNT_NOW = "SELECT count(*) FROM latest WHERE key > ? AND key < ?"
# The newest row of each key at or before the revision, read off the
# (key, revision) index; keys whose newest row is a tombstone are not live.
_LIST_AT = (
    "SELECT g.key, g.value, g.create_revision, g.revision"
    " FROM (SELECT max(revision) AS revision FROM log"
    "       WHERE key >= ? AND key < ? AND revision <= ? GROUP BY key) AS m"
    " JOIN log AS g ON g.revision = m.revision"
    " WHERE g.deleted = 0 ORDER BY g.key LIMIT ?"
)
_COUNT_AT = (
    "SELECT count(*)"
    " FROM (SELECT max(revision) AS revision FROM log"
    "       WHERE key > ? AND key < ? AND revision <= ? GROUP BY key) AS m"
    " JOIN log AS g ON g.revision = m.revision WHERE g.deleted = 0"
)
# The unary + keeps the planner on the revision range: through the key index it
# would read a prefix's whole history and sort it for every chunk.
_EVENTS = (
    "SELECT g.revision, g.key, g.value, g.create_revision, g.prev_revision, g.deleted,"
    " p.value, p.create_revision"
    " FROM log AS g LEFT JOIN log AS p ON p.revision = g.prev_revision"
    " WHERE g.revision > ? AND g.revision <= ? AND +g.key >= ? AND +g.key < ?"
    " ORDER BY g.revision LIMIT ?"
)

# Every retained row of one key, off the (key, revision) index, with its origin.
_HISTORY = (
    "SELECT g.revision, g.value, g.create_revision, g.deleted,"
    " h.time, h.user, h.manager, h.operation, h.subresource"
    " FROM log AS g LEFT JOIN history AS h ON h.revision = g.revision"
    " WHERE g.key = ? ORDER BY g.revision"
)
_REVISION_AT_TIME = "SELECT coalesce(max(revision), 0) FROM history WHERE time <= ?"


def _upper_bound(prefix: str) -> str | bytes:
    return prefix_end(prefix) if prefix else _NO_UPPER_BOUND


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[tuple[int, int]]:
    """A read transaction; yields (snapshot revision, compacted revision)."""
    conn.execute("BEGIN")
    try:
        newest, compacted = conn.execute(_SNAPSHOT).fetchone()
        yield max(newest, compacted), compacted
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


def read_get(conn: sqlite3.Connection, key: str) -> tuple[int, KeyValue | None]:
    """The live value of ``key`` and the revision of the snapshot it was read in."""
    with _snapshot(conn) as (revision, _):
        row = conn.execute(_GET, (key,)).fetchone()
    return revision, KeyValue(*row) if row else None


def read_list(
    conn: sqlite3.Connection, *, prefix: str, start_key: str, limit: int, at_revision: int
) -> ListResult:
    """Live keys under ``prefix`` from ``start_key`` on, now or at ``at_revision``."""
    lo, hi = max(prefix, start_key), _upper_bound(prefix)
    fetch = limit + 1 if limit else -1
    with _snapshot(conn) as (revision, compacted):
        if at_revision in (0, revision):
            rows = conn.execute(_LIST_NOW, (lo, hi, fetch)).fetchall()
            count, count_args = _COUNT_NOW, cast(tuple[int, ...], ())
        else:
            if at_revision < compacted:
                raise CompactedError(at_revision, compacted)
            if at_revision > revision:
                raise FutureRevisionError(at_revision, revision)
            revision = at_revision
            rows = conn.execute(_LIST_AT, (lo, hi, revision, fetch)).fetchall()
            count, count_args = _COUNT_AT, (revision,)
        items = [KeyValue(*row) for row in rows]
        if limit and len(items) > limit:
            del items[limit:]
            remaining = conn.execute(count, (items[-1].key, hi, *count_args)).fetchone()[0]
            return ListResult(items, revision, True, remaining)
    return ListResult(items, revision, False, 0)


def read_events(
    conn: sqlite3.Connection, *, prefix: str, after: int, upto: int, limit: int
) -> tuple[list[Event], int]:
    """Up to ``limit`` events under ``prefix`` in (after, upto], with how far they reach."""
    with _snapshot(conn) as (_, compacted):
        if after < compacted:
            raise CompactedError(after, compacted)
        rows = conn.execute(_EVENTS, (after, upto, prefix, _upper_bound(prefix), limit)).fetchall()
    events: list[Event] = []
    for revision, key, value, create_revision, prev_revision, deleted, pvalue, pcreate in rows:
        kv = KeyValue(key, value, create_revision, revision)
        if not prev_revision:
            events.append(Event(EventType.CREATE, kv, None))
            continue
        if pvalue is None:
            raise StoreError(f"log row {prev_revision} (prev of {revision}) is missing")
        prev = KeyValue(key, pvalue, pcreate, prev_revision)
        events.append(Event(EventType.DELETE if deleted else EventType.UPDATE, kv, prev))
    reached = events[-1].revision if len(rows) == limit else upto
    return events, reached


def read_history(conn: sqlite3.Connection, key: str) -> list[history.Revision]:
    """Every retained revision of ``key``, oldest first."""
    with _snapshot(conn):
        rows = conn.execute(_HISTORY, (key,)).fetchall()
    out: list[history.Revision] = []
    for revision, value, create_revision, deleted, at, user, manager, operation, sub in rows:
        origin = history.WriteOrigin(user or "", manager or "", operation or "", sub or "")
        kv = KeyValue(key, value, create_revision, revision)
        out.append(history.Revision(kv, bool(deleted), at or 0.0, origin))
    return out


def read_revision_at_time(conn: sqlite3.Connection, cutoff: float) -> int:
    """The newest revision committed at or before ``cutoff`` (0: none known)."""
    return cast(int, conn.execute(_REVISION_AT_TIME, (cutoff,)).fetchone()[0])


class Readers:
    """A few reader threads, each with its own read-only connection."""

    def __init__(self, path: pathlib.Path, *, threads: int) -> None:
        self._path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=f"sqlite-reader:{path.name}"
        )

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite_writer.connect(self._path)
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA cache_size = -16000")
            with self._lock:
                self._connections.append(conn)
            self._local.conn = conn
        return conn

    def _call(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        return fn(self._connection(), *args, **kwargs)

    async def run(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(connection, ...)`` on a reader thread."""
        call = functools.partial(self._call, fn, *args, **kwargs)
        try:
            future = asyncio.get_running_loop().run_in_executor(self._executor, call)
        except RuntimeError:  # the executor is shut down
            raise StoreClosedError("store is closed") from None
        try:
            return await future
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc

    def close(self) -> None:
        """Wait for reads in progress, then close every connection (blocking)."""
        self._executor.shutdown(wait=True)
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
