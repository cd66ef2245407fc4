"""Pulling from a real registry on 127.0.0.1 (Debian's docker-registry), no internet."""

from __future__ import annotations

import asyncio
import gzip
import os
import socket
from pathlib import Path
from typing import Any

import orjson
import pytest

from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import (
    auth_from_dockerconfig,
    content,
    mediatypes,
    store,
    testimage,
)

LocalRegistry = Any  # tests/node/conftest.py


async def test_pull_by_tag(local_registry: LocalRegistry, image_store: store.ImageStore) -> None:
    image = await image_store.pull(local_registry.busybox)
    name = f"{local_registry.host}/library/busybox"
    assert image.repo_tags == (f"{name}:1.36",)
    assert image.repo_digests == (f"{name}@{local_registry.busybox_digest}",)
    assert image.cmd == ("sh",) and image.env[0].startswith("PATH=")
    assert len(image.layers) == 1
    rootfs = image.layers[0]
    assert os.access(rootfs / "bin/busybox", os.X_OK)
    assert os.readlink(rootfs / "bin/sh") == "/bin/busybox"
    assert b"nobody" in (rootfs / "etc/passwd").read_bytes()
    assert oct((rootfs / "tmp").stat().st_mode & 0o7777) == oct(0o1777)
    # every way of naming it finds it
    for ref in (
        local_registry.busybox,
        f"{name}@{local_registry.busybox_digest}",
        image.id,
        image.id.removeprefix("sha256:")[:12],
    ):
        assert image_store.get(ref) == image, ref
    assert image_store.get(f"{name}:other") is None
    assert image_store.list() == [image]


async def test_pull_by_digest(local_registry: LocalRegistry, image_store: store.ImageStore) -> None:
    ref = f"{local_registry.host}/library/busybox@{local_registry.busybox_digest}"
    image = await image_store.pull(ref)
    assert image.repo_tags == ()
    assert image.repo_digests == (ref,)
    assert (image.layers[0] / "bin/busybox").is_file()
    # the same content by tag is the same image, now with its tag too
    tagged = await image_store.pull(local_registry.busybox)
    assert tagged.id == image.id and tagged.repo_tags == (local_registry.busybox,)


async def test_second_pull_reuses_everything(
    local_registry: LocalRegistry, image_store: store.ImageStore, registry_proxy: Any
) -> None:
    proxy = await registry_proxy(local_registry.host)
    ref = f"{proxy.host}/library/busybox:1.36"
    events: list[protocol.PullProgress] = []
    first = await image_store.pull(ref, progress=events.append)
    assert len(proxy.blob_gets()) == 2  # config and layer
    assert image_store.layers.unpacks == 1
    layer_inode = first.layers[0].stat().st_ino
    finished = [e for e in events if e.finished]
    assert len(finished) == 1 and finished[0].done_bytes == finished[0].total_bytes > 0
    assert all(e.reference == ref for e in events)

    second = await image_store.pull(ref)
    assert second == first
    assert len(proxy.blob_gets()) == 2  # nothing downloaded again
    assert proxy.manifest_gets() == 2  # the tag is resolved again (it may have moved)
    assert image_store.layers.unpacks == 1
    assert second.layers[0].stat().st_ino == layer_inode
    # and a new store on the same directory (an agent restart) sees the image
    assert store.ImageStore(image_store.root).get(ref) == first


async def test_corrupted_blob_is_rejected(
    local_registry: LocalRegistry,
    image_store: store.ImageStore,
    registry_proxy: Any,
    busybox_layout: Path,
) -> None:
    manifest_path = (
        busybox_layout / "blobs" / "sha256" / content.hex_of(local_registry.busybox_digest)
    )
    layer = orjson.loads(manifest_path.read_bytes())["layers"][0]["digest"]
    proxy = await registry_proxy(local_registry.host, corrupt={layer})
    ref = f"{proxy.host}/library/busybox:1.36"
    with pytest.raises(protocol.ImagePullError) as err:
        await image_store.pull(ref)
    message = err.value.message
    assert message.startswith(f'failed to pull and unpack image "{ref}": failed to copy {layer}')
    assert "digest mismatch" in message and f"expected {layer}" in message
    assert err.value.reason == "ErrImagePull"
    # nothing half-made is left to be trusted later
    assert image_store.get(ref) is None
    assert not image_store.blobs.has(layer)
    assert [p.name for p in image_store.layers.root.iterdir()] == []
    assert list(image_store.blobs.ingest_dir.iterdir()) == []


async def test_missing_image_says_not_found_like_containerd(
    local_registry: LocalRegistry, image_store: store.ImageStore
) -> None:
    for ref in (
        f"{local_registry.host}/library/nope:1",
        f"{local_registry.host}/library/busybox:nope",
    ):
        with pytest.raises(protocol.ImagePullError) as err:
            await image_store.pull(ref)
        assert err.value.message == (
            f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}": {ref}: not found'
        )


async def test_unreachable_registry(image_store: store.ImageStore) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        protocol.ImagePullError, match=f'failed to do request: Get "http://127.0.0.1:{port}/v2/'
    ):
        await image_store.pull(f"127.0.0.1:{port}/x:1")


async def test_invalid_reference(image_store: store.ImageStore) -> None:
    with pytest.raises(protocol.ImagePullError, match="must be lowercase") as err:
        await image_store.pull("Busybox")
    assert err.value.reason == "InvalidImageName"


