"""The image index: one small JSON file naming every local image, written atomically.

``images.json`` maps image ids to records (tags, digests, config, layers, size). It is
replaced as a whole (write temp, fsync, rename, fsync dir), so a reader sees the old
or the new file, never half of one. Writers in different processes (the agent and
the ``pilothouse images`` CLI) serialise on an ``flock`` of ``images.lock`` and
re-read the file under it, so neither loses the other's change. Readers cache the
parsed file and re-read only when the file was replaced.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pilothouse import atomicfile
from pilothouse.node.runtime.images import layers

FORMAT_VERSION = 1


@dataclass
class ImageRecord:
    """What the store knows of one image (keyed by id, the config digest)."""

    id: str
    manifest: str  # digest of the (platform) manifest the layers came from
    diff_ids: list[str]
    config: dict[str, Any]  # the image config's "config" object (Env, Cmd, …)
    size: int
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    architecture: str = ""
    os: str = ""
    created: str = ""
    pulled: float = 0.0  # unix time the image came to this machine

    @property
    def chain_ids(self) -> list[str]:
        return layers.chain_ids(self.diff_ids)

    @property
    def references(self) -> list[str]:
        return [*self.repo_tags, *self.repo_digests]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "manifest": self.manifest,
            "repoTags": self.repo_tags,
            "repoDigests": self.repo_digests,
            "size": self.size,
            "diffIds": self.diff_ids,
            "architecture": self.architecture,
            "os": self.os,
            "created": self.created,
            "pulled": self.pulled,
            "config": self.config,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ImageRecord:
        return cls(
            id=doc["id"],
            manifest=doc.get("manifest", ""),
            diff_ids=list(doc.get("diffIds") or []),
            config=dict(doc.get("config") or {}),
            size=int(doc.get("size", 0)),
            repo_tags=list(doc.get("repoTags") or []),
            repo_digests=list(doc.get("repoDigests") or []),
            architecture=doc.get("architecture", ""),
            os=doc.get("os", ""),
            created=doc.get("created", ""),
            pulled=float(doc.get("pulled") or 0.0),
        )


class ImageIndex:
    """``images.json`` under ``root``, with a cross-process lock for writers."""

    def __init__(self, root: Path) -> None:
        self.path = root / "images.json"
        self.lock_path = root / "images.lock"
        self._cache: dict[str, ImageRecord] = {}
        self._cache_key: tuple[int, int, int] | None = None

    def _stat_key(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> dict[str, ImageRecord]:
        try:
            doc = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        return {k: ImageRecord.from_json(v) for k, v in (doc.get("images") or {}).items()}

    def images(self) -> dict[str, ImageRecord]:
        """All records (do not mutate; use :meth:`locked`)."""
        key = self._stat_key()
        if key != self._cache_key or key is None:
            self._cache = self._read()
            self._cache_key = key
        return self._cache

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, ImageRecord]]:
        """Exclusive access: a fresh copy of the records, saved when the block ends cleanly.

        Holds an ``flock`` for the duration; keep the block short and free of awaits.
        """
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            records = self._read()
            before = {k: v.to_json() for k, v in records.items()}
            yield records
            if {k: v.to_json() for k, v in records.items()} != before:
                self._write(records)
        finally:
            os.close(fd)  # releases the lock

    def _write(self, records: dict[str, ImageRecord]) -> None:
        doc = {
            "version": FORMAT_VERSION,
            "images": {k: records[k].to_json() for k in sorted(records)},
        }
        atomicfile.write(self.path, orjson.dumps(doc, option=orjson.OPT_INDENT_2), mode=0o644)
        self._cache = records
        self._cache_key = self._stat_key()
