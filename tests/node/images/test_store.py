"""The store: name resolution, removal and layer GC, crash leftovers, sharing across processes."""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from pilothouse.node.runtime.images import content, layers, store, testimage, unpack


def _layout(tmp_path: Path, name: str, layer_tars: list[bytes], tag: str = "") -> Path:
    return testimage.write_oci_layout(tmp_path / name, layer_tars, tag=tag)


def _top(text: str) -> bytes:
    return testimage.LayerBuilder().file(f"{text}.txt", text.encode()).tar()


async def test_get_resolves_every_kind_of_name(
    busybox_layout: Path, image_store: store.ImageStore
) -> None:
    [image] = await image_store.import_archive(busybox_layout)
    digest = image.repo_digests[0].partition("@")[2]
    for ref in (
        "busybox:1.36",
        "library/busybox:1.36",
        "docker.io/library/busybox:1.36",
        "index.docker.io/library/busybox:1.36",
        f"busybox@{digest}",
        f"docker.io/library/busybox:1.36@{digest}",
        image.id,
        image.id.removeprefix("sha256:"),
        image.id.removeprefix("sha256:")[:12],
        "sha256:" + image.id.removeprefix("sha256:")[:12],
    ):
        assert image_store.get(ref) == image, ref
    for ref in (
        "busybox",
        "busybox:latest",
        "other:1.36",
        "Busybox:1.36",
        "",
        "ab",
        f"other@{digest}",
    ):
        assert image_store.get(ref) is None, ref


async def test_remove_drops_names_and_collects_unshared_layers(
    busybox_layer: bytes, image_store: store.ImageStore, tmp_path: Path
) -> None:
    [a] = await image_store.import_archive(
        _layout(tmp_path, "a", [busybox_layer, _top("a")], "app/a:1")
    )
    [b] = await image_store.import_archive(
        _layout(tmp_path, "b", [busybox_layer, _top("b")], "app/b:1")
    )
    a_manifest = image_store.index.images()[a.id].manifest
    assert a.layers[0] == b.layers[0]

    await image_store.remove("app/a:1@" + a_manifest)  # a digest name: the tag remains
    assert image_store.get("app/a:1") is not None
    await image_store.remove("app/a:1")  # the last tag: the image goes
    assert image_store.get(a.id) is None
    assert not a.layers[1].exists() and a.layers[0].exists()  # the shared one stays for b
    assert not image_store.blobs.has(a.id) and not image_store.blobs.has(a_manifest)
    await image_store.remove("app/a:1")  # removing what is gone is no error

    await image_store.remove(b.id[7:19])  # by short id: the whole image
    assert image_store.list() == []
    assert list(image_store.layers.root.iterdir()) == []
    assert list(image_store.blobs.digests()) == []


async def test_layers_in_use_by_containers_survive(
    busybox_layer: bytes, image_store: store.ImageStore, tmp_path: Path
) -> None:
    [image] = await image_store.import_archive(
        _layout(tmp_path, "x", [busybox_layer, _top("x")], "x:1")
    )
    running = {image.layers[1]}
    image_store.in_use = lambda: running
    await image_store.remove("x:1")
    assert image_store.get("x:1") is None
    assert image.layers[1].is_dir() and not image.layers[0].exists()
    running.clear()  # the container is gone: the agent's image GC may now take it
    assert await image_store.prune() == ["sha256:" + image.layers[1].name]
    assert list(image_store.layers.root.iterdir()) == []


async def test_a_moved_tag_leaves_the_old_image_by_digest_or_deletes_it(
    busybox_layer: bytes, image_store: store.ImageStore, tmp_path: Path
) -> None:
    [old] = await image_store.import_archive(
        _layout(tmp_path, "v1", [busybox_layer, _top("v1")], "app:1")
    )
    [new] = await image_store.import_archive(
        _layout(tmp_path, "v2", [busybox_layer, _top("v2")], "app:1")
    )
    assert image_store.get("app:1") == new
    left = image_store.get(old.id)
    assert left is not None and left.repo_tags == () and len(left.repo_digests) == 1


async def test_two_stores_on_one_directory_see_each_others_changes(
    busybox_layout: Path, tmp_path: Path
) -> None:
    agent = store.ImageStore(tmp_path / "images")
    cli = store.ImageStore(tmp_path / "images")
    assert cli.get("busybox:1.36") is None
    [image] = await agent.import_archive(busybox_layout)
    assert cli.get("busybox:1.36") == image
    await cli.remove("busybox:1.36")
    assert agent.get("busybox:1.36") is None
    doc = orjson.loads((tmp_path / "images" / "images.json").read_bytes())
    assert doc == {"version": 1, "images": {}}


