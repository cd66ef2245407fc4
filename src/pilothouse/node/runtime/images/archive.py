"""Import image archives for machines without a registry in reach.

Two formats, plain or gzipped:

* OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/…``), as written by
  ``skopeo copy … oci-archive:FILE`` or ``ctr export``; also as an unpacked directory.
  Names come from ``io.containerd.image.name`` or ``org.opencontainers.image.ref.name``
  (a full reference, or a bare tag that the caller's ``name`` completes).
* ``docker save`` (``manifest.json`` with ``RepoTags``, ``<id>.json`` configs and
  ``<id>/layer.tar`` files, or the blobs of Docker 25+'s OCI-shaped output).

A tar archive is read in one streaming pass: every blob goes into the store's blob
area as it passes (hashed, and checked against its name when it has one), small JSON
files are kept in memory; then the images are installed from the store.
"""

from __future__ import annotations

import asyncio
import posixpath
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import content, mediatypes, reference

if TYPE_CHECKING:
    from pilothouse.node.runtime.images.store import ImageStore

_BLOB_RE = re.compile(r"blobs/sha256/([0-9a-f]{64})")
_DOCUMENTS = {"index.json", "oci-layout", "manifest.json", "repositories"}
_MAX_DOCUMENT = 16 << 20


class ArchiveError(ValueError):
    """The file is not an image archive we can read, or it lacks a part it names."""


@dataclass
class _Scan:
    """What one pass over an archive found."""

    documents: dict[str, bytes] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)  # archive path → digest in the store
    links: dict[str, str] = field(default_factory=dict)  # archive path → archive path
    ingested: set[str] = field(default_factory=set)

    def digest_of(self, path: str) -> str:
        seen = 0
        path = posixpath.normpath(path)
        while path in self.links and seen < 16:
            path, seen = self.links[path], seen + 1
        match = _BLOB_RE.fullmatch(path)
        if match:
            return "sha256:" + match.group(1)
        if path not in self.paths:
            raise ArchiveError(f"{path} is missing from the archive")
        return self.paths[path]


def _scan_tar(path: Path, blobs: content.BlobStore) -> _Scan:
    scan = _Scan()
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                name = posixpath.normpath(member.name.lstrip("/")).removeprefix("./")
                if member.issym():
                    scan.links[name] = posixpath.normpath(
                        posixpath.join(posixpath.dirname(name), member.linkname)
                    )
                    continue
                if member.islnk():
                    scan.links[name] = posixpath.normpath(member.linkname.lstrip("/"))
                    continue
                if not member.isreg():
                    continue
                data = tar.extractfile(member)
                assert data is not None
                match = _BLOB_RE.fullmatch(name)
                if name in _DOCUMENTS:
                    if member.size > _MAX_DOCUMENT:
                        raise ArchiveError(f"{name} is too large ({member.size} bytes)")
                    scan.documents[name] = data.read()
                elif match:
                    digest = "sha256:" + match.group(1)
                    if not blobs.has(digest):
                        blobs.copy_from(data, digest, member.size)
                        scan.ingested.add(digest)
                elif name.endswith((".json", "/layer.tar", ".tar")):
                    # docker save: configs and layers named by path; digest from content.
                    stored = blobs.copy_from(data, None, member.size)
                    digest = "sha256:" + stored.name
                    scan.paths[name] = digest
                    scan.ingested.add(digest)
    except (tarfile.TarError, EOFError) as exc:
        raise ArchiveError(f"{path}: not a readable tar archive: {exc}") from exc
    except content.DigestMismatch as exc:
        raise ArchiveError(f"{path}: corrupt blob: {exc}") from exc
    return scan


def _scan_dir(path: Path, blobs: content.BlobStore) -> _Scan:
    scan = _Scan()
    for doc in _DOCUMENTS:
        if (path / doc).is_file():
            scan.documents[doc] = (path / doc).read_bytes()
    blob_dir = path / "blobs" / "sha256"
    if blob_dir.is_dir():
        for entry in sorted(blob_dir.iterdir()):
            digest = "sha256:" + entry.name
            if _BLOB_RE.fullmatch(f"blobs/sha256/{entry.name}") and not blobs.has(digest):
                with open(entry, "rb") as f:
                    try:
                        blobs.copy_from(f, digest)
                    except content.DigestMismatch as exc:
                        raise ArchiveError(f"{entry}: corrupt blob: {exc}") from exc
                scan.ingested.add(digest)
    return scan


def _scan(path: Path, blobs: content.BlobStore) -> _Scan:
    return _scan_dir(path, blobs) if path.is_dir() else _scan_tar(path, blobs)


def _names_for(desc: dict[str, Any], base: str) -> list[reference.Reference]:
    annotations = desc.get("annotations") or {}
    full = annotations.get(mediatypes.ANNOTATION_CONTAINERD_NAME, "")
    ref_name = annotations.get(mediatypes.ANNOTATION_REF_NAME, "")
    text = full or (ref_name if any(c in ref_name for c in "/:@") else "")
    if not text and ref_name and base:
        text = f"{base}:{ref_name}"
    if not text:
        return []
    try:
        return [reference.parse(text)]
    except reference.ReferenceError_ as exc:
        raise ArchiveError(f"image name {text!r} in the archive: {exc}") from exc


