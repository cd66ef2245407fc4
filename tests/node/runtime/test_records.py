"""The runtime's record files: written whole with their modes, and never fsynced (the
agent writes them on its event loop at every step of every container)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pilothouse.node.runtime import records


def test_a_record_round_trips_without_fsync_or_leftovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fsync(fd: int) -> None:
        raise AssertionError("the runtime's records are not fsynced")

    monkeypatch.setattr(os, "fsync", no_fsync)
    rec = records.ContainerRecord(
        id="c1",
        sandbox_id="s1",
        name="app",
        attempt=0,
        image_id="sha256:abc",
        image_ref="busybox",
        log_path="/var/log/pods/app/0.log",
        cgroup_path="/pods/s1/c1",
        created_at=1.5,
    )
    rec.save(tmp_path)
    rec.exit_code, rec.finished = 3, True
    rec.save(tmp_path)
    assert records.ContainerRecord.load(tmp_path) == rec
    assert os.listdir(tmp_path) == [records.RECORD]
    assert stat.S_IMODE((tmp_path / records.RECORD).stat().st_mode) == 0o644


def test_write_atomic_keeps_the_mode_asked(tmp_path: Path) -> None:
    records.write_atomic(tmp_path / "config.json", b"{}", mode=0o600)
    assert (tmp_path / "config.json").read_bytes() == b"{}"
    assert stat.S_IMODE((tmp_path / "config.json").stat().st_mode) == 0o600