async def test_basic_auth(htpasswd_registry: LocalRegistry, image_store: store.ImageStore) -> None:
    ref = htpasswd_registry.busybox
    with pytest.raises(
        protocol.ImagePullError, match="pull access denied, repository does not exist"
    ):
        await image_store.pull(ref)
    wrong = protocol.RegistryAuth(htpasswd_registry.host, "alice", "wrong")
    with pytest.raises(protocol.ImagePullError, match="pull access denied"):
        await image_store.pull(ref, auth=[wrong])
    # as the agent gets them: a dockerconfigjson pull secret; a wrong entry for a
    # broader key is tried after the right one (most specific first) — and both kinds
    # of entries match this registry
    secret = {
        "auths": {
            htpasswd_registry.host: {"username": "alice", "password": "wonderland"},
            f"{htpasswd_registry.host}/library/busybox": {"username": "alice", "password": "nope"},
        }
    }
    creds = auth_from_dockerconfig({".dockerconfigjson": orjson.dumps(secret).decode()})
    image = await image_store.pull(ref, auth=creds)
    assert (image.layers[0] / "bin/busybox").is_file()


async def test_token_auth(token_registry: LocalRegistry, image_store: store.ImageStore) -> None:
    server = token_registry.token_server
    ref = token_registry.busybox
    with pytest.raises(protocol.ImagePullError, match="pull access denied"):
        await image_store.pull(ref)  # an anonymous token carries no access
    wrong = protocol.RegistryAuth(token_registry.host, "alice", "wrong")
    with pytest.raises(
        protocol.ImagePullError, match="failed to authorize: failed to fetch oauth token"
    ):
        await image_store.pull(ref, auth=[wrong])
    before = len(server.requests)
    image = await image_store.pull(ref, auth=[token_registry.credentials])
    assert image.repo_tags == (ref,)
    assert server.requests[before:] == [
        {"user": "alice", "scope": ["repository:library/busybox:pull"]}
    ]
    # the token is cached across pulls: no new token request
    await image_store.pull(ref, auth=[token_registry.credentials])
    assert len(server.requests) == before + 1


def _image_layout(path: Path, layers: list[bytes], *, architecture: str = "") -> Path:
    return testimage.write_oci_layout(path, layers, architecture=architecture)


async def test_concurrent_pulls_share_and_unpack_a_layer_once(
    local_registry: LocalRegistry,
    image_store: store.ImageStore,
    registry_proxy: Any,
    busybox_layer: bytes,
    tmp_path: Path,
) -> None:
    for name in ("a", "b"):
        top = testimage.LayerBuilder().file(f"only-in-{name}", name.encode()).tar()
        layout = _image_layout(tmp_path / name, [busybox_layer, top])
        await local_registry.push(layout, f"shared/{name}:1")
    proxy = await registry_proxy(local_registry.host)
    a, b = await asyncio.gather(
        image_store.pull(f"{proxy.host}/shared/a:1"), image_store.pull(f"{proxy.host}/shared/b:1")
    )
    assert a.layers[0] == b.layers[0] and a.layers[1] != b.layers[1]
    assert image_store.layers.unpacks == 3
    base = content.sha256_digest(gzip.compress(busybox_layer, mtime=0))
    assert proxy.blob_gets().count(base) == 1  # the shared layer was downloaded once
    assert (a.layers[1] / "only-in-a").exists() and not (b.layers[1] / "only-in-a").exists()


async def test_multi_arch_index_picks_this_machine(
    local_registry: LocalRegistry,
    image_store: store.ImageStore,
    busybox_layer: bytes,
    tmp_path: Path,
) -> None:
    host = mediatypes.host_platform()
    other = "s390x" if host.architecture != "s390x" else "ppc64le"
    layout = tmp_path / "multi"
    entries = []
    for arch in (other, host.architecture):
        single = _image_layout(tmp_path / arch, [busybox_layer], architecture=arch)
        desc = orjson.loads((single / "index.json").read_bytes())["manifests"][0]
        desc["platform"] = {"os": "linux", "architecture": arch}
        if arch == host.architecture and host.variant:
            desc["platform"]["variant"] = host.variant
        entries.append(desc)
        for blob in (single / "blobs" / "sha256").iterdir():
            (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            (layout / "blobs" / "sha256" / blob.name).write_bytes(blob.read_bytes())
    # an attestation-like entry that must never be chosen
    entries.append({**entries[0], "platform": {"os": "unknown", "architecture": "unknown"}})
    index = orjson.dumps(
        {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": entries}
    )
    index_digest = content.sha256_digest(index)
    (layout / "blobs" / "sha256" / content.hex_of(index_digest)).write_bytes(index)
    top = {"mediaType": mediatypes.OCI_INDEX, "digest": index_digest, "size": len(index)}
    (layout / "index.json").write_bytes(orjson.dumps({"schemaVersion": 2, "manifests": [top]}))
    pushed = await local_registry.push(layout, "multi/busybox:1")
    assert pushed == index_digest

    image = await image_store.pull(f"{local_registry.host}/multi/busybox:1")
    record = image_store.index.images()[image.id]
    assert record.architecture == host.architecture
    assert record.manifest == entries[1]["digest"]
    assert image.repo_digests == (f"{local_registry.host}/multi/busybox@{index_digest}",)

    # an index without this machine's platform is an error users can read
    only_other = orjson.dumps(
        {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [entries[0]]}
    )
    (layout / "blobs" / "sha256" / content.hex_of(content.sha256_digest(only_other))).write_bytes(
        only_other
    )
    top = {
        "mediaType": mediatypes.OCI_INDEX,
        "digest": content.sha256_digest(only_other),
        "size": len(only_other),
    }
    (layout / "index.json").write_bytes(orjson.dumps({"schemaVersion": 2, "manifests": [top]}))
    await local_registry.push(layout, "multi/other:1")
    with pytest.raises(
        protocol.ImagePullError, match=f"no match for platform in manifest .*: not found .*{host}"
    ):
        await image_store.pull(f"{local_registry.host}/multi/other:1")
