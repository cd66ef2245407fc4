"""Content-addressed blobs: ``blobs/sha256/<hex>``, written only after their digest checks out.

A blob is written to ``blobs/ingest/<pid>-<random>`` while it is hashed, then renamed
into place: a file under ``blobs/sha256/`` is always complete and verified. Ingest
files left by a process that died are removed by :meth:`BlobStore.cleanup`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class DigestMismatch(Exception):
    """The bytes did not hash to the digest that named them."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"digest mismatch: unexpected commit digest {actual}, expected {expected}")
        self.expected = expected
        self.actual = actual


class SizeMismatch(Exception):
    """The blob was longer or shorter than its descriptor said."""

    def __init__(self, digest: str, expected: int, actual: int) -> None:
        super().__init__(f"{digest}: size mismatch: got {actual} bytes, expected {expected}")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hex_of(digest: str) -> str:
    """The hex part of a sha256 digest; anything else (a path, say) is a ValueError."""
    algorithm, _, hexpart = digest.partition(":")
    if algorithm != "sha256" or not _SHA256_HEX.fullmatch(hexpart):
        raise ValueError(f"unsupported digest {digest!r}")
    return hexpart


class Ingest:
    """One blob being written: feed it bytes, then :meth:`commit` (verifies) or :meth:`abort`."""

    def __init__(self, store: BlobStore, expected: str | None, expected_size: int | None) -> None:
        self._store = store
        self.expected = expected
        self.expected_size = expected_size
        self.path = store.ingest_dir / f"{os.getpid()}-{secrets.token_hex(8)}"
        self._file: BinaryIO = open(self.path, "wb")  # noqa: SIM115 — closed in commit/abort
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self) -> Path:
        """Check digest and size, move into place; the blob's path."""
        self._file.close()
        actual = self.digest
        try:
            if self.expected is not None and actual != self.expected:
                raise DigestMismatch(self.expected, actual)
            if (
                self.expected_size is not None
                and self.expected_size >= 0
                and (self.size != self.expected_size)
            ):
                raise SizeMismatch(actual, self.expected_size, self.size)
        except Exception:
            self.path.unlink(missing_ok=True)
            raise
        target = self._store.path(actual)
        os.replace(self.path, target)
        return target

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class BlobStore:
    """Blobs by digest under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blob_dir = root / "sha256"
        self.ingest_dir = root / "ingest"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.blob_dir / hex_of(digest)

    def has(self, digest: str) -> bool:
        try:
            return self.path(digest).is_file()
        except ValueError:
            return False

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def ingest(self, expected: str | None = None, size: int | None = None) -> Ingest:
        return Ingest(self, expected, size)

    def write(self, data: bytes, expected: str | None = None) -> Path:
        ingest = self.ingest(expected, len(data))
        try:
            ingest.write(data)
        except BaseException:
            ingest.abort()
            raise
        return ingest.commit()

    def copy_from(
        self, source: IO[bytes], expected: str | None = None, size: int | None = None
    ) -> Path:
        ingest = self.ingest(expected, size)
        try:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                ingest.write(chunk)
        except BaseException:
            ingest.abort()
            raise
        return ingest.commit()

    def remove(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            self.path(digest).unlink()

    def digests(self) -> Iterator[str]:
        for entry in os.scandir(self.blob_dir):
            yield "sha256:" + entry.name

    def cleanup(self) -> None:
        """Remove ingest files whose writer process is gone."""
        for entry in os.scandir(self.ingest_dir):
            pid = entry.name.partition("-")[0]
            if not pid.isdigit() or not process_alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
