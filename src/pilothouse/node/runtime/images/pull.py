"""Pulling one image from its registry (or a mirror) into an :class:`~.store.ImageStore`.

Resolve the reference at each endpoint the registry configuration names, in order
(trying each matching credential, as the kubelet does), pick this machine's manifest
from an index, then hand manifest and a blob fetcher to the store, which downloads,
verifies and unpacks what it does not have yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import auth as authmod
from pilothouse.node.runtime.images import content, mediatypes, reference, registries, registry

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
    """Pull ``ref`` into ``store``; ImagePullError (without the "failed to pull" prefix).

    The endpoints come from the store's registry configuration (mirrors first, then
    the registry itself); the first that resolves the reference serves the blobs
    too. When none does, the error names every endpoint tried and what it answered.
    """
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT
    )
    files = store.registries
    config = files.current() if files is not None else registries.Registries()
    endpoints = config.endpoints(
        ref, default_endpoint=files.default_endpoint if files is not None else True
    )
    if ref.domain.lower() in store.insecure_registries:
        endpoints = [_plain_http(e) if not e.mirror else e for e in endpoints]
    async with aiohttp.ClientSession(timeout=timeout) as session:
        failures: list[tuple[registries.Endpoint, protocol.ImagePullError]] = []
        for endpoint in endpoints:
            try:
                client, body, media_type, top_digest = await _resolve(
                    store, session, ref, endpoint, auths
                )
            except protocol.ImagePullError as exc:
                failures.append((endpoint, exc))
                continue
            return await _fetch(store, client, ref, body, media_type, top_digest, progress_cb)
        raise _all_failed(ref, failures)


def _plain_http(endpoint: registries.Endpoint) -> registries.Endpoint:
    root = "http://" + endpoint.api_root.partition("://")[2]
    return dataclasses.replace(endpoint, api_root=root)


async def _resolve(
    store: ImageStore,
    session: aiohttp.ClientSession,
    ref: reference.Reference,
    endpoint: registries.Endpoint,
    auths: list[protocol.RegistryAuth],
) -> tuple[registry.RegistryClient, bytes, str, str]:
    """The manifest (or index) ``ref`` names at ``endpoint``, and the client that got it."""
    ssl = store.registries.ssl_for(endpoint) if store.registries is not None else True
    # Credentials from the configuration for this endpoint's host come first, then the
    # pod's pull secrets for the image's registry; the kubelet tries each in turn.
    candidates: list[protocol.RegistryAuth | None] = []
    if endpoint.config.auth is not None:
        candidates.append(endpoint.config.auth)
    candidates.extend(authmod.matching(auths, ref))
    failure: protocol.ImagePullError | None = None
    for credentials in candidates or [None]:
        client = registry.RegistryClient(
            session, ref, credentials=credentials, tokens=store.tokens, endpoint=endpoint, ssl=ssl
        )
        try:
            body, media_type, top_digest = await client.get_manifest(ref.object)
        except registry.Unauthorized as exc:
            failure = exc
            continue
        return client, body, media_type, top_digest
    assert failure is not None
    raise failure


def _all_failed(
    ref: reference.Reference,
    failures: list[tuple[registries.Endpoint, protocol.ImagePullError]],
) -> protocol.ImagePullError:
    """The registry's own endpoint alone: its error, as containerd words it. Otherwise
    (mirrors): every endpoint tried, in order, with what it answered."""
    if len(failures) == 1 and not failures[0][0].mirror:
        return failures[0][1]
    tried = "; ".join(
        f"[{i}] {endpoint.describe()}: {exc.message}"
        for i, (endpoint, exc) in enumerate(failures, 1)
    )
    err_type: type[protocol.ImagePullError] = protocol.ImagePullError
    kinds = {type(exc) for _, exc in failures}
    if kinds == {registry.NotFound}:
        err_type = registry.NotFound
    elif registry.Unauthorized in kinds and kinds <= {registry.Unauthorized, registry.NotFound}:
        err_type = registry.Unauthorized
    return err_type(
        f'failed to resolve reference "{ref}": no endpoint could serve it, '
        f"tried {len(failures)}: {tried}"
    )


async def _fetch(
    store: ImageStore,
    client: registry.RegistryClient,
    ref: reference.Reference,
    body: bytes,
    media_type: str,
    top_digest: str,
    progress_cb: Callable[[protocol.PullProgress], None] | None,
) -> protocol.Image:
    """From a resolved manifest (or index) to an installed image, blobs from ``client``."""
    manifest, digest = parse_manifest(body, media_type, str(ref))
    if manifest is None:  # an index: pick this machine's manifest
        desc = mediatypes.select_manifest(orjson.loads(body), store.platform)
        if desc is None:
            raise protocol.ImagePullError(
                f"no match for platform in manifest {top_digest}: not found "
                f"(this machine is {store.platform})"
            )
        body, media_type, digest = await client.get_manifest(str(desc["digest"]))
        manifest, digest = parse_manifest(body, media_type or desc.get("mediaType", ""), str(ref))
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
