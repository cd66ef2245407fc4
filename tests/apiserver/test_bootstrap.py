"""Bootstrap data: the first server founds the cluster, the others join it with its token,
and a data directory or token of another cluster is refused."""

from __future__ import annotations

import os
import pathlib

import pytest

from pilothouse.apiserver import bootstrap
from pilothouse.storage import memory

PASS = "abcdef.0123456789abcdef"


def make_files(data_dir: pathlib.Path, tag: str) -> None:
    for rel in bootstrap.SHARED_FILES:
        path = data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(f"{tag}:{rel}".encode())


@pytest.fixture
async def store():  # type: ignore[no-untyped-def]
    s = memory.MemoryStore()
    await s.start()
    yield s
    await s.close()


async def test_first_server_founds_and_the_second_takes_the_same_files(
    store: memory.MemoryStore, tmp_path: pathlib.Path
) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    made = await bootstrap.join_or_found(
        store, first, passphrase=PASS, generate=lambda: make_files(first, "one")
    )
    assert made.founded
    stored = await store.get(bootstrap.key_for(PASS))
    assert stored is not None
    assert b"one:pki/ca.key" not in stored.value  # sealed, not plain

    def never() -> None:
        raise AssertionError("a joining server must not generate")

    joined = await bootstrap.join_or_found(store, second, passphrase=PASS, generate=never)
    assert not joined.founded
    for rel in bootstrap.SHARED_FILES:
        assert (second / rel).read_bytes() == (first / rel).read_bytes()
        assert (second / rel).stat().st_mode & 0o777 == 0o600


async def test_another_token_is_refused_with_k3s_wording(
    store: memory.MemoryStore, tmp_path: pathlib.Path
) -> None:
    one = tmp_path / "one"
    await bootstrap.join_or_found(
        store, one, passphrase=PASS, generate=lambda: make_files(one, "one")
    )
    with pytest.raises(bootstrap.BootstrapError) as caught:
        await bootstrap.join_or_found(
            store,
            tmp_path / "two",
            passphrase="zzzzzz.0123456789abcdef",
            generate=lambda: make_files(tmp_path / "two", "two"),
        )
    assert "bootstrap data already found and encrypted with different token" in str(caught.value)
    assert "--token" in str(caught.value)
    assert not (tmp_path / "two" / bootstrap.CA_KEY).exists()  # nothing generated


def test_a_wrong_passphrase_does_not_unseal() -> None:
    sealed = bootstrap.seal(bootstrap.Files({"pki/ca.crt": b"x"}, {"pki/ca.crt": 1.0}), PASS)
    assert bootstrap.unseal(sealed, PASS).content == {"pki/ca.crt": b"x"}
    with pytest.raises(bootstrap.BootstrapError, match="different token"):
        bootstrap.unseal(sealed, "other")


async def test_a_data_dir_of_another_cluster_is_refused(
    store: memory.MemoryStore, tmp_path: pathlib.Path
) -> None:
    one, other = tmp_path / "one", tmp_path / "other"
    await bootstrap.join_or_found(
        store, one, passphrase=PASS, generate=lambda: make_files(one, "one")
    )
    make_files(other, "other")  # a server that once ran a cluster of its own
    with pytest.raises(bootstrap.BootstrapError, match="belongs to another cluster"):
        await bootstrap.join_or_found(store, other, passphrase=PASS, generate=lambda: None)
    assert (other / bootstrap.CA_KEY).read_bytes() == b"other:pki/ca.key"  # left alone


async def test_a_founding_race_is_lost_cleanly(
    store: memory.MemoryStore, tmp_path: pathlib.Path
) -> None:
    winner, loser = tmp_path / "winner", tmp_path / "loser"
    original_create = store.create

    async def winner_claims_first(key: str, value: bytes) -> int:
        make_files(winner, "winner")
        await original_create(key, bootstrap.seal(bootstrap.Files.read(winner), PASS))
        return await original_create(key, value)  # KeyExistsError: the loser's claim

    store.create = winner_claims_first  # type: ignore[method-assign]
    result = await bootstrap.join_or_found(
        store, loser, passphrase=PASS, generate=lambda: make_files(loser, "loser")
    )
    assert not result.founded
    for rel in bootstrap.SHARED_FILES:
        assert (loser / rel).read_bytes() == f"winner:{rel}".encode()


async def test_a_newer_encryption_config_is_published_and_taken(
    store: memory.MemoryStore, tmp_path: pathlib.Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    await bootstrap.join_or_found(
        store, one, passphrase=PASS, generate=lambda: make_files(one, "one")
    )
    await bootstrap.join_or_found(store, two, passphrase=PASS, generate=lambda: None)
    config = one / bootstrap.ENCRYPTION_CONFIG
    config.write_bytes(b"rotated")
    later = config.stat().st_mtime + 10
    os.utime(config, (later, later))
    await bootstrap.publish(store, one, passphrase=PASS)
    await bootstrap.join_or_found(store, two, passphrase=PASS, generate=lambda: None)
    assert (two / bootstrap.ENCRYPTION_CONFIG).read_bytes() == b"rotated"
    # An older local copy does not overwrite the datastore's.
    stale = two / bootstrap.ENCRYPTION_CONFIG
    stale.write_bytes(b"stale")
    os.utime(stale, (1.0, 1.0))
    await bootstrap.publish(store, two, passphrase=PASS)
    found = await store.get(bootstrap.key_for(PASS))
    assert found is not None
    assert bootstrap.unseal(found.value, PASS).content[bootstrap.ENCRYPTION_CONFIG] == b"rotated"
