"""CRI log lines."""

from __future__ import annotations

from pathlib import Path

from pilothouse.node.runtime import logs


def test_parse_line() -> None:
    rec = logs.parse_line(b"2024-01-02T03:04:05.123456789Z stdout F hello world\n")
    assert rec == logs.LogRecord("2024-01-02T03:04:05.123456789Z", "stdout", False, b"hello world")
    rec = logs.parse_line(b"2024-01-02T03:04:05.1+00:00 stderr P ")
    assert rec is not None and rec.partial and rec.content == b"" and rec.stream == "stderr"
    assert logs.parse_line(b"garbage") is None


def test_messages_join_partials(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(b"t1 stdout P abc\nt2 stderr F oops\nt3 stdout F def\nt4 stdout P tail\n")
    assert logs.messages(path) == [b"oops", b"abcdef", b"tail"]
    assert logs.messages(path, stream="stderr") == [b"oops"]
    assert logs.messages(tmp_path / "missing.log") == []


def test_ensure_dir(tmp_path: Path) -> None:
    logs.ensure_dir(str(tmp_path / "ns_pod_uid" / "app" / "0.log"))
    assert (tmp_path / "ns_pod_uid" / "app").is_dir()
