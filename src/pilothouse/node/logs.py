"""Reading container logs in the CRI format, for ``kubectl logs``.

Each line of a log file is ``<RFC3339Nano time> <stdout|stderr> <F|P> <text>``;
``P`` marks a partial line continued by the next record. Options follow the
kubelet's: ``tailLines``, ``sinceSeconds``/``sinceTime``, ``timestamps``,
``limitBytes``, ``follow`` (keep reading as the file grows, and across a
rotation), ``previous`` (the attempt before the current one).
"""

from __future__ import annotations

import asyncio
import collections
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

FOLLOW_POLL_S = 0.1


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    since: float | None = None  # unix time
    timestamps: bool = False
    limit_bytes: int | None = None


def parse_line(raw: bytes) -> tuple[str, str, bool, bytes] | None:
    """(timestamp, stream, complete, text) of one record; None if malformed."""
    parts = raw.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    text = parts[3] if len(parts) == 4 else b""
    return (
        parts[0].decode(errors="replace"),
        parts[1].decode(errors="replace"),
        parts[2] != b"P",
        text,
    )


def _ts(stamp: str) -> float:
    try:
        # Python parses at most microseconds: trim nanoseconds.
        main, _, frac = stamp.rstrip("Z").partition(".")
        return datetime.fromisoformat(f"{main}.{frac[:6] or '0'}+00:00").timestamp()
    except ValueError:
        return 0.0


def _render(stamp: str, text: bytes, opts: LogOptions) -> bytes:
    line = text + b"\n"
    return (stamp.encode() + b" " + line) if opts.timestamps else line


def _records(data: bytes, opts: LogOptions) -> list[bytes]:
    out: list[bytes] = []
    partial = b""
    for raw in data.splitlines():
        parsed = parse_line(raw)
        if parsed is None:
            continue
        stamp, _, complete, text = parsed
        if opts.since is not None and _ts(stamp) < opts.since:
            partial = b""
            continue
        if not complete:
            partial += text
            continue
        out.append(_render(stamp, partial + text, opts))
        partial = b""
    return out


def log_files(container_dir: Path) -> list[Path]:
    """Attempt log files of one container, oldest first (``0.log``, ``1.log``, …)."""
    if not container_dir.is_dir():
        return []
    files = [p for p in container_dir.iterdir() if p.suffix == ".log" and p.stem.isdigit()]
    return sorted(files, key=lambda p: int(p.stem))


def _initial(path: Path) -> tuple[bytes, int, int | None]:
    """Everything logged so far (rotated files first), the offset reached, and the inode."""
    rotated = sorted(path.parent.glob(path.name + ".*"), key=lambda p: p.stat().st_mtime)
    data = b"".join(p.read_bytes() for p in rotated if p.is_file())
    if not path.exists():
        return data, 0, None
    with path.open("rb") as f:
        current = f.read()
        return data + current, len(current), os.fstat(f.fileno()).st_ino


def _more(path: Path, offset: int, inode: int | None) -> tuple[bytes, int, int | None]:
    """What was appended since ``offset`` (starting over when the file was rotated)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return b"", offset, inode
    if (inode is not None and st.st_ino != inode) or st.st_size < offset:
        offset = 0  # rotated or truncated: the new file starts over
    if st.st_size == offset:
        return b"", offset, st.st_ino
    with path.open("rb") as f:
        f.seek(offset)
        chunk = f.read()
        return chunk, offset + len(chunk), os.fstat(f.fileno()).st_ino


async def read_logs(path: Path, opts: LogOptions) -> AsyncIterator[bytes]:
    """Yield rendered log lines from one attempt's file (and its rotated predecessors).

    File reads run in a thread: a large log must not stall the event loop."""
    data, offset, inode = await asyncio.to_thread(_initial, path)
    lines = _records(data, opts)
    if opts.tail_lines is not None:
        lines = list(collections.deque(lines, maxlen=max(0, opts.tail_lines)))
    remaining = opts.limit_bytes
    for line in lines:
        if remaining is not None:
            if remaining <= 0:
                return
            line = line[:remaining]
            remaining -= len(line)
        yield line
    if not opts.follow:
        return
    pending = b""
    while True:
        await asyncio.sleep(FOLLOW_POLL_S)
        chunk, offset, inode = await asyncio.to_thread(_more, path, offset, inode)
        if not chunk:
            continue
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in _records(b"\n".join(complete), LogOptions(timestamps=opts.timestamps)):
            if remaining is not None:
                if remaining <= 0:
                    return
                line = line[:remaining]
                remaining -= len(line)
            yield line
