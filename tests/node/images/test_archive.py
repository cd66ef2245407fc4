"""Importing OCI archives and docker save tarballs (plain and gzipped)."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import orjson
import pytest

from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import archive, content, mediatypes, store, testimage


def _stored_blobs(image_store: store.ImageStore) -> set[str]:
    return set(image_store.blobs.digests())


async def test_import_oci_archive(
    busybox_layout: Path, image_store: store.ImageStore, tmp_path: Path
) -> None:
    tar = testimage.oci_archive(busybox_layout, tmp_path / "busybox.tar")
    [image] = await image_store.import_archive(tar)
    manifest_digest = orjson.loads((busybox_layout / "index.json").read_bytes())["manifests"][0][
        "digest"
    ]
    assert image.repo_tags == ("docker.io/library/busybox:1.36",)
    assert image.repo_digests == (f"docker.io/library/busybox@{manifest_digest}",)
    assert (image.layers[0] / "bin/busybox").is_file()
    assert image_store.get("busybox:1.36") == image
    # the layer blob is gone once unpacked; manifest and config stay
    assert _stored_blobs(image_store) == {image.id, manifest_digest}
    assert list(image_store.blobs.ingest_dir.iterdir()) == []


async def test_import_gzipped_oci_archive_and_layout_dir(
    busybox_layout: Path, image_store: store.ImageStore, tmp_path: Path
) -> None:
    tar = testimage.oci_archive(busybox_layout, tmp_path / "busybox.tar")
    gz = tmp_path / "busybox.tar.gz"
    gz.write_bytes(gzip.compress(tar.read_bytes()))
    [from_gz] = await image_store.import_archive(gz)
    other = store.ImageStore(tmp_path / "other")
    [from_dir] = await other.import_archive(busybox_layout)
    assert from_gz.id == from_dir.id
    assert from_gz.repo_tags == from_dir.repo_tags == ("docker.io/library/busybox:1.36",)
    assert (from_dir.layers[0] / "bin/busybox").is_file()
    assert (busybox_layout / "index.json").is_file()  # the source directory is left alone


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _docker_save(path: Path, images: list[tuple[list[str], list[bytes]]]) -> list[str]:
    """A `docker save` tarball (legacy layout: <id>/layer.tar, <config>.json); the image ids.

    A layer shared by two images is stored once, the second time as a symlink, as
    docker does.
    """
    entries, repositories, ids, seen = [], {}, [], {}
    with tarfile.open(path, "w") as tar:
        for tags, layers in images:
            diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
            layer_paths = []
            for diff_id, layer in zip(diff_ids, layers, strict=True):
                layer_dir = diff_id[7:]
                if diff_id in seen:
                    link = tarfile.TarInfo(f"{layer_dir}x/layer.tar")
                    link.type = tarfile.SYMTYPE
                    link.linkname = f"../{seen[diff_id]}"
                    tar.addfile(link)
                    layer_paths.append(link.name)
                    continue
                _add(tar, f"{layer_dir}/VERSION", b"1.0")
                _add(tar, f"{layer_dir}/layer.tar", layer)
                seen[diff_id] = f"{layer_dir}/layer.tar"
                layer_paths.append(f"{layer_dir}/layer.tar")
            config = orjson.dumps(
                {
                    "architecture": mediatypes.host_platform().architecture,
                    "os": "linux",
                    "config": {"Cmd": ["sh"], "WorkingDir": "/srv", "ExposedPorts": {"80/tcp": {}}},
                    "rootfs": {"type": "layers", "diff_ids": diff_ids},
                }
            )
            config_id = hashlib.sha256(config).hexdigest()
            _add(tar, f"{config_id}.json", config)
            ids.append("sha256:" + config_id)
            entries.append({"Config": f"{config_id}.json", "RepoTags": tags, "Layers": layer_paths})
            for tag in tags:
                repo, _, name = tag.rpartition(":")
                repositories.setdefault(repo, {})[name] = config_id
        _add(tar, "manifest.json", orjson.dumps(entries))
        _add(tar, "repositories", orjson.dumps(repositories))
    return ids


async def test_import_docker_save(
    busybox_layer: bytes, image_store: store.ImageStore, tmp_path: Path
) -> None:
    extra = testimage.LayerBuilder().dir("srv").file("srv/index.html", b"hello").tar()
    path = tmp_path / "save.tar"
    ids = _docker_save(
        path,
        [
            (["example.com/app:v1", "app:latest"], [busybox_layer, extra]),
            (["busybox:1.36"], [busybox_layer]),
        ],
    )
    app, bb = await image_store.import_archive(path)
    assert [app.id, bb.id] == ids
    assert app.repo_tags == ("example.com/app:v1", "docker.io/library/app:latest")
    assert app.repo_digests == ()
    assert app.working_dir == "/srv" and app.exposed_ports == ("80/tcp",)
    assert app.layers[0] == bb.layers[0]  # one directory for the shared layer
    assert (app.layers[1] / "srv/index.html").read_bytes() == b"hello"
    assert image_store.layers.unpacks == 2
    # gzipped, into a new store: the same images
    gz = tmp_path / "save.tar.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    again = await store.ImageStore(tmp_path / "other").import_archive(gz)
    assert [i.id for i in again] == ids


async def test_oci_ref_name_that_is_only_a_tag(
    busybox_layer: bytes, image_store: store.ImageStore, tmp_path: Path
) -> None:
    layout = testimage.write_oci_layout(tmp_path / "layout", [busybox_layer])
    index = orjson.loads((layout / "index.json").read_bytes())
    index["manifests"][0]["annotations"] = {mediatypes.ANNOTATION_REF_NAME: "v2"}
    (layout / "index.json").write_bytes(orjson.dumps(index))
    [untagged] = await image_store.import_archive(layout)
    assert untagged.repo_tags == () and image_store.get(untagged.id) == untagged
    [named] = await image_store.import_archive(layout, name="example.com/team/app")
    assert named.repo_tags == ("example.com/team/app:v2",)


async def test_broken_archives(
    busybox_layout: Path, image_store: store.ImageStore, tmp_path: Path
) -> None:
    not_tar = tmp_path / "x.tar"
    not_tar.write_bytes(b"hello, not an archive" * 100)
    with pytest.raises(archive.ArchiveError, match="not a readable tar archive"):
        await image_store.import_archive(not_tar)

    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w") as tar:
        _add(tar, "README", b"nothing here")
    with pytest.raises(archive.ArchiveError, match="neither an OCI image layout"):
        await image_store.import_archive(empty)

    # a blob whose bytes do not match its name
    tar_path = testimage.oci_archive(busybox_layout, tmp_path / "good.tar")
    bad = tmp_path / "bad.tar"
    with tarfile.open(tar_path) as src, tarfile.open(bad, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isreg() else None  # type: ignore[union-attr]
            if data is not None and member.name.startswith("blobs/") and member.size > 10_000:
                data = b"X" + data[1:]
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    with pytest.raises(archive.ArchiveError, match="corrupt blob: digest mismatch"):
        await image_store.import_archive(bad)
    assert list(image_store.blobs.ingest_dir.iterdir()) == []

    # a layout whose index names a blob it does not have
    layout = tmp_path / "missing"
    testimage.write_oci_layout(layout, [testimage.LayerBuilder().file("a", b"a").tar()])
    manifest = orjson.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"]
    (layout / "blobs" / "sha256" / content.hex_of(manifest)).unlink()
    with pytest.raises(archive.ArchiveError, match=f"blob {manifest} is missing from the archive"):
        await image_store.import_archive(layout)


async def test_layer_not_matching_its_diff_id(
    image_store: store.ImageStore, tmp_path: Path
) -> None:
    layer = testimage.LayerBuilder().file("a", b"a").tar()
    layout = testimage.write_oci_layout(tmp_path / "layout", [layer], tag="liar:1")
    manifest_digest = orjson.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"]
    manifest = orjson.loads(
        (layout / "blobs/sha256" / content.hex_of(manifest_digest)).read_bytes()
    )
    config_path = layout / "blobs/sha256" / content.hex_of(manifest["config"]["digest"])
    config = orjson.loads(config_path.read_bytes())
    config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    new_config = orjson.dumps(config)
    (layout / "blobs/sha256" / content.hex_of(content.sha256_digest(new_config))).write_bytes(
        new_config
    )
    manifest["config"] = {
        **manifest["config"],
        "digest": content.sha256_digest(new_config),
        "size": len(new_config),
    }
    new_manifest = orjson.dumps(manifest)
    (layout / "blobs/sha256" / content.hex_of(content.sha256_digest(new_manifest))).write_bytes(
        new_manifest
    )
    index = orjson.loads((layout / "index.json").read_bytes())
    index["manifests"][0].update(digest=content.sha256_digest(new_manifest), size=len(new_manifest))
    (layout / "index.json").write_bytes(orjson.dumps(index))
    with pytest.raises(
        protocol.ImagePullError, match="digest mismatch: unexpected commit digest sha256:"
    ):
        await image_store.import_archive(layout)
    assert image_store.list() == []
    assert [p.name for p in image_store.layers.root.iterdir()] == []


async def test_digests_that_are_paths_are_refused(
    image_store: store.ImageStore, tmp_path: Path
) -> None:
    layer = testimage.LayerBuilder().file("a", b"a").tar()
    evil = "sha256:" + ("../" * 21) + "x"  # 64 characters after the colon, none of them hex
    layout = testimage.write_oci_layout(tmp_path / "layout", [layer])
    index = orjson.loads((layout / "index.json").read_bytes())
    manifest_path = layout / "blobs/sha256" / content.hex_of(index["manifests"][0]["digest"])
    manifest = orjson.loads(manifest_path.read_bytes())
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [evil]},
    }
    config_bytes = orjson.dumps(config)
    (layout / "blobs/sha256" / content.hex_of(content.sha256_digest(config_bytes))).write_bytes(
        config_bytes
    )
    manifest["config"].update(digest=content.sha256_digest(config_bytes), size=len(config_bytes))
    body = orjson.dumps(manifest)
    (layout / "blobs/sha256" / content.hex_of(content.sha256_digest(body))).write_bytes(body)
    index["manifests"][0].update(digest=content.sha256_digest(body), size=len(body))
    (layout / "index.json").write_bytes(orjson.dumps(index))
    with pytest.raises(protocol.ImagePullError, match="invalid image: unsupported digest"):
        await image_store.import_archive(layout)
    assert image_store.list() == []


async def test_import_docker_25_save_format(
    busybox_layer: bytes, image_store: store.ImageStore, tmp_path: Path
) -> None:
    # Docker 25+ writes an OCI layout plus manifest.json whose paths point into blobs/.
    layout = testimage.write_oci_layout(tmp_path / "layout", [busybox_layer], compress=False)
    manifest_digest = orjson.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"]
    manifest = orjson.loads(
        (layout / "blobs/sha256" / content.hex_of(manifest_digest)).read_bytes()
    )
    entry = {
        "Config": f"blobs/sha256/{content.hex_of(manifest['config']['digest'])}",
        "RepoTags": ["busybox:1.36"],
        "Layers": [
            f"blobs/sha256/{content.hex_of(layer['digest'])}" for layer in manifest["layers"]
        ],
    }
    (layout / "manifest.json").write_bytes(orjson.dumps([entry]))
    [image] = await image_store.import_archive(testimage.oci_archive(layout))
    assert image.id == manifest["config"]["digest"]
    assert image.repo_tags == ("docker.io/library/busybox:1.36",)
    assert (image.layers[0] / "bin/busybox").is_file()