async def import_archive(store: ImageStore, path: Path, *, name: str = "") -> list[protocol.Image]:
    """Import every image in the archive (this machine's platform from multi-arch indexes)."""
    if name:
        try:
            name = reference.parse(name, default_tag=False).name
        except reference.ReferenceError_ as exc:
            raise ArchiveError(f"--name {name!r}: {exc}") from exc
    scan = await asyncio.to_thread(_scan, path, store.blobs)

    async def fetch(desc: dict[str, Any], _progress: Any) -> Path:
        digest = str(desc.get("digest", ""))
        if not store.blobs.has(digest):
            raise ArchiveError(f"blob {digest} is missing from the archive")
        return store.blobs.path(digest)

    try:
        if "manifest.json" in scan.documents:
            return await _import_docker(store, scan, fetch)
        if "index.json" in scan.documents:
            return await _import_oci(store, scan, fetch, base=name)
        raise ArchiveError(
            f"{path}: neither an OCI image layout (index.json) nor a docker save archive "
            "(manifest.json)"
        )
    finally:
        keep = {d for r in store.index.images().values() for d in (r.id, r.manifest)}
        for digest in scan.ingested - keep:
            if not store.keep_layer_blobs:
                store.blobs.remove(digest)


async def _import_oci(
    store: ImageStore, scan: _Scan, fetch: Any, *, base: str
) -> list[protocol.Image]:
    index = _json(scan.documents["index.json"], "index.json")
    images: list[protocol.Image] = []
    for top in index.get("manifests") or []:
        names = _names_for(top, base)
        top_digest = str(top.get("digest", ""))
        manifest_digest = top_digest
        body = _blob(store, manifest_digest)
        doc = _json(body, manifest_digest)
        if mediatypes.kind_of(doc, str(top.get("mediaType", ""))) == "index":
            desc = mediatypes.select_manifest(doc, store.platform)
            if desc is None:
                raise ArchiveError(f"no image for {store.platform} in index {top_digest}")
            manifest_digest = str(desc["digest"])
            body = _blob(store, manifest_digest)
            doc = _json(body, manifest_digest)
        if mediatypes.kind_of(doc) != "manifest":
            raise ArchiveError(f"{manifest_digest} is not an image manifest")
        images.append(
            await store.install(
                doc,
                manifest_digest=manifest_digest,
                manifest_size=len(body),
                fetch=fetch,
                repo_tags=[str(n) for n in names if n.tag],
                repo_digests=[str(n.with_digest(top_digest)) for n in names],
                label=str(names[0]) if names else top_digest,
                keep_blobs=True,
            )
        )
    return images


async def _import_docker(store: ImageStore, scan: _Scan, fetch: Any) -> list[protocol.Image]:
    entries = _json(scan.documents["manifest.json"], "manifest.json")
    if not isinstance(entries, list):
        raise ArchiveError("manifest.json is not a list")
    images: list[protocol.Image] = []
    for entry in entries:
        config_digest = scan.digest_of(str(entry.get("Config", "")))
        config_size = store.blobs.path(config_digest).stat().st_size
        layers = []
        for layer_path in entry.get("Layers") or []:
            digest = scan.digest_of(str(layer_path))
            layers.append(
                {
                    "mediaType": mediatypes.OCI_LAYER,
                    "digest": digest,
                    "size": store.blobs.path(digest).stat().st_size,
                }
            )
        # docker save keeps no manifest: make the one it would have pushed, so the image
        # has a manifest digest like every other.
        manifest = {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": {
                "mediaType": mediatypes.OCI_CONFIG,
                "digest": config_digest,
                "size": config_size,
            },
            "layers": layers,
        }
        body = orjson.dumps(manifest)
        manifest_digest = content.sha256_digest(body)
        store.blobs.write(body, manifest_digest)
        tags = []
        for tag in entry.get("RepoTags") or []:
            try:
                tags.append(str(reference.parse(str(tag))))
            except reference.ReferenceError_ as exc:
                raise ArchiveError(f"RepoTags entry {tag!r}: {exc}") from exc
        images.append(
            await store.install(
                manifest,
                manifest_digest=manifest_digest,
                manifest_size=len(body),
                fetch=fetch,
                repo_tags=tags,
                repo_digests=[],
                label=tags[0] if tags else config_digest,
                keep_blobs=True,
            )
        )
    return images


def _blob(store: ImageStore, digest: str) -> bytes:
    if not store.blobs.has(digest):
        raise ArchiveError(f"blob {digest} is missing from the archive")
    return store.blobs.read(digest)


def _json(data: bytes, what: str) -> Any:
    try:
        return orjson.loads(data)
    except ValueError as exc:
        raise ArchiveError(f"{what}: invalid JSON: {exc}") from exc
