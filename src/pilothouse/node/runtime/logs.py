"""Container log files in the CRI format.

conmon writes one record a line: ``<RFC3339Nano time> <stdout|stderr> <F|P> <text>``,
where ``P`` marks a partial line (a long line split, or output without a
newline yet) and ``F`` the end of one. ``kubectl logs`` joins partials back.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(rb"^(\S+) (stdout|stderr) ([FP]) ?(.*)$", re.DOTALL)


@dataclass(frozen=True)
class LogRecord:
    time: str
    stream: str  # stdout | stderr
    partial: bool
    content: bytes


def parse_line(raw: bytes) -> LogRecord | None:
    """One CRI log line (without its newline); None when it is not one."""
    m = _LINE.match(raw.rstrip(b"\n"))
    if m is None:
        return None
    return LogRecord(
        time=m.group(1).decode(),
        stream=m.group(2).decode(),
        partial=m.group(3) == b"P",
        content=m.group(4),
    )


def parse(lines: Iterable[bytes]) -> Iterator[LogRecord]:
    for raw in lines:
        rec = parse_line(raw)
        if rec is not None:
            yield rec


def messages(path: Path, *, stream: str | None = None) -> list[bytes]:
    """Whole messages (partials joined) of one log file, oldest first."""
    out: list[bytes] = []
    pending: dict[str, bytes] = {}
    try:
        with open(path, "rb") as f:
            for rec in parse(f):
                if stream is not None and rec.stream != stream:
                    continue
                buf = pending.pop(rec.stream, b"") + rec.content
                if rec.partial:
                    pending[rec.stream] = buf
                else:
                    out.append(buf)
    except FileNotFoundError:
        return []
    out.extend(pending.values())
    return out


def ensure_dir(log_path: str) -> None:
    """Make the log file's directory (kubelet's /var/log/pods/<ns>_<name>_<uid>/<container>/)."""
    os.makedirs(os.path.dirname(log_path) or ".", mode=0o755, exist_ok=True)
