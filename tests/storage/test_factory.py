"""Choosing the store backend from the datastore URL."""

from __future__ import annotations

import pathlib

import pytest

from pilothouse.storage import factory, memory, sqlite


def test_sqlite_default_lives_in_the_data_dir(tmp_path: pathlib.Path) -> None:
    store = factory.open_store("sqlite://", data_dir=tmp_path, compact_interval=7)
    assert isinstance(store, sqlite.SQLiteStore)
    assert store.path == tmp_path / "db" / "state.db"


def test_sqlite_with_an_absolute_path(tmp_path: pathlib.Path) -> None:
    store = factory.open_store(f"sqlite://{tmp_path}/x/y.db", data_dir=pathlib.Path("/unused"))
    assert isinstance(store, sqlite.SQLiteStore)
    assert store.path == tmp_path / "x" / "y.db"


def test_memory(tmp_path: pathlib.Path) -> None:
    assert isinstance(factory.open_store("memory://", data_dir=tmp_path), memory.MemoryStore)


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("etcd://127.0.0.1:2379", "write etcd endpoints as http://HOST:2379"),
        ("http://", "not an http:// or https:// URL with a host"),
        ("http://127.0.0.1:2379/prefix", "use --datastore-prefix"),
        ("postgres://db/k3s", "unknown scheme 'postgres'"),
        ("sqlite://relative.db", "must be absolute"),
        ("memory://somewhere", "takes no path"),
        ("/var/lib/state.db", "not a URL"),
    ],
)
def test_unsupported_endpoints_name_the_accepted_forms(
    tmp_path: pathlib.Path, endpoint: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as info:
        factory.open_store(endpoint, data_dir=tmp_path)
    if "memory://" not in endpoint and "http" not in endpoint and "etcd" not in endpoint:
        assert "sqlite://" in str(info.value) and "memory://" in str(info.value)


async def test_the_default_store_starts_and_creates_its_directory(tmp_path: pathlib.Path) -> None:
    store = factory.open_store("sqlite://", data_dir=tmp_path / "data")
    await store.start()
    try:
        assert await store.create("/k", b"v") == 1
    finally:
        await store.close()
    assert (tmp_path / "data" / "db" / "state.db").exists()


def test_etcd_endpoints_make_an_etcd_store(tmp_path: pathlib.Path) -> None:
    from pilothouse.storage.etcd import store as etcd_store

    store = factory.open_store(
        "http://127.0.0.1:2379, http://[::1]:22379", data_dir=tmp_path, prefix="/one"
    )
    assert isinstance(store, etcd_store.EtcdStore)
    assert [e.target for e in store.client.endpoints] == ["127.0.0.1:2379", "[::1]:22379"]
    assert store.key_prefix == b"/one"


@pytest.mark.parametrize(
    ("endpoint", "kwargs", "message"),
    [
        ("sqlite://", {"prefix": "/a"}, "--datastore-prefix is for an etcd endpoint"),
        ("http://127.0.0.1:2379", {"prefix": "a/"}, "must start with '/'"),
        (
            "sqlite://",
            {"tls": factory.TLSFiles(cafile=pathlib.Path("/ca.pem"))},
            "are for an https:// etcd endpoint",
        ),
        (
            "https://127.0.0.1:2379",
            {"tls": factory.TLSFiles(cafile=pathlib.Path("/nonexistent/ca.pem"))},
            "cannot read /nonexistent/ca.pem",
        ),
    ],
)
def test_datastore_flags_that_do_not_fit_are_refused(
    tmp_path: pathlib.Path, endpoint: str, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        factory.open_store(endpoint, data_dir=tmp_path, **kwargs)  # type: ignore[arg-type]