def test_leftovers_of_dead_processes_are_removed_at_start(tmp_path: Path) -> None:
    root = tmp_path / "images"
    store.ImageStore(root)
    dead = 2**22 + 12345  # above pid_max's default: never a live process
    stale = root / "layers" / f".tmp-{dead}-abcdef"
    (stale / "bin").mkdir(parents=True)
    trash = root / "layers" / f".trash-{dead}-{'1' * 64}"
    trash.mkdir()
    mine = root / "layers" / f".tmp-{os.getpid()}-012345"
    mine.mkdir()
    partial = root / "blobs" / "ingest" / f"{dead}-feed"
    partial.write_bytes(b"half a blob")
    s = store.ImageStore(root)
    assert not stale.exists() and not trash.exists() and not partial.exists()
    assert mine.exists()  # a live process may still be unpacking there
    assert s.layers.chain_ids() == set()  # temp dirs are never layers


async def test_each_layer_is_unpacked_by_one_task(tmp_path: Path) -> None:
    store_ = layers.LayerStore(tmp_path / "layers")
    tar = testimage.LayerBuilder().file("f", b"x" * 100_000).tar()
    blob = tmp_path / "blob"
    blob.write_bytes(gzip.compress(tar))
    diff_id = content.sha256_digest(tar)
    fetches = 0

    async def fetch() -> Path:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0.01)
        return blob

    async def below() -> list[Path]:
        return []

    results = await asyncio.gather(
        *(
            store_.ensure(diff_id, diff_id=diff_id, fetch=fetch, below=below, discard_blob=False)
            for _ in range(5)
        )
    )
    assert fetches == 1 and store_.unpacks == 1
    assert len(set(results)) == 1 and (results[0] / "f").stat().st_size == 100_000


async def test_a_waiter_tries_itself_when_the_unpacking_task_fails(tmp_path: Path) -> None:
    store_ = layers.LayerStore(tmp_path / "layers")
    tar = testimage.LayerBuilder().file("f", b"ok").tar()
    good = tmp_path / "good"
    good.write_bytes(tar)
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    diff_id = content.sha256_digest(tar)

    async def fetch_bad() -> Path:
        await asyncio.sleep(0.01)
        return bad

    async def fetch_good() -> Path:
        return good

    async def below() -> list[Path]:
        return []

    first = asyncio.create_task(
        store_.ensure(diff_id, diff_id=diff_id, fetch=fetch_bad, below=below)
    )
    await asyncio.sleep(0)
    second = asyncio.create_task(
        store_.ensure(diff_id, diff_id=diff_id, fetch=fetch_good, below=below)
    )
    with pytest.raises(unpack.UnpackError):
        await first
    path = await second
    assert (path / "f").read_bytes() == b"ok"
    assert [p.name for p in store_.root.iterdir()] == [path.name]  # no temp dir left behind


def test_an_import_killed_mid_unpack_leaves_nothing_trusted(tmp_path: Path) -> None:
    many = testimage.LayerBuilder()
    for i in range(2500):
        many.file(f"d{i % 50}/f{i}", b"x" * 100)
    layout = testimage.write_oci_layout(tmp_path / "layout", [many.tar()], tag="many:1")
    root = tmp_path / "images"
    code = (
        "import asyncio, sys, pathlib\n"
        "from pilothouse.node.runtime.images import store\n"
        "s = store.ImageStore(pathlib.Path(sys.argv[1]))\n"
        "asyncio.run(s.import_archive(pathlib.Path(sys.argv[2])))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(root), str(layout)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            tmp_dirs = list((root / "layers").glob(".tmp-*")) if (root / "layers").exists() else []
            if tmp_dirs and any(tmp_dirs[0].iterdir()):
                break
            if child.poll() is not None:
                pytest.fail("the import finished before it could be interrupted")
            time.sleep(0.002)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert list((root / "layers").glob(".tmp-*"))  # the half-made layer is there…
    s = store.ImageStore(root)
    assert list((root / "layers").iterdir()) == []  # …and gone at the next start
    assert s.get("many:1") is None
    [image] = asyncio.run(s.import_archive(layout))
    assert len(list(image.layers[0].rglob("f*"))) == 2500
