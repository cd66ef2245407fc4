"""Applying a layer tarball: file kinds, metadata, whiteouts, and path-traversal safety."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from pilothouse.node.runtime.images import unpack
from pilothouse.node.runtime.images.testimage import LayerBuilder


def apply(tar: bytes, dest: Path, **kwargs: object) -> unpack.UnpackResult:
    dest.mkdir(exist_ok=True)
    return unpack.apply_layer(io.BytesIO(tar), dest, **kwargs)  # type: ignore[arg-type]


def test_files_dirs_symlinks_modes_and_mtimes(tmp_path: Path) -> None:
    layer = LayerBuilder(mtime=1_000_000)
    layer.dir("etc").file("etc/conf", b"key=value\n", mode=0o640)
    layer.file("usr/bin/tool", b"#!/bin/sh\n", mode=0o4755)  # parents made implicitly
    layer.symlink("bin/sh", "/bin/busybox")  # absolute target kept verbatim
    layer.symlink("etc/rel", "../usr/bin/tool")
    layer.dir("ro", mode=0o555).file("ro/inside", b"x")
    layer.fifo("run/pipe")
    tar = layer.tar()
    dest = tmp_path / "layer"
    result = apply(tar, dest, privileged=False)

    assert result.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert (dest / "etc/conf").read_bytes() == b"key=value\n"
    assert stat.S_IMODE(os.stat(dest / "etc/conf").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(dest / "usr/bin/tool").st_mode) == 0o4755
    assert os.readlink(dest / "bin/sh") == "/bin/busybox"
    assert os.readlink(dest / "etc/rel") == "../usr/bin/tool"
    assert stat.S_IMODE(os.stat(dest / "ro").st_mode) == 0o555
    assert stat.S_ISFIFO(os.lstat(dest / "run/pipe").st_mode)
    # mtimes, directories' included (set after their children were written)
    assert os.stat(dest / "etc/conf").st_mtime == 1_000_000
    assert os.stat(dest / "ro").st_mtime == 1_000_000
    assert os.lstat(dest / "bin/sh").st_mtime == 1_000_000
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o755
    assert result.entries == 8 and result.size == len(b"key=value\n#!/bin/sh\nx")


def test_hardlinks_share_the_inode(tmp_path: Path) -> None:
    tar = LayerBuilder().file("a", b"same").hardlink("dir/b", "a").hardlink("c", "/a").tar()
    dest = tmp_path / "layer"
    apply(tar, dest, privileged=False)
    assert (
        os.stat(dest / "a").st_ino == os.stat(dest / "dir/b").st_ino == os.stat(dest / "c").st_ino
    )
    assert os.stat(dest / "a").st_nlink == 3


def test_hardlink_to_a_lower_layer_gets_a_copy(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    apply(LayerBuilder().file("data/x", b"from below").tar(), lower, privileged=False)
    upper = tmp_path / "upper"
    apply(LayerBuilder().hardlink("y", "data/x").tar(), upper, parents=[lower], privileged=False)
    assert (upper / "y").read_bytes() == b"from below"
    with pytest.raises(unpack.UnpackError, match="points to missing"):
        apply(LayerBuilder().hardlink("z", "nope").tar(), tmp_path / "other", privileged=False)


def test_later_entries_replace_earlier_ones(tmp_path: Path) -> None:
    layer = LayerBuilder().file("p", b"file first").dir("p").file("p/child", b"c")
    layer.dir("q").file("q/old", b"o").file("q", b"now a file")
    layer.file("r", b"one").file("r", b"two")
    dest = tmp_path / "layer"
    apply(layer.tar(), dest, privileged=False)
    assert (dest / "p/child").read_bytes() == b"c"
    assert (dest / "q").read_bytes() == b"now a file"
    assert (dest / "r").read_bytes() == b"two"


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "../../../../../../tmp/evil"])
def test_entries_climbing_out_are_rejected(tmp_path: Path, name: str) -> None:
    layer = LayerBuilder()
    layer.file(name, b"pwned")
    with pytest.raises(unpack.UnpackError, match="escapes the layer"):
        apply(layer.tar(), tmp_path / "layer", privileged=False)
    assert not (tmp_path / "evil").exists()


def test_hardlink_out_of_the_layer_is_rejected(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host file")
    tar = LayerBuilder().hardlink("stolen", "../secret").tar()
    with pytest.raises(unpack.UnpackError, match="escapes the layer"):
        apply(tar, tmp_path / "layer", privileged=False)
    assert os.stat(secret).st_nlink == 1


def test_symlinks_are_followed_inside_the_layer_only(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    layer = LayerBuilder()
    layer.symlink("root-link", "/")  # "/" means the layer's root
    layer.file("root-link/etc/evil", b"stays inside")
    layer.symlink("up", "../../../..")
    layer.file("up/x", b"also inside")
    layer.symlink("abs", str(outside))
    layer.file("abs/y", b"inside too")
    dest = tmp_path / "layer"
    apply(layer.tar(), dest, privileged=False)
    assert (dest / "etc/evil").read_bytes() == b"stays inside"
    assert (dest / "x").read_bytes() == b"also inside"
    assert (dest / str(outside).lstrip("/") / "y").read_bytes() == b"inside too"
    assert list(outside.iterdir()) == []
    assert os.readlink(dest / "abs") == str(outside)  # the link itself is kept as written


def test_a_file_as_parent_directory_is_rejected(tmp_path: Path) -> None:
    tar = LayerBuilder().file("f", b"x").file("f/child", b"y").tar()
    with pytest.raises(unpack.UnpackError, match="not a directory"):
        apply(tar, tmp_path / "layer", privileged=False)


def test_unprivileged_unpack_refuses_whiteouts_and_skips_devices(tmp_path: Path) -> None:
    with pytest.raises(unpack.UnpackError, match="needs root"):
        apply(LayerBuilder().whiteout("etc/gone").tar(), tmp_path / "a", privileged=False)
    apply(LayerBuilder().device("dev/null").file("ok", b"").tar(), tmp_path / "b", privileged=False)
    assert not (tmp_path / "b/dev/null").exists()
    assert (tmp_path / "b/ok").exists()


def test_aufs_metadata_whiteouts_are_ignored(tmp_path: Path) -> None:
    tar = LayerBuilder().file(".wh..wh.plnk/123.456", b"").file(".wh..wh.aufs", b"").tar()
    dest = tmp_path / "layer"
    apply(tar, dest, privileged=False)
    assert list(dest.iterdir()) == []


def test_open_layer_tells_compression_by_magic(tmp_path: Path) -> None:
    tar = LayerBuilder().file("hello", b"world").tar()
    blobs = {"plain": tar, "gzip": gzip.compress(tar)}
    zstd = shutil.which("zstd")
    if zstd:
        blobs["zstd"] = subprocess.run(
            [zstd, "-q", "-c"], input=tar, capture_output=True, check=True
        ).stdout
    for kind, blob in blobs.items():
        path = tmp_path / kind
        path.write_bytes(blob)
        dest = tmp_path / f"{kind}-layer"
        dest.mkdir()
        with unpack.open_layer(path) as stream:
            result = unpack.apply_layer(stream, dest, privileged=False)
        assert result.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest(), kind
        assert (dest / "hello").read_bytes() == b"world"


def test_corrupt_gzip_is_an_unpack_error(tmp_path: Path) -> None:
    blob = bytearray(gzip.compress(LayerBuilder().file("a", os.urandom(100_000)).tar()))
    blob[len(blob) // 2] ^= 0xFF
    path = tmp_path / "bad"
    path.write_bytes(bytes(blob))
    dest = tmp_path / "layer"
    dest.mkdir()
    with pytest.raises(unpack.UnpackError), unpack.open_layer(path) as stream:
        unpack.apply_layer(stream, dest, privileged=False)


@pytest.mark.root
def test_privileged_unpack_keeps_owners_devices_xattrs_and_makes_overlay_whiteouts(
    tmp_path: Path,
) -> None:
    layer = LayerBuilder()
    layer.file("home/u/file", b"mine", uid=1000, gid=1001, mode=0o2755)
    layer.dir("home/u", uid=1000, gid=1000, mode=0o750)
    layer.symlink("home/u/link", "file")
    layer.device("dev/null", major=1, minor=3)
    layer.file(
        "bin/ping",
        b"elf",
        mode=0o755,
        xattrs={"user.pilothouse": b"\x00\xffraw", "trusted.overlay.redirect": b"/etc"},
    )
    layer.whiteout("etc/removed")
    layer.opaque("var/cache")
    layer.opaque("")  # the layer root itself
    dest = tmp_path / "layer"
    apply(layer.tar(), dest)

    st = os.stat(dest / "home/u/file")
    assert (st.st_uid, st.st_gid) == (1000, 1001)
    assert stat.S_IMODE(st.st_mode) == 0o2755  # setgid survives the chown
    assert (os.stat(dest / "home/u").st_uid, stat.S_IMODE(os.stat(dest / "home/u").st_mode)) == (
        1000,
        0o750,
    )
    dev = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(dev.st_mode) and os.major(dev.st_rdev) == 1 and os.minor(dev.st_rdev) == 3
    assert os.getxattr(dest / "bin/ping", "user.pilothouse") == b"\x00\xffraw"
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "bin/ping")  # never from an image
    whiteout = os.lstat(dest / "etc/removed")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert not (dest / "etc/.wh.removed").exists()
    assert os.getxattr(dest / "var/cache", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(dest, "trusted.overlay.opaque") == b"y"
    assert not (dest / "var/cache/.wh..wh..opq").exists()
