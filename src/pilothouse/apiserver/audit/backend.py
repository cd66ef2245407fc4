"""The audit log backend: events as lines in a file, rotated as lumberjack rotates it.

``--audit-log-path`` names the file (``-`` writes to standard output); the file is
made mode 0600 in a directory made 0700. When a write would take it past
``--audit-log-maxsize`` megabytes (100 when 0, lumberjack's default) it is renamed
``<name>-<UTC time>.<ext>`` (``audit-2026-12-06T10-15-42.123.log``) and a new one
started; then backups beyond ``--audit-log-maxbackup`` (0: keep all) and older than
``--audit-log-maxage`` days (0: keep all) are removed, and the rest gzipped with
``--audit-log-compress``.

Modes (``--audit-log-mode``): ``blocking`` and ``blocking-strict`` write each event
before the request goes on (a write costs one ``write`` call on the event loop;
strict also fails a request whose first event cannot be written); ``batch``
queues events and a background task writes them in groups, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import logging
import os
import pathlib
import shutil
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

MEGABYTE = 1024 * 1024
DEFAULT_MAX_SIZE_MB = 100
BACKUP_TIME_FORMAT = "%Y-%m-%dT%H-%M-%S"
FORMATS = ("json", "legacy")
MODES = ("blocking", "blocking-strict", "batch")


@dataclass(frozen=True)
class Options:
    """kube-apiserver's ``--audit-log-*`` flags."""

    path: str = ""
    max_age_days: int = 0
    max_backups: int = 0
    max_size_mb: int = 0
    compress: bool = False
    format: str = "json"
    mode: str = "blocking"
    batch_buffer_size: int = 10000
    batch_max_size: int = 400
    batch_max_wait: float = 0.03


class RotatingFile:
    """An append-only file with lumberjack's rotation; not safe for concurrent use
    (the backend serialises writes: all happen on the event loop, or in its one
    writer thread)."""

    def __init__(
        self,
        path: pathlib.Path,
        *,
        max_size_mb: int,
        max_backups: int,
        max_age_days: int,
        compress: bool,
    ) -> None:
        self.path = path
        self.max_bytes = (max_size_mb or DEFAULT_MAX_SIZE_MB) * MEGABYTE
        self.max_backups = max_backups
        self.max_age = max_age_days * 86400
        self.compress = compress
        self._fd = -1
        self._size = 0

    def open(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size

    def write(self, data: bytes) -> None:
        if len(data) > self.max_bytes:
            raise OSError(f"write length {len(data)} exceeds maximum file size {self.max_bytes}")
        if self._fd < 0:
            self.open()
        if self._size + len(data) > self.max_bytes:
            self.rotate()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)

    def rotate(self) -> None:
        self.close()
        now = datetime.datetime.now(datetime.UTC)
        stamp = now.strftime(BACKUP_TIME_FORMAT) + f".{now.microsecond // 1000:03d}"
        backup = self.path.with_name(f"{self.path.stem}-{stamp}{self.path.suffix}")
        with contextlib.suppress(FileNotFoundError):
            self.path.rename(backup)
        self.open()
        self._mill()

    def _backups(self) -> list[tuple[float, pathlib.Path]]:
        prefix, ext = self.path.stem + "-", self.path.suffix
        found: list[tuple[float, pathlib.Path]] = []
        for candidate in self.path.parent.iterdir():
            name = candidate.name
            if not name.startswith(prefix):
                continue
            stamp = name[len(prefix) :]
            for suffix in (ext + ".gz", ext):
                if suffix and stamp.endswith(suffix):
                    stamp = stamp[: -len(suffix)]
                    break
            else:
                if ext:
                    continue
            try:
                when = datetime.datetime.strptime(stamp, BACKUP_TIME_FORMAT + ".%f").replace(
                    tzinfo=datetime.UTC
                )
            except ValueError:
                continue
            found.append((when.timestamp(), candidate))
        return sorted(found, reverse=True)

    def _mill(self) -> None:
        """Remove backups beyond the count and age limits; compress what stays."""
        backups = self._backups()
        doomed: list[pathlib.Path] = []
        if self.max_backups > 0 and len(backups) > self.max_backups:
            kept, extra = backups[: self.max_backups], backups[self.max_backups :]
            # A backup and its compressed twin count once, as lumberjack counts them.
            seen = {p.name.removesuffix(".gz") for _, p in kept}
            doomed += [p for _, p in extra if p.name.removesuffix(".gz") not in seen]
            backups = kept
        if self.max_age > 0:
            cutoff = time.time() - self.max_age
            doomed += [p for when, p in backups if when < cutoff]
            backups = [(w, p) for w, p in backups if w >= cutoff]
        for p in doomed:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        if self.compress:
            for _, p in backups:
                if p.suffix != ".gz":
                    _gzip(p)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _gzip(path: pathlib.Path) -> None:
    target = path.with_name(path.name + ".gz")
    with path.open("rb") as src, gzip.open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.chmod(target, 0o600)
    path.unlink()


class StdoutFile:
    """``--audit-log-path=-``."""

    def write(self, data: bytes) -> None:
        os.write(1, data)

    def close(self) -> None:
        pass


class LogBackend:
    """Writes encoded events; in batch mode through a queue drained by a writer task."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.file: RotatingFile | StdoutFile = (
            StdoutFile()
            if options.path == "-"
            else RotatingFile(
                pathlib.Path(options.path),
                max_size_mb=options.max_size_mb,
                max_backups=options.max_backups,
                max_age_days=options.max_age_days,
                compress=options.compress,
            )
        )
        self.strict = options.mode == "blocking-strict"
        self.batch = options.mode == "batch"
        self._queue: list[bytes] = []
        self._wake = asyncio.Event()
        self._errors = 0
        self.dropped = 0

    def open(self) -> None:
        if isinstance(self.file, RotatingFile):
            self.file.open()

    def process(self, line: bytes) -> bool:
        """Record one event line (with its newline); False when it could not be."""
        if self.batch:
            if len(self._queue) >= self.options.batch_buffer_size:
                self.dropped += 1
                self._complain("audit buffer queue blocked, dropping an event")
                return False
            self._queue.append(line)
            if len(self._queue) >= self.options.batch_max_size:
                self._wake.set()
            return True
        try:
            self.file.write(line)
        except OSError as exc:
            self._complain(f"cannot write the audit log: {exc}")
            return False
        return True

    def _complain(self, message: str) -> None:
        # One line per hundred failures: a full disk must not flood the server's own log.
        if self._errors % 100 == 0:
            log.error("%s", message)
        self._errors += 1

    async def run_batches(self) -> None:
        """Batch mode's writer: every ``batch_max_wait`` (or at ``batch_max_size`` events)
        write what is queued in one call, in a thread."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.options.batch_max_wait)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        if not self._queue:
            return
        lines, self._queue = self._queue, []
        try:
            await asyncio.to_thread(self.file.write, b"".join(lines))
        except OSError as exc:
            self._complain(f"cannot write the audit log: {exc}")

    async def close(self) -> None:
        await self.flush()
        self.file.close()
