"""Unpacked layers stacked as overlayfs lowerdirs show the image's filesystem (needs root)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from pilothouse.node.runtime.images import store, testimage

pytestmark = pytest.mark.root


def test_whiteouts_and_opaque_dirs_under_overlayfs(
    busybox_layer: bytes, image_store: store.ImageStore, tmp_path: Path
) -> None:
    lower = testimage.LayerBuilder()
    lower.dir("etc").file("etc/motd", b"deleted above").file("etc/keep", b"kept\n")
    lower.dir("var").dir("var/cache").file("var/cache/old", b"hidden above")
    lower.dir("var/cache/sub").file("var/cache/sub/deep", b"hidden too")
    upper = testimage.LayerBuilder()
    upper.whiteout("etc/motd")
    upper.dir("var").dir("var/cache").opaque("var/cache").file("var/cache/new", b"fresh")
    layout = testimage.write_oci_layout(
        tmp_path / "layout", [busybox_layer, lower.tar(), upper.tar()], tag="whiteouts:1"
    )
    [image] = asyncio.run(image_store.import_archive(layout))
    assert len(image.layers) == 3

    target = tmp_path / "rootfs"
    target.mkdir()
    lowerdirs = ":".join(str(p) for p in reversed(image.layers))  # topmost first
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lowerdirs}", str(target)],
        check=True,
    )
    try:
        assert not (target / "etc/motd").exists()
        assert (target / "etc/keep").read_bytes() == b"kept\n"
        assert sorted(p.name for p in (target / "var/cache").iterdir()) == ["new"]
        assert (target / "etc/passwd").is_file()  # from the busybox layer, two below
        # the image runs: busybox from the stack, in a chroot
        out = subprocess.run(
            [
                "chroot",
                str(target),
                "/bin/sh",
                "-c",
                "cat /etc/keep; ls /var/cache; test -e /etc/motd || echo gone",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        assert out.stdout.split() == ["kept", "new", "gone"]
    finally:
        subprocess.run(["umount", str(target)], check=True)
    # the layers themselves were only read
    assert (image.layers[1] / "etc/motd").read_bytes() == b"deleted above"
