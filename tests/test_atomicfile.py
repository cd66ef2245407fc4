"""atomicfile.write: the content and exact mode asked for, the old file replaced whole,
both fsyncs (or none when not durable), and no temporary file left behind whether
the write succeeds or fails."""

from __future__ import annotations

import os
import pathlib
import stat

import pytest

from pilothouse import atomicfile


def mode_of(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o400])
def test_writes_content_with_the_mode_asked(tmp_path: pathlib.Path, mode: int) -> None:
    target = tmp_path / "ca.key"
    atomicfile.write(target, b"secret\n", mode=mode)
    assert target.read_bytes() == b"secret\n"
    assert mode_of(target) == mode
    assert os.listdir(tmp_path) == ["ca.key"]


def test_the_umask_does_not_narrow_the_mode(tmp_path: pathlib.Path) -> None:
    old = os.umask(0o077)
    try:
        atomicfile.write(tmp_path / "resolv.conf", b"nameserver 10.0.0.10\n", mode=0o644)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "resolv.conf") == 0o644


def test_replaces_an_existing_file_and_its_mode(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "config.json"
    target.write_bytes(b"old content that is longer than the new")
    target.chmod(0o666)
    atomicfile.write(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new"
    assert mode_of(target) == 0o600
    assert os.listdir(tmp_path) == ["config.json"]


def test_durable_fsyncs_the_file_and_then_the_directory(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[bool, bool]] = []  # (is a directory, target already in place)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append((stat.S_ISDIR(os.fstat(fd).st_mode), (tmp_path / "f").exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomicfile.write(tmp_path / "f", b"x", mode=0o600)
    assert synced == [(False, False), (True, True)]

    synced.clear()
    atomicfile.write(tmp_path / "f", b"y", mode=0o600, durable=False)
    assert synced == []
    assert (tmp_path / "f").read_bytes() == b"y"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "encryption-config.json"
    target.write_bytes(b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        atomicfile.write(target, b"new", mode=0o600)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["encryption-config.json"]


def test_a_failed_rename_leaves_no_temporary(tmp_path: pathlib.Path) -> None:
    # A directory in the way: the rename fails after the temporary file was written.
    (tmp_path / "kubeconfig").mkdir()
    with pytest.raises(IsADirectoryError):
        atomicfile.write(tmp_path / "kubeconfig", b"apiVersion: v1\n", mode=0o600)
    assert os.listdir(tmp_path) == ["kubeconfig"]
    assert (tmp_path / "kubeconfig").is_dir()


def test_a_missing_directory_is_an_error_not_created(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomicfile.write(tmp_path / "absent" / "f", b"x", mode=0o600)
    assert os.listdir(tmp_path) == []
