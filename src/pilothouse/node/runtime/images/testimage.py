"""Images made on this machine, for tests that may not reach the internet.

``build_busybox_oci`` writes a one-layer OCI image layout around Debian's static
busybox (``busybox-static``): ``/bin/busybox``, its applet symlinks, ``/etc/passwd``
and ``/etc/group`` (root, nobody), ``/tmp`` and ``/root``, and a config with ``PATH``
and ``Cmd ["sh"]``. ``LayerBuilder`` and ``write_oci_layout`` make any other image
(whiteouts, hardlinks, devices, hostile paths). ``push_oci_layout`` is a minimal
registry client for the other direction: blob uploads (POST then PUT) and a manifest
PUT, so tests can fill a local registry.

Everything is deterministic (fixed mtimes, sorted entries): the same inputs give the
same digests.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yarl

from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import content, mediatypes, reference, registry

BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnobody:x:65534:\n"


class LayerBuilder:
    """One layer tarball, built in memory; parent directories are the caller's to add."""

    def __init__(self, *, mtime: int = 0) -> None:
        self._buffer = io.BytesIO()
        # Closed by tar(), which hands out the finished bytes.
        self._tar = tarfile.open(fileobj=self._buffer, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.mtime = mtime

    def _info(
        self, path: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0
    ) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path)
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mtime = self.mtime
        return info

    def dir(self, path: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> LayerBuilder:
        self._tar.addfile(self._info(path, tarfile.DIRTYPE, mode, uid, gid))
        return self

    def file(
        self,
        path: str,
        data: bytes,
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        xattrs: dict[str, bytes] | None = None,
    ) -> LayerBuilder:
        info = self._info(path, tarfile.REGTYPE, mode, uid, gid)
        info.size = len(data)
        if xattrs:
            info.pax_headers = {
                f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()
            }
        self._tar.addfile(info, io.BytesIO(data))
        return self

    def symlink(self, path: str, target: str) -> LayerBuilder:
        info = self._info(path, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self._tar.addfile(info)
        return self

    def hardlink(self, path: str, target: str) -> LayerBuilder:
        info = self._info(path, tarfile.LNKTYPE, 0o644)
        info.linkname = target
        self._tar.addfile(info)
        return self

    def device(
        self, path: str, *, char: bool = True, major: int = 1, minor: int = 3
    ) -> LayerBuilder:
        info = self._info(path, tarfile.CHRTYPE if char else tarfile.BLKTYPE, 0o666)
        info.devmajor, info.devminor = major, minor
        self._tar.addfile(info)
        return self

    def fifo(self, path: str) -> LayerBuilder:
        self._tar.addfile(self._info(path, tarfile.FIFOTYPE, 0o644))
        return self

    def whiteout(self, path: str) -> LayerBuilder:
        """Delete ``path`` from the layers below."""
        parent, _, base = path.rpartition("/")
        return self.file(f"{parent}/.wh.{base}" if parent else f".wh.{base}", b"", mode=0o600)

    def opaque(self, directory: str) -> LayerBuilder:
        """Hide everything the layers below have in ``directory``."""
        return self.file(f"{directory.rstrip('/')}/.wh..wh..opq", b"", mode=0o600)

    def tar(self) -> bytes:
        self._tar.close()
        return self._buffer.getvalue()


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = content.sha256_digest(data)
    path = layout / "blobs" / "sha256" / content.hex_of(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def write_oci_layout(
    dest: Path,
    layers: list[bytes],
    *,
    tag: str = "",
    image_config: dict[str, Any] | None = None,
    compress: bool = True,
    architecture: str = "",
) -> Path:
    """An OCI image layout at ``dest`` with the given uncompressed layer tarballs.

    ``tag`` (``busybox:1.36``) goes into ``org.opencontainers.image.ref.name`` and, in
    full form, ``io.containerd.image.name``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "oci-layout").write_bytes(b'{"imageLayoutVersion":"1.0.0"}')
    layer_descs = []
    for tar in layers:
        blob = gzip.compress(tar, mtime=0) if compress else tar
        media = mediatypes.OCI_LAYER_GZIP if compress else mediatypes.OCI_LAYER
        layer_descs.append({"mediaType": media, **_blob(dest, blob)})
    config = {
        "architecture": architecture or mediatypes.host_platform().architecture,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": image_config if image_config is not None else {"Env": [PATH_ENV], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [content.sha256_digest(t) for t in layers]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "pilothouse testimage"}],
    }
    config_desc = {"mediaType": mediatypes.OCI_CONFIG, **_blob(dest, orjson.dumps(config))}
    manifest = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": config_desc,
        "layers": layer_descs,
    }
    desc: dict[str, Any] = {
        "mediaType": mediatypes.OCI_MANIFEST,
        **_blob(dest, orjson.dumps(manifest)),
    }
    if tag:
        desc["annotations"] = {
            mediatypes.ANNOTATION_REF_NAME: tag,
            mediatypes.ANNOTATION_CONTAINERD_NAME: str(reference.parse(tag)),
        }
    index = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [desc]}
    (dest / "index.json").write_bytes(orjson.dumps(index))
    return dest


def _is_static_elf(path: Path) -> bool:
    """True when the ELF file has no program interpreter (PT_INTERP): statically linked."""
    with open(path, "rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit only; enough for our machines
            return False
        order = "<" if header[5] == 1 else ">"
        phoff = struct.unpack_from(order + "Q", header, 32)[0]
        phentsize, phnum = struct.unpack_from(order + "HH", header, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from(order + "I", table, i * phentsize)[0] != 3 for i in range(phnum))


def find_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        if candidate.is_file() and _is_static_elf(candidate):
            return candidate
    raise FileNotFoundError(
        "a static busybox is needed to build the test image: apt-get install busybox-static"
    )


def busybox_layer(busybox: Path | None = None) -> bytes:
    binary = busybox or find_busybox()
    applets = subprocess.run(
        [str(binary), "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    layer = LayerBuilder()
    dirs = {"bin", "etc", "root", "tmp"}
    for applet in applets:
        parent = os.path.dirname(applet)
        while parent:
            dirs.add(parent)
            parent = os.path.dirname(parent)
    for d in sorted(dirs):
        if d == "root":
            layer.dir(d, mode=0o700)
        elif d == "tmp":
            layer.dir(d, mode=0o1777)
        else:
            layer.dir(d)
    layer.file("bin/busybox", binary.read_bytes(), mode=0o755)
    for applet in sorted(set(applets) - {"bin/busybox"}):
        layer.symlink(applet, "/bin/busybox")
    layer.file("etc/passwd", PASSWD).file("etc/group", GROUP)
    return layer.tar()


def build_busybox_oci(dest: Path, *, tag: str = "busybox:1.36") -> Path:
    """A one-layer busybox OCI image layout at ``dest`` (a directory); returns ``dest``."""
    return write_oci_layout(dest, [busybox_layer()], tag=tag)


def oci_archive(layout: Path, dest: Path | None = None) -> Path:
    """Tar an OCI layout as ``skopeo … oci-archive:`` does; returns the tar's path."""
    target = dest or layout.with_suffix(".tar")
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(layout):
            dirs.sort()
            for name in [*sorted(dirs), *sorted(files)]:
                full = Path(root) / name
                info = tar.gettarinfo(str(full), arcname=str(full.relative_to(layout)))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if info.isreg():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return target


# --- pushing -------------------------------------------------------------------------------
async def _push_blob(client: registry.RegistryClient, data: bytes, digest: str) -> None:
    repo = client.ref.path
    async with client.request("HEAD", f"/v2/{repo}/blobs/{digest}") as resp:
        if resp.status == 200:
            return
    async with client.request("POST", f"/v2/{repo}/blobs/uploads/") as resp:
        if resp.status != 202:
            raise protocol.ImagePullError(f"blob upload of {digest} refused: {resp.status}")
        location = yarl.URL(resp.headers["Location"])
    if not location.is_absolute():
        location = yarl.URL(client.base).join(location)
    url = str(location.update_query(digest=digest))
    headers = {"Content-Type": "application/octet-stream"}
    async with client.request("PUT", url, headers=headers, data=data) as resp:
        if resp.status != 201:
            raise protocol.ImagePullError(
                f"blob upload of {digest} failed: {resp.status} {await resp.text()}"
            )


async def _push_manifest(
    client: registry.RegistryClient, layout: Path, desc: dict[str, Any], obj: str
) -> None:
    body = (layout / "blobs" / "sha256" / content.hex_of(desc["digest"])).read_bytes()
    doc = orjson.loads(body)
    media_type = desc.get("mediaType") or doc.get("mediaType") or mediatypes.OCI_MANIFEST
    if mediatypes.kind_of(doc, media_type) == "index":
        for child in doc.get("manifests") or []:
            if (layout / "blobs" / "sha256" / content.hex_of(child["digest"])).exists():
                await _push_manifest(client, layout, child, child["digest"])
    else:
        for blob in [doc["config"], *doc["layers"]]:
            data = (layout / "blobs" / "sha256" / content.hex_of(blob["digest"])).read_bytes()
            await _push_blob(client, data, blob["digest"])
    path = f"/v2/{client.ref.path}/manifests/{obj}"
    async with client.request("PUT", path, headers={"Content-Type": media_type}, data=body) as resp:
        if resp.status != 201:
            raise protocol.ImagePullError(
                f"manifest PUT {obj} failed: {resp.status} {await resp.text()}"
            )


async def push_oci_layout(
    layout: Path,
    target: str,
    *,
    credentials: protocol.RegistryAuth | None = None,
    insecure: bool = True,
) -> str:
    """Push the layout's first image to ``target`` (``host:port/repo:tag``); its digest."""
    ref = reference.parse(target)
    index = orjson.loads((layout / "index.json").read_bytes())
    desc = index["manifests"][0]
    async with aiohttp.ClientSession() as session:
        client = registry.RegistryClient(
            session, ref, credentials=credentials, insecure=insecure, actions="pull,push"
        )
        await _push_manifest(client, layout, desc, ref.digest or ref.tag)
    return str(desc["digest"])
