"""Pulling one image from its registry into an :class:`~.store.ImageStore`.

Resolve the reference (trying each matching credential, as the kubelet does), pick
this machine's manifest from an index, then hand manifest and a blob fetcher to the
store, which downloads, verifies and unpacks what it does not have yet.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import auth as authmod
from pilothouse.node.runtime.images import content, mediatypes, reference, registry

if TYPE_CHECKING:
    from pilothouse.node.runtime.images.store import ImageStore

CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 120.0


async def pull(
    store: ImageStore,
    ref: reference.Reference,
    auths: list[protocol.RegistryAuth],
    progress_cb: Callable[[protocol.PullProgress], None] | None,
) -> protocol.Image:
    """Pull ``ref`` into ``store``; ImagePullError (without the "failed to pull" prefix)."""
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT
    )
    insecure = ref.domain.lower() in store.insecure_registries
    async with aiohttp.ClientSession(timeout=timeout) as session:
        candidates: list[protocol.RegistryAuth | None] = [*authmod.matching(auths, ref)] or [None]
        failure: protocol.ImagePullError | None = None
        for credentials in candidates:
            client = registry.RegistryClient(
                session, ref, credentials=credentials, insecure=insecure, tokens=store.tokens
            )
            try:
                body, media_type, top_digest = await client.get_manifest(ref.object)
                break
            except registry.Unauthorized as exc:
                failure = exc  # the kubelet tries every matching credential in turn
        else:
            assert failure is not None
            raise failure
        manifest, digest = parse_manifest(body, media_type, str(ref))
        if manifest is None:  # an index: pick this machine's manifest
            desc = mediatypes.select_manifest(orjson.loads(body), store.platform)
            if desc is None:
                raise protocol.ImagePullError(
                    f"no match for platform in manifest {top_digest}: not found "
                    f"(this machine is {store.platform})"
                )
            body, media_type, digest = await client.get_manifest(str(desc["digest"]))
            manifest, digest = parse_manifest(
                body, media_type or desc.get("mediaType", ""), str(ref)
            )
            if manifest is None:
                raise protocol.ImagePullError(f"nested image index {digest} is not supported")
        store.blobs.write(body, digest)

        async def fetch(desc: dict[str, Any], on_bytes: Callable[[int], None] | None) -> Path:
            return await client.fetch_blob(desc, store.blobs, progress=on_bytes)

        return await store.install(
            manifest,
            manifest_digest=digest,
            manifest_size=len(body),
            fetch=fetch,
            repo_tags=[str(ref.with_tag(ref.tag))] if ref.tag else [],
            repo_digests=[str(ref.with_digest(top_digest))],
            progress_cb=progress_cb,
            label=str(ref),
        )


def parse_manifest(body: bytes, media_type: str, label: str) -> tuple[dict[str, Any] | None, str]:
    """The manifest (None for an index) and its digest; unsupported kinds raise."""
    try:
        doc = orjson.loads(body)
    except ValueError as exc:
        raise protocol.ImagePullError(f"invalid manifest for {label}: {exc}") from exc
    if not isinstance(doc, dict):
        raise protocol.ImagePullError(f"invalid manifest for {label}: not an object")
    kind = mediatypes.kind_of(doc, media_type)
    if kind == "schema1":
        raise protocol.ImagePullError(
            "Docker Image Format v1 and Docker Image manifest version 2, schema 1 are not "
            "supported; push the image again with a current tool"
        )
    if kind == "unknown":
        raise protocol.ImagePullError(f"unsupported manifest media type {media_type!r}")
    return (doc if kind == "manifest" else None), content.sha256_digest(body)
