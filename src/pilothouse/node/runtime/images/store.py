"""``ImageStore``: the node's images on local disk, implementing the runtime's ImageService.

Layout under ``root`` (``<data-dir>/agent/images``)::

    images.json       the index: every image's tags, digests, config, layers, size
    images.lock       writers' flock
    blobs/sha256/…    manifests and configs (and layer blobs until they are unpacked)
    layers/<chain>/   one unpacked layer each, shared read-only by images and containers

Concurrency: all methods run on the agent's event loop; unpacking runs in threads.
Pulls proceed in parallel: layers download concurrently (three at a time per pull),
and unpack in order as soon as the layer below is ready; a layer two pulls share is
downloaded and unpacked by one of them while the other waits. Index updates are
short critical sections under a file lock, so the ``pilothouse images`` CLI can work
beside a running agent.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import (
    content,
    layers,
    mediatypes,
    metadata,
    progress,
    reference,
    registry,
    unpack,
)
from pilothouse.node.runtime.images import pull as pullmod
from pilothouse.node.runtime.images import registries as registriesmod

log = logging.getLogger(__name__)

MAX_CONCURRENT_DOWNLOADS = 3
FetchBlob = Callable[[dict[str, Any], Callable[[int], None] | None], Awaitable[Path]]


class LayersVanished(Exception):
    """A layer the new image needs was removed (by another process) before the commit."""


def invalid_reference(text: str, exc: Exception) -> protocol.ImagePullError:
    err = protocol.ImagePullError(f'failed to pull and unpack image "{text}": {exc}')
    err.reason = "InvalidImageName"
    return err


class ImageStore:
    """Images pulled from registries or imported from archives, with shared unpacked layers.

    ``insecure_registries`` are reached over plain http (registries on this machine
    always are). ``registries`` (a registries.yaml, re-read when it changes) names
    mirrors, rewrites, credentials and TLS per registry. ``in_use`` returns layer
    directories that containers use: those are never garbage-collected, even when no
    image refers to them any more.
    """

    def __init__(
        self,
        root: Path,
        *,
        insecure_registries: Iterable[str] = (),
        in_use: Callable[[], Iterable[Path]] | None = None,
        platform: mediatypes.Platform | None = None,
        keep_layer_blobs: bool = False,
        registries: registriesmod.RegistriesFile | None = None,
    ) -> None:
        self.root = root
        self.registries = registries
        root.mkdir(parents=True, exist_ok=True)
        self.blobs = content.BlobStore(root / "blobs")
        self.layers = layers.LayerStore(root / "layers")
        self.index = metadata.ImageIndex(root)
        self.insecure_registries = {r.lower() for r in insecure_registries}
        self.in_use = in_use
        self.platform = platform or mediatypes.host_platform()
        self.keep_layer_blobs = keep_layer_blobs
        self.tokens = registry.TokenCache()
        self.blobs.cleanup()
        self.layers.cleanup()

    # --- reading -------------------------------------------------------------------------
    def get(self, reference_text: str) -> protocol.Image | None:
        """The image ``reference_text`` names: name[:tag], name@digest, or an id (full or short)."""
        record = self.find(reference_text, self.index.images())[0]
        return None if record is None else self.image(record)

    def list(self) -> builtins.list[protocol.Image]:
        records = sorted(self.index.images().values(), key=lambda r: (r.repo_tags or [r.id])[0])
        return [self.image(r) for r in records]

    def find(
        self, text: str, records: dict[str, metadata.ImageRecord]
    ) -> tuple[metadata.ImageRecord | None, str]:
        """The record ``text`` names and how: an id (``""``) or the reference that matched."""
        if text.startswith("sha256:") and text in records:
            return records[text], ""
        try:
            ref = reference.parse(text)
        except reference.ReferenceError_:
            ref = None
        if ref is not None:
            wanted = str(ref.with_digest(ref.digest)) if ref.digest else str(ref)
            for record in records.values():
                if wanted in (record.repo_digests if ref.digest else record.repo_tags):
                    return record, wanted
        if reference.looks_like_id(text) and len(text.removeprefix("sha256:")) >= 3:
            prefix = "sha256:" + text.removeprefix("sha256:")
            hits = [r for r in records.values() if r.id.startswith(prefix)]
            if len(hits) == 1:
                return hits[0], ""
        return None, ""

    def image(self, record: metadata.ImageRecord) -> protocol.Image:
        cfg = record.config
        return protocol.Image(
            id=record.id,
            repo_tags=tuple(record.repo_tags),
            repo_digests=tuple(record.repo_digests),
            size=record.size,
            layers=tuple(self.layers.path(c) for c in record.chain_ids),
            env=tuple(cfg.get("Env") or ()),
            entrypoint=tuple(cfg.get("Entrypoint") or ()),
            cmd=tuple(cfg.get("Cmd") or ()),
            working_dir=cfg.get("WorkingDir") or "",
            user=cfg.get("User") or "",
            exposed_ports=tuple(sorted(cfg.get("ExposedPorts") or {})),
            labels=dict(cfg.get("Labels") or {}),
            pulled_at=record.pulled,
        )

    # --- pulling -------------------------------------------------------------------------
    async def pull(
        self,
        reference: str,
        *,
        auth: builtins.list[protocol.RegistryAuth] | None = None,
        progress: Callable[[protocol.PullProgress], None] | None = None,
    ) -> protocol.Image:
        """Pull ``reference`` from its registry (every blob verified) and unpack what is missing."""
        try:
            ref = _parse(reference)
        except ValueError as exc:
            raise invalid_reference(reference, exc) from exc
        try:
            return await pullmod.pull(self, ref, auth or [], progress)
        except protocol.ImagePullError as exc:
            raise type(exc)(f'failed to pull and unpack image "{ref}": {exc.message}') from exc

    # --- installing (pull and import share this) -----------------------------------------
    async def install(
        self,
        manifest: dict[str, Any],
        *,
        manifest_digest: str,
        manifest_size: int,
        fetch: FetchBlob,
        repo_tags: builtins.list[str],
        repo_digests: builtins.list[str],
        progress_cb: Callable[[protocol.PullProgress], None] | None = None,
        label: str = "",
        keep_blobs: bool = False,
    ) -> protocol.Image:
        """Bring config and layers of ``manifest`` into the store and record the image.

        Layer blobs are deleted once unpacked unless ``keep_blobs`` (an import keeps
        them until every image in the archive is in) or the store keeps them all.
        """
        config_desc = manifest.get("config") or {}
        config_type = config_desc.get("mediaType", "")
        if config_type and config_type not in mediatypes.CONFIGS:
            raise protocol.ImagePullError(
                f"unsupported config media type {config_type}: not a container image"
            )
        config_digest = str(config_desc.get("digest", ""))
        config = await self._config(config_desc, fetch)
        diff_ids = [str(d) for d in (config.get("rootfs") or {}).get("diff_ids") or []]
        layer_descs = list(manifest.get("layers") or [])
        if len(diff_ids) != len(layer_descs):
            raise protocol.ImagePullError(
                f"mismatched image rootfs and manifest layers: {len(diff_ids)} diff ids, "
                f"{len(layer_descs)} layers"
            )
        for digest in [*diff_ids, *(str(d.get("digest", "")) for d in layer_descs)]:
            try:
                content.hex_of(digest)
            except ValueError as exc:
                raise protocol.ImagePullError(f"invalid image: {exc}") from exc
        for desc in layer_descs:
            if desc.get("mediaType", mediatypes.OCI_LAYER) not in mediatypes.LAYERS:
                raise protocol.ImagePullError(
                    f"unsupported layer media type {desc.get('mediaType')}"
                )
        record = metadata.ImageRecord(
            id=config_digest,
            manifest=manifest_digest,
            diff_ids=diff_ids,
            config=dict(config.get("config") or {}),
            size=manifest_size
            + int(config_desc.get("size", 0))
            + sum(int(d.get("size", 0)) for d in layer_descs),
            repo_tags=repo_tags,
            repo_digests=repo_digests,
            architecture=str(config.get("architecture", "")),
            os=str(config.get("os", "")),
            created=str(config.get("created", "")),
            pulled=time.time(),
        )
        chains = record.chain_ids
        with self.layers.pinned(chains):
            for attempt in (1, 2):
                await self._layers(
                    layer_descs, diff_ids, chains, fetch, progress_cb, label, keep_blobs
                )
                try:
                    committed, trash = self._commit(record)
                except LayersVanished:
                    if attempt == 2:
                        raise protocol.ImagePullError(
                            "layers were removed while the image was being pulled; retry"
                        ) from None
                    continue
                await asyncio.to_thread(self.layers.purge, trash)
                return self.image(committed)
        raise AssertionError("unreachable")

    async def _config(self, desc: dict[str, Any], fetch: FetchBlob) -> dict[str, Any]:
        digest = str(desc.get("digest", ""))
        try:
            content.hex_of(digest)
        except ValueError as exc:
            raise protocol.ImagePullError(f"invalid config descriptor: {exc}") from exc
        data = self.blobs.read(digest) if self.blobs.has(digest) else b""
        if not data or content.sha256_digest(data) != digest:
            await fetch(desc, None)
            data = self.blobs.read(digest)
        try:
            config = orjson.loads(data)
        except ValueError as exc:
            raise protocol.ImagePullError(f"invalid image config {digest}: {exc}") from exc
        if not isinstance(config, dict):
            raise protocol.ImagePullError(f"invalid image config {digest}")
        return config

    async def _layers(
        self,
        descs: builtins.list[dict[str, Any]],
        diff_ids: builtins.list[str],
        chains: builtins.list[str],
        fetch: FetchBlob,
        progress_cb: Callable[[protocol.PullProgress], None] | None,
        label: str,
        keep_blobs: bool,
    ) -> None:
        downloads = asyncio.Semaphore(MAX_CONCURRENT_DOWNLOADS)
        tasks: list[asyncio.Task[Path]] = []

        async def one(i: int) -> Path:
            desc = descs[i]
            digest = str(desc.get("digest", ""))
            tracker = progress.LayerProgress(
                progress_cb, reference=label, layer=digest, total=int(desc.get("size", 0))
            )

            async def fetch_layer() -> Path:
                if self.blobs.has(digest):
                    return self.blobs.path(digest)
                async with downloads:
                    return await fetch(desc, tracker.add)

            async def below() -> list[Path]:
                if i > 0:
                    await tasks[i - 1]
                return [self.layers.path(c) for c in reversed(chains[:i])]

            try:
                path = await self.layers.ensure(
                    chains[i],
                    diff_id=diff_ids[i],
                    fetch=fetch_layer,
                    below=below,
                    discard_blob=not (self.keep_layer_blobs or keep_blobs),
                )
            except (content.DigestMismatch, unpack.UnpackError) as exc:
                self.blobs.remove(digest)  # never trust this blob again
                raise protocol.ImagePullError(f"failed to extract layer {digest}: {exc}") from exc
            except OSError as exc:
                raise protocol.ImagePullError(f"failed to extract layer {digest}: {exc}") from exc
            tracker.finish()
            return path

        for i in range(len(descs)):
            tasks.append(asyncio.create_task(one(i), name=f"layer {chains[i][:19]}"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _commit(
        self, record: metadata.ImageRecord
    ) -> tuple[metadata.ImageRecord, builtins.list[Path]]:
        """Record the image (tags move to it); the layers of images it displaced, retired."""
        orphans: list[metadata.ImageRecord] = []
        trash: list[Path] = []
        with self.index.locked() as records:
            if not all(self.layers.exists(c) for c in record.chain_ids):
                raise LayersVanished()
            new_refs = set(record.references)
            for other in list(records.values()):
                if other.id == record.id or not new_refs & set(other.references):
                    continue
                # Tags move to the new image; an image left with no name is dropped.
                other.repo_tags = [t for t in other.repo_tags if t not in new_refs]
                other.repo_digests = [d for d in other.repo_digests if d not in new_refs]
                if not other.references:
                    del records[other.id]
                    orphans.append(other)
            existing = records.get(record.id)
            if existing is not None:
                record.pulled = existing.pulled or record.pulled  # when it first came
                record.repo_tags = _union(existing.repo_tags, record.repo_tags)
                record.repo_digests = _union(existing.repo_digests, record.repo_digests)
            records[record.id] = record
            if orphans:
                trash = self._collect(records, orphans)
        return record, trash

    # --- removing ------------------------------------------------------------------------
    async def remove(self, reference: str) -> None:
        """Drop a name (``name:tag``, ``name@digest``) or, given an id, the whole image.

        An image left without tags (or, pulled by digest, without names) is deleted, with its layers unless another image
        or a running container still uses them. Removing what is not there is no error.
        """
        with self.index.locked() as records:
            record, matched = self.find(reference, records)
            if record is None:
                return
            if matched:
                record.repo_tags = [t for t in record.repo_tags if t != matched]
                record.repo_digests = [d for d in record.repo_digests if d != matched]
            # As docker: untagging the last tag deletes the image (its digest names too).
            last_tag = bool(matched) and "@" not in matched and not record.repo_tags
            trash: list[Path] = []
            if not matched or last_tag or not record.references:
                del records[record.id]
                trash = self._collect(records, [record])
        await asyncio.to_thread(self.layers.purge, trash)

    def _in_use(self) -> set[Path]:
        if self.in_use is None:
            return set()
        return {Path(p) for p in self.in_use()}

    def _collect(
        self, records: dict[str, metadata.ImageRecord], removed: builtins.list[metadata.ImageRecord]
    ) -> builtins.list[Path]:
        """Retire layers and delete blobs of ``removed`` images that nothing else uses.

        Runs under the index lock; the retired layers are for :meth:`LayerStore.purge`
        after it, so neither the lock nor the event loop waits on a big delete.
        """
        keep_blobs = {d for r in records.values() for d in (r.id, r.manifest)}
        for record in removed:
            for digest in (record.id, record.manifest):
                if digest and digest not in keep_blobs:
                    self.blobs.remove(digest)
        candidates = {c for r in removed for c in r.chain_ids}
        return [trash for _, trash in self._retire_unused(records, candidates)]

    def _retire_unused(
        self, records: dict[str, metadata.ImageRecord], candidates: Iterable[str]
    ) -> builtins.list[tuple[str, Path]]:
        keep = {c for r in records.values() for c in r.chain_ids}
        in_use = self._in_use()
        retired = []
        for chain in sorted(candidates):
            if chain in keep or self.layers.is_pinned(chain) or self.layers.path(chain) in in_use:
                continue
            trash = self.layers.retire(chain)
            if trash is not None:
                retired.append((chain, trash))
        return retired

    async def prune(self) -> builtins.list[str]:
        """Remove every layer and blob no image refers to (except pinned and in-use layers);
        the chain ids of the layers removed.

        Meant for the agent's image garbage collection. A layer another process has
        just unpacked but not yet recorded looks unused, so do not run it beside a CLI
        pull (the pull then fails with a message saying to retry).
        """
        with self.index.locked() as records:
            retired = self._retire_unused(records, self.layers.chain_ids())
            if not self.layers.busy():
                keep_blobs = {d for r in records.values() for d in (r.id, r.manifest)}
                for digest in list(self.blobs.digests()):
                    if digest not in keep_blobs:
                        self.blobs.remove(digest)
        await asyncio.to_thread(self.layers.purge, [trash for _, trash in retired])
        return [chain for chain, _ in retired]

    # --- importing -----------------------------------------------------------------------
    async def import_archive(self, path: Path, *, name: str = "") -> builtins.list[protocol.Image]:
        """Import an OCI layout (directory or tar) or a ``docker save`` tar (gzip allowed).

        ``name`` is the repository for OCI entries whose ``ref.name`` is only a tag.
        """
        from pilothouse.node.runtime.images import archive

        return await archive.import_archive(self, path, name=name)


def _parse(text: str) -> reference.Reference:
    return reference.parse(text)


def _union(first: list[str], second: list[str]) -> list[str]:
    out = list(first)
    out.extend(x for x in second if x not in out)
    return out


def _implements_image_service(store: ImageStore) -> protocol.ImageService:
    return store  # mypy checks ImageStore against the runtime protocol here
