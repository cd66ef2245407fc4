"""The busybox test image: deterministic, complete, and a valid OCI layout."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import orjson
import pytest

from pilothouse.node.runtime.images import content, mediatypes, testimage


def test_build_busybox_oci(tmp_path: Path) -> None:
    try:
        busybox = testimage.find_busybox()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    first = testimage.build_busybox_oci(tmp_path / "one")
    second = testimage.build_busybox_oci(tmp_path / "two", tag="busybox:1.36")
    assert (first / "index.json").read_bytes() == (
        second / "index.json"
    ).read_bytes()  # reproducible
    assert orjson.loads((first / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}

    [desc] = orjson.loads((first / "index.json").read_bytes())["manifests"]
    assert desc["annotations"] == {
        "org.opencontainers.image.ref.name": "busybox:1.36",
        "io.containerd.image.name": "docker.io/library/busybox:1.36",
    }

    def blob(digest: str) -> bytes:
        data = (first / "blobs" / "sha256" / content.hex_of(digest)).read_bytes()
        assert content.sha256_digest(data) == digest
        return data

    manifest = orjson.loads(blob(desc["digest"]))
    config = orjson.loads(blob(manifest["config"]["digest"]))
    assert config["config"] == {"Env": [testimage.PATH_ENV], "Cmd": ["sh"]}
    assert config["architecture"] == mediatypes.host_platform().architecture
    [layer_desc] = manifest["layers"]
    assert layer_desc["mediaType"] == mediatypes.OCI_LAYER_GZIP
    with tarfile.open(fileobj=io.BytesIO(blob(layer_desc["digest"])), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert (
        members["bin/busybox"].size == busybox.stat().st_size
        and members["bin/busybox"].mode == 0o755
    )
    applets = subprocess.run(
        [str(busybox), "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "bin/busybox":
            assert members[applet].issym() and members[applet].linkname == "/bin/busybox", applet
    assert members["tmp"].mode == 0o1777 and members["root"].mode == 0o700
    assert {"etc/passwd", "etc/group", "usr", "usr/bin", "sbin"} <= set(members)
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == 0 for m in members.values())


def test_oci_archive_looks_like_skopeos(tmp_path: Path) -> None:
    layout = testimage.write_oci_layout(
        tmp_path / "l", [testimage.LayerBuilder().file("a", b"a").tar()]
    )
    archive = testimage.oci_archive(layout)
    assert archive == tmp_path / "l.tar"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert {"oci-layout", "index.json", "blobs", "blobs/sha256"} <= set(names)
    assert sum(n.startswith("blobs/sha256/") for n in names) == 3  # manifest, config, layer


def test_static_elf_check(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    assert not testimage._is_static_elf(script)
    assert not testimage._is_static_elf(Path("/bin/true") if Path("/bin/true").exists() else script)
