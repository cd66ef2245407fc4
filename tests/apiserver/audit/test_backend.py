"""The audit log file: modes, rotation by size, backups by count and age, compression."""

from __future__ import annotations

import gzip
import stat
import time
from pathlib import Path

import pytest

from pilothouse.apiserver.audit import backend


def rotating(path: Path, *, max_bytes: int, **kw: object) -> backend.RotatingFile:
    f = backend.RotatingFile(path, max_size_mb=1, max_backups=0, max_age_days=0, compress=False)
    for key, value in kw.items():
        setattr(f, key, value)
    f.max_bytes = max_bytes  # kilobytes instead of megabytes, to test without writing much
    return f


def backups(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


def test_new_file_is_private_in_a_private_directory(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.log"
    f = rotating(path, max_bytes=1000)
    f.write(b"one\n")
    f.close()
    assert path.read_bytes() == b"one\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_rotates_before_a_write_would_pass_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    f = rotating(path, max_bytes=100)
    for i in range(5):
        f.write(f"{i:039d}\n".encode())  # 40 bytes each: two fit in a file
        time.sleep(0.002)  # distinct backup names (milliseconds)
    f.close()
    names = backups(path)
    assert len(names) == 2
    assert all(n.startswith("audit-") and n.endswith(".log") for n in names)
    assert path.read_bytes() == f"{4:039d}\n".encode()
    assert sum(len((tmp_path / n).read_bytes()) for n in names) == 160
    # The backup name is the UTC time of the rotation, as lumberjack names it.
    stamp = names[0][len("audit-") : -len(".log")]
    assert time.strptime(stamp.split(".")[0], "%Y-%m-%dT%H-%M-%S")


def test_an_existing_file_is_appended_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(b"x" * 90)
    f = rotating(path, max_bytes=100)
    f.write(b"0123456789ab\n")
    f.close()
    assert path.read_bytes() == b"0123456789ab\n"
    assert len(backups(path)) == 1


def test_max_backups_and_age(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    old = tmp_path / "audit-2001-01-01T00-00-00.000.log"
    old.write_bytes(b"ancient\n")
    unrelated = tmp_path / "other.txt"
    unrelated.write_bytes(b"keep me")
    f = rotating(path, max_bytes=20, max_backups=2, max_age=30 * 86400)
    for i in range(6):
        f.write(f"line {i:02d} ......\n".encode())
        time.sleep(0.002)
    f.close()
    names = backups(path)
    assert "other.txt" in names and old.name not in names
    assert len([n for n in names if n.startswith("audit-")]) == 2


def test_compressed_backups(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    f = rotating(path, max_bytes=20, compress=True)
    f.write(b"first line here..\n")
    f.write(b"second line here.\n")
    f.close()
    (name,) = backups(path)
    assert name.endswith(".log.gz")
    assert gzip.decompress((tmp_path / name).read_bytes()) == b"first line here..\n"


def test_a_write_larger_than_a_file_fails(tmp_path: Path) -> None:
    f = rotating(tmp_path / "audit.log", max_bytes=10)
    with pytest.raises(OSError, match="exceeds maximum file size"):
        f.write(b"x" * 11)


async def test_blocking_mode_writes_at_once(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    b = backend.LogBackend(backend.Options(path=str(path)))
    b.open()
    assert b.process(b'{"a":1}\n')
    assert path.read_bytes() == b'{"a":1}\n'
    await b.close()


async def test_batch_mode_writes_in_groups_and_flushes_on_close(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "a.log"
    b = backend.LogBackend(
        backend.Options(
            path=str(path), mode="batch", batch_max_size=3, batch_max_wait=10, batch_buffer_size=5
        )
    )
    b.open()
    writer = asyncio.get_running_loop().create_task(b.run_batches())
    try:
        for i in range(2):
            assert b.process(f"{i}\n".encode())
        await asyncio.sleep(0.05)
        assert path.read_bytes() == b""  # neither the size nor the wait reached
        assert b.process(b"2\n")  # the third event fills a batch
        for _ in range(100):
            await asyncio.sleep(0.01)
            if path.read_bytes():
                break
        assert path.read_bytes() == b"0\n1\n2\n"
        for i in range(3, 8):
            assert b.process(f"{i}\n".encode())
        assert not b.process(b"8\n")  # the buffer holds five: a sixth is dropped
        assert b.dropped == 1
    finally:
        writer.cancel()
    await b.close()
    assert path.read_bytes() == b"".join(f"{i}\n".encode() for i in range(8))


async def test_write_failures_are_reported_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_bytes(b"")
    b = backend.LogBackend(backend.Options(path=str(blocker / "a.log")))
    assert not b.process(b"x\n")  # the directory cannot be made: reported, not raised
    assert not b.process(b"y\n")
    strict = backend.LogBackend(
        backend.Options(path=str(blocker / "a.log"), mode="blocking-strict")
    )
    assert strict.strict and not strict.process(b"x\n")
