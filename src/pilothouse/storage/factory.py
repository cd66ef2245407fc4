"""Choose the store backend from a datastore URL, the way k3s reads ``--datastore-endpoint``.

Accepted forms:

* ``sqlite://`` — the embedded default, in ``<data_dir>/db/state.db``;
* ``sqlite:///abs/path.db`` — SQLite in the given file;
* ``http://HOST:2379[,http://HOST2:2379…]`` or ``https://…`` — etcd v3 (several
  endpoints of one cluster, comma-separated; TLS files for https);
* ``memory://`` — the in-memory store (nothing survives the process).

The etcd package (and grpcio) is imported only when an etcd endpoint is used.
"""

from __future__ import annotations

import pathlib

from pilothouse import supervisor as supervision
from pilothouse.storage import history, memory, sqlite
from pilothouse.storage.interface import Store

ACCEPTED = "sqlite://, sqlite:///ABSOLUTE/PATH.db, http(s)://ETCD:2379[,…] or memory://"


class TLSFiles:
    """Files for TLS towards etcd (``--datastore-cafile/-certfile/-keyfile``)."""

    def __init__(
        self,
        *,
        cafile: pathlib.Path | None = None,
        certfile: pathlib.Path | None = None,
        keyfile: pathlib.Path | None = None,
    ) -> None:
        self.cafile = cafile
        self.certfile = certfile
        self.keyfile = keyfile

    def given(self) -> bool:
        return any((self.cafile, self.certfile, self.keyfile))


def is_shared(endpoint: str) -> bool:
    """Whether several servers may use ``endpoint`` at once (etcd; SQLite and memory are
    one process's)."""
    return endpoint.partition("://")[0] in ("http", "https")


def open_store(
    endpoint: str,
    *,
    data_dir: pathlib.Path,
    compact_interval: float = 300.0,
    history_retention: float = history.DEFAULT_RETENTION,
    tls: TLSFiles | None = None,
    prefix: str = "",
    supervisor: supervision.Supervisor | None = None,
) -> Store:
    """A store for ``endpoint``, not started yet (call ``await store.start()``); its
    background work runs as children of ``supervisor`` when one is given."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        raise ValueError(f"datastore endpoint {endpoint!r} is not a URL; use {ACCEPTED}")
    if scheme in ("http", "https"):
        return _etcd(
            endpoint,
            compact_interval=compact_interval,
            tls=tls,
            prefix=prefix,
            supervisor=supervisor,
        )
    if tls is not None and tls.given():
        raise ValueError(
            "--datastore-cafile, --datastore-certfile and --datastore-keyfile are for an"
            f" https:// etcd endpoint, not {scheme}://"
        )
    if prefix:
        raise ValueError(f"--datastore-prefix is for an etcd endpoint, not {scheme}://")
    if scheme == "sqlite":
        if not rest:
            return sqlite.SQLiteStore(
                data_dir / "db" / "state.db",
                compact_interval=compact_interval,
                history_retention=history_retention,
                supervisor=supervisor,
            )
        if rest.startswith("/"):
            return sqlite.SQLiteStore(
                pathlib.Path(rest),
                compact_interval=compact_interval,
                history_retention=history_retention,
                supervisor=supervisor,
            )
        raise ValueError(
            f"datastore endpoint {endpoint!r}: the SQLite path must be absolute"
            f" (sqlite:///ABSOLUTE/PATH.db); use {ACCEPTED}"
        )
    if scheme == "memory":
        if rest:
            raise ValueError(f"datastore endpoint {endpoint!r}: memory:// takes no path")
        return memory.MemoryStore()
    if scheme in ("etcd", "etcds"):
        raise ValueError(
            f"datastore endpoint {endpoint!r}: write etcd endpoints as http://HOST:2379"
            " (or https:// with --datastore-cafile/-certfile/-keyfile), as k3s does"
        )
    raise ValueError(f"datastore endpoint {endpoint!r}: unknown scheme {scheme!r}; use {ACCEPTED}")


def _etcd(
    endpoint: str,
    *,
    compact_interval: float,
    tls: TLSFiles | None,
    prefix: str,
    supervisor: supervision.Supervisor | None,
) -> Store:
    from pilothouse.storage.etcd import client as etcd_client
    from pilothouse.storage.etcd import store as etcd_store

    endpoints = etcd_client.parse_endpoints(endpoint)
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ValueError(
            f"--datastore-prefix {prefix!r} must start with '/' and not end with one"
            " (e.g. /clusters/one)"
        )
    files = None
    if tls is not None and tls.given():
        for path in (tls.cafile, tls.certfile, tls.keyfile):
            if path is not None and not path.is_file():
                raise ValueError(f"cannot read {path}: no such file")
        if (tls.certfile is None) != (tls.keyfile is None):
            raise ValueError("--datastore-certfile and --datastore-keyfile go together")
        files = etcd_client.TLSFiles(tls.cafile, tls.certfile, tls.keyfile)
    if any(e.secure for e in endpoints) and files is None:
        files = etcd_client.TLSFiles()  # the system's trusted CAs
    if files is not None and not all(e.secure for e in endpoints):
        raise ValueError("TLS files given, but an etcd endpoint is http://; use https://")
    return etcd_store.EtcdStore(
        endpoints,
        prefix=prefix,
        tls=files,
        compact_interval=compact_interval,
        parent=supervisor,
    )
