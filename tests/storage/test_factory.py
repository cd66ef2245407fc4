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
        ("etcd://127.0.0.1:2379", "etcd is not supported yet"),
        ("https://10.0.0.1:2379", "etcd is not supported yet"),
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
    if "memory://" not in endpoint:
        assert "sqlite://" in str(info.value) and "memory://" in str(info.value)


async def test_the_default_store_starts_and_creates_its_directory(tmp_path: pathlib.Path) -> None:
    store = factory.open_store("sqlite://", data_dir=tmp_path / "data")
    await store.start()
    try:
        assert await store.create("/k", b"v") == 1
    finally:
        await store.close()
    assert (tmp_path / "data" / "db" / "state.db").exists()
