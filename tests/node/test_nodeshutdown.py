"""Graceful node shutdown: telling a machine going down from an agent restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilothouse.node import nodeshutdown


def test_a_shutting_down_host_is_told_from_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nodeshutdown, "SCHEDULED", tmp_path / "scheduled")
    monkeypatch.setattr(nodeshutdown.shutil, "which", lambda _: None)  # no systemd here
    assert not nodeshutdown.host_shutting_down()
    (tmp_path / "scheduled").write_text("USEC=1\nMODE=poweroff\n")  # `shutdown +1` leaves it
    assert nodeshutdown.host_shutting_down()
