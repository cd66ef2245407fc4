"""Subpaths stay inside their volume however the volume's tree is built; fsGroup ownership
follows upstream's bits and its OnRootMismatch shortcut."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pilothouse.node import subpath, volume_ownership


def test_subpath_resolving_inside_the_volume_is_opened(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    (root / "real" / "dir").mkdir(parents=True)
    (root / "link").symlink_to("real")  # a link that stays inside is fine (configMap keys)
    fd = subpath.open_safely(root, "link/dir")
    try:
        assert os.fstat(fd).st_ino == (root / "real" / "dir").stat().st_ino
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("make", "sub_path", "message"),
    [
        (lambda r: (r / "out").symlink_to("/etc"), "out", "points outside of its volume"),
        (lambda r: (r / "up").symlink_to(".."), "up/x", "points outside of its volume"),
        (lambda r: None, "/abs", "must not be an absolute path"),
        (lambda r: None, "a/../../b", "must not contain '..'"),
    ],
)
def test_subpath_escaping_its_volume_is_refused(
    tmp_path: Path, make: object, sub_path: str, message: str
) -> None:
    root = tmp_path / "vol"
    root.mkdir()
    make(root)  # type: ignore[operator]
    with pytest.raises(subpath.SubPathError) as err:
        subpath.open_safely(root, sub_path)
    assert message in str(err.value)


def test_missing_subpath_directories_get_the_volume_roots_mode(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    root.mkdir()
    root.chmod(0o2775)
    old = os.umask(0o077)
    try:
        subpath.make_dirs(root, "a/b/c")
    finally:
        os.umask(old)
    for p in (root / "a", root / "a" / "b", root / "a" / "b" / "c"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o2775
    # A symlink on the way ends the walk: nothing is created through it.
    (root / "a" / "jump").symlink_to(tmp_path)
    subpath.make_dirs(root, "a/jump/evil")
    assert not (tmp_path / "evil").exists()


@pytest.mark.root
def test_fs_group_ownership_and_on_root_mismatch(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_text("x")
    (root / "f").write_text("y")
    os.chmod(root / "f", 0o600)
    (root / "l").symlink_to("/etc/hostname")
    assert volume_ownership.set_volume_ownership(root, 4242)
    for p in (root, root / "d", root / "d" / "f", root / "f"):
        assert p.stat().st_gid == 4242
    assert os.lstat(root / "l").st_gid == 4242
    assert stat.S_IMODE((root / "f").stat().st_mode) == 0o660  # group rw added
    assert stat.S_IMODE(root.stat().st_mode) & 0o2070 == 0o2070  # setgid, group rwx
    assert stat.S_IMODE(Path("/etc/hostname").stat().st_mode) != 0o660  # not through links
    # OnRootMismatch: the root already fits, so nothing is walked.
    os.chown(root / "f", -1, 0)
    assert not volume_ownership.set_volume_ownership(root, 4242, policy="OnRootMismatch")
    assert (root / "f").stat().st_gid == 0
    # Always walks again.
    assert volume_ownership.set_volume_ownership(root, 4242, policy="Always")
    assert (root / "f").stat().st_gid == 4242
    # A root with another group is a mismatch.
    assert volume_ownership.set_volume_ownership(root, 4343, policy="OnRootMismatch")
    assert (root / "f").stat().st_gid == 4343


@pytest.mark.root
def test_subpath_bind_mounts_the_checked_directory(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    (root / "data").mkdir(parents=True)
    target = tmp_path / "pod" / "volume-subpaths" / "v" / "c" / "0"
    try:
        assert subpath.bind(root, "data", target) is False
        assert subpath.mounted(target)
        assert target.stat().st_ino == (root / "data").stat().st_ino
        # Binding again (a restarted container) replaces the mount, never stacks it.
        subpath.bind(root, "data", target)
        table = Path("/proc/self/mountinfo").read_text()
        assert sum(1 for line in table.splitlines() if line.split()[4] == str(target)) == 1
        (root / "file").write_text("f")
        file_target = target.with_name("1")
        assert subpath.bind(root, "file", file_target) is True
        assert file_target.read_text() == "f"
    finally:
        for t in (target, target.with_name("1")):
            while subpath.mounted(t):
                subpath.unmount(str(t))
