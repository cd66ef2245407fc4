"""The encryption configuration shared between servers: taken when it changed, and only
then (unsealing the bootstrap data costs a PBKDF2 derivation)."""

from __future__ import annotations

import pathlib
from typing import Any

from pilothouse.apiserver import bootstrap, startup
from pilothouse.storage import memory

PASS = "abcdef.0123456789abcdef"


class RecordingEncryption:
    """Stands in for the encryption manager: records what it was offered."""

    def __init__(self) -> None:
        self.offered: list[bytes] = []

    def adopt(self, data: bytes) -> bool:
        self.offered.append(data)
        return True


async def test_refresh_unseals_only_bootstrap_data_that_changed(tmp_path: pathlib.Path) -> None:
    store = memory.MemoryStore()
    await store.start()
    try:
        for rel in bootstrap.SHARED_FILES:
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_bytes(b"first")
        await bootstrap.join_or_found(store, tmp_path, passphrase=PASS, generate=lambda: None)
        encryption: Any = RecordingEncryption()
        shared = startup.SharedEncryption(store, passphrase=PASS, encryption=encryption)
        assert await shared.refresh()
        assert not await shared.refresh()  # nothing new: not unsealed, not offered again
        assert encryption.offered == [b"first"]

        await shared.publish(b"rotated")
        assert await shared.refresh()
        assert encryption.offered == [b"first", b"rotated"]
    finally:
        await store.close()


async def test_refresh_without_bootstrap_data_adopts_nothing() -> None:
    store = memory.MemoryStore()
    await store.start()
    try:
        encryption: Any = RecordingEncryption()
        shared = startup.SharedEncryption(store, passphrase=PASS, encryption=encryption)
        assert not await shared.refresh()
        assert encryption.offered == []
    finally:
        await store.close()
