"""Choose the store backend from a datastore URL, the way k3s reads ``--datastore-endpoint``.

Accepted forms:

* ``sqlite://`` — the embedded default, in ``<data_dir>/db/state.db``;
* ``sqlite:///abs/path.db`` — SQLite in the given file;
* ``memory://`` — the in-memory store (nothing survives the process).

``etcd://`` is reserved for the highly-available backend, not supported yet.
"""

from __future__ import annotations

import pathlib

from pilothouse.storage import memory, sqlite
from pilothouse.storage.interface import Store

ACCEPTED = "sqlite://, sqlite:///ABSOLUTE/PATH.db or memory://"


def open_store(endpoint: str, *, data_dir: pathlib.Path, compact_interval: float = 300.0) -> Store:
    """A store for ``endpoint``, not started yet (call ``await store.start()``)."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        raise ValueError(f"datastore endpoint {endpoint!r} is not a URL; use {ACCEPTED}")
    if scheme == "sqlite":
        if not rest:
            return sqlite.SQLiteStore(
                data_dir / "db" / "state.db", compact_interval=compact_interval
            )
        if rest.startswith("/"):
            return sqlite.SQLiteStore(pathlib.Path(rest), compact_interval=compact_interval)
        raise ValueError(
            f"datastore endpoint {endpoint!r}: the SQLite path must be absolute"
            f" (sqlite:///ABSOLUTE/PATH.db); use {ACCEPTED}"
        )
    if scheme == "memory":
        if rest:
            raise ValueError(f"datastore endpoint {endpoint!r}: memory:// takes no path")
        return memory.MemoryStore()
    if scheme in ("etcd", "etcds", "http", "https"):
        raise ValueError(
            f"datastore endpoint {endpoint!r}: etcd is not supported yet; use {ACCEPTED}"
        )
    raise ValueError(f"datastore endpoint {endpoint!r}: unknown scheme {scheme!r}; use {ACCEPTED}")
