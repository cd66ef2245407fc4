"""Unpacked layers, one directory per chain id, each unpacked once and then read-only.

Directories are keyed by chain id (the layer's diff id folded over the ones below
it), like containerd's snapshots: identical stacks share directories, and a layer's
content never depends on which image asked for it.

Concurrency: within the process, the first task that needs a layer unpacks it and
every other task awaits that one (:meth:`LayerStore.ensure`). Across processes (the
CLI beside the agent) both may unpack; the first rename wins and the other's copy is
dropped. Crash safety: a layer is unpacked into ``.tmp-<pid>-<random>``, flushed to
disk, and renamed to its final name; only final names are ever trusted, and
leftovers of dead processes are removed by :meth:`LayerStore.cleanup`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import errno
import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path

from pilothouse.node.runtime import fsstats
from pilothouse.node.runtime.images import content, unpack

log = logging.getLogger(__name__)

_libc = ctypes.CDLL(None, use_errno=True)


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """OCI chain ids: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def _syncfs(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LayerStore:
    """Layer directories under ``root``: ``<root>/<chain-id hex>/`` holds the layer's files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._inflight: dict[str, asyncio.Future[Path]] = {}
        self._pins: collections.Counter[str] = collections.Counter()
        self.unpacks = 0  # how many layers this process unpacked (for tests and stats)
        self._usage: dict[str, int] = {}  # chain id → bytes on disk (layers never change)

    def path(self, chain_id: str) -> Path:
        return self.root / content.hex_of(chain_id)

    def exists(self, chain_id: str) -> bool:
        return self.path(chain_id).is_dir()

    def disk_usage(self, chain_id: str) -> int:
        """Bytes the unpacked layer takes on disk (blocks, hard links once); 0 if absent.

        Measured once per layer and remembered: a layer never changes after its unpack.
        """
        cached = self._usage.get(chain_id)
        if cached is not None:
            return cached
        path = self.path(chain_id)
        if not path.is_dir():
            return 0
        used = fsstats.disk_usage(path).bytes
        self._usage[chain_id] = used
        return used

    def chain_ids(self) -> set[str]:
        return {
            "sha256:" + e.name
            for e in os.scandir(self.root)
            if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
        }

    @contextlib.contextmanager
    def pinned(self, chains: Iterable[str]) -> Iterator[None]:
        """Keep ``chains`` from garbage collection while a pull or import uses them."""
        held = list(chains)
        self._pins.update(held)
        try:
            yield
        finally:
            self._pins.subtract(held)
            self._pins += collections.Counter()  # drop zero counts

    def busy(self) -> bool:
        """Whether any pull or import of this process is using or unpacking layers."""
        return bool(self._inflight) or any(n > 0 for n in self._pins.values())

    def is_pinned(self, chain_id: str) -> bool:
        return self._pins[chain_id] > 0 or chain_id in self._inflight

    async def ensure(
        self,
        chain_id: str,
        *,
        diff_id: str,
        fetch: Callable[[], Awaitable[Path]],
        below: Callable[[], Awaitable[Sequence[Path]]],
        discard_blob: bool = True,
    ) -> Path:
        """The directory of ``chain_id``, unpacking it if needed.

        ``fetch`` brings the layer blob (verified) and is called only by the task that
        unpacks; ``below`` waits for the layers under this one and returns their
        directories, topmost first. A task that waited on another's unpack that failed
        tries once itself, with its own ``fetch``.
        """
        while True:
            target = self.path(chain_id)
            if target.is_dir():
                return target
            running = self._inflight.get(chain_id)
            if running is None:
                break
            with contextlib.suppress(Exception):
                return await asyncio.shield(running)
        future: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        self._inflight[chain_id] = future
        try:
            blob = await fetch()
            parents = await below()
            result = await asyncio.to_thread(
                self._unpack, chain_id, diff_id, blob, list(parents), discard_blob
            )
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else unpack.UnpackError("unpack cancelled")
            future.set_exception(failure)
            future.exception()  # retrieved: waiters may be none
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[chain_id]

    def _unpack(
        self, chain_id: str, diff_id: str, blob: Path, parents: list[Path], discard_blob: bool
    ) -> Path:
        """Blocking: unpack into a temp dir, verify the diff id, flush, rename into place.

        Runs to the end even when the awaiting task is cancelled, so it cleans up
        after itself.
        """
        target = self.path(chain_id)
        tmp = self.root / f".tmp-{os.getpid()}-{secrets.token_hex(6)}"
        tmp.mkdir(mode=0o700)
        try:
            with unpack.open_layer(blob) as stream:
                result = unpack.apply_layer(stream, tmp, parents=parents)
            if result.diff_id != diff_id:
                raise content.DigestMismatch(diff_id, result.diff_id)
            _syncfs(tmp)
            try:
                os.rename(tmp, target)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                shutil.rmtree(tmp)  # another process finished it first
            else:
                self.unpacks += 1
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if discard_blob:
            blob.unlink(missing_ok=True)
        return target

    def retire(self, chain_id: str) -> Path | None:
        """Take a layer out of use with one atomic rename; the trash path to :meth:`purge`."""
        path = self.path(chain_id)
        trash = self.root / f".trash-{os.getpid()}-{secrets.token_hex(4)}-{path.name}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return None
        return trash

    @staticmethod
    def purge(trash: Iterable[Path]) -> None:
        """Blocking: delete retired layers (slow for big ones; run it in a thread)."""
        for path in trash:
            shutil.rmtree(path, ignore_errors=True)

    def cleanup(self) -> None:
        """Remove temp and trash directories left by processes that are gone."""
        for entry in os.scandir(self.root):
            if not entry.name.startswith((".tmp-", ".trash-")):
                continue
            pid = entry.name.split("-")[1]
            if (
                not pid.isdigit()
                or not content.process_alive(int(pid))
                or (entry.name.startswith(".trash-"))
            ):
                shutil.rmtree(entry.path, ignore_errors=True)
