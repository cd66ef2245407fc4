"""A client for one repository on an OCI distribution (v2) registry.

Speaks https, or plain http to registries the caller marks insecure and always to
this machine's own (127.0.0.0/8, localhost, ::1), as containerd does. Authorisation
follows the registry's challenge: ``Bearer`` (the token flow: fetch a token from the
realm, with basic credentials or an identity token when given) or ``Basic``. Tokens
are cached per realm, service, scope and user in a :class:`TokenCache` that outlives
one client, so consecutive pulls skip the 401 round trip.

Error messages follow containerd's wording, which is what users see in pod events.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

import pilothouse
from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import auth as authmod
from pilothouse.node.runtime.images import content, mediatypes, reference, registries

USER_AGENT = f"pilothouse/{pilothouse.__version__}"
MAX_MANIFEST_BYTES = 4 << 20
CHUNK = 1 << 16
BLOB_ATTEMPTS = 3


class NotFound(protocol.ImagePullError):
    """The registry has no such repository, tag or digest."""


class Unauthorized(protocol.ImagePullError):
    """The registry refused these credentials (or their absence)."""


@dataclass
class TokenCache:
    """Bearer tokens by (realm, service, scope, user), each with its expiry."""

    tokens: dict[tuple[str, str, str, str], tuple[str, float]] = field(default_factory=dict)

    def get(self, key: tuple[str, str, str, str]) -> str | None:
        hit = self.tokens.get(key)
        if hit is None or hit[1] < time.monotonic() + 5:
            return None
        return hit[0]

    def put(self, key: tuple[str, str, str, str], token: str, expires_in: float) -> None:
        self.tokens[key] = (token, time.monotonic() + expires_in)


def _server_message(body: bytes) -> str:
    try:
        doc = orjson.loads(body)
        errors = doc.get("errors") or []
        return (
            "; ".join(
                f"{str(e.get('code', '')).lower()}: {e.get('message', '')}".strip(": ")
                for e in errors
            )
            or body.decode("utf-8", "replace")[:200]
        )
    except (ValueError, AttributeError):
        return body.decode("utf-8", "replace").strip()[:200]


def _basic(cred: protocol.RegistryAuth) -> str:
    return "Basic " + base64.b64encode(f"{cred.username}:{cred.password}".encode()).decode()


def _status(resp: aiohttp.ClientResponse) -> str:
    return f"{resp.status} {resp.reason or ''}".strip()


class RegistryClient:
    """Requests against ``<api root>/<repository>/…`` with authorisation.

    The API root and repository come from ``endpoint`` (a mirror or the registry
    itself, see :mod:`.registries`); without one, the registry ``ref`` names, over
    https (http when ``insecure`` or on this machine). ``ssl`` is aiohttp's: an
    SSLContext for the endpoint's own CA or client certificate, or True (the defaults).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        ref: reference.Reference,
        *,
        credentials: protocol.RegistryAuth | None = None,
        insecure: bool = False,
        tokens: TokenCache | None = None,
        actions: str = "pull",
        endpoint: registries.Endpoint | None = None,
        ssl: Any = True,
    ) -> None:
        self.session = session
        self.ref = ref
        self.credentials = credentials
        if endpoint is None:
            scheme = "http" if insecure or reference.is_loopback(ref.domain) else "https"
            host = reference.registry_host(ref.domain)
            endpoint = registries.Endpoint(f"{scheme}://{host}/v2", host, ref.path, False)
        self.endpoint = endpoint
        self.repository = endpoint.repository
        scheme, _, rest = endpoint.api_root.partition("://")
        self.base = f"{scheme}://{rest.partition('/')[0]}"
        self.api_root = endpoint.api_root
        self.ssl = ssl
        self.tokens = tokens if tokens is not None else TokenCache()
        self.scope = f"repository:{self.repository}:{actions}"
        self._authorization = ""
        self._last_challenge: tuple[str, dict[str, str]] | None = None

    # --- transport -----------------------------------------------------------------------
    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base + path

    def api(self, suffix: str) -> str:
        """``<api root>/<repository>/<suffix>``: where this repository's ``suffix`` is."""
        return f"{self.api_root}/{self.repository}/{suffix}"

    @contextlib.asynccontextmanager
    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request, authorised (answering one 401 challenge); the caller reads status."""
        url = self.url(path)
        for attempt in (1, 2):
            hdrs = {"User-Agent": USER_AGENT, **(headers or {})}
            if self._authorization:
                hdrs["Authorization"] = self._authorization
            try:
                resp = await self.session.request(
                    method, url, headers=hdrs, data=data, params=params, ssl=self.ssl
                )
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise protocol.ImagePullError(
                    f'failed to do request: {method.capitalize()} "{url}": {exc or type(exc).__name__}'
                ) from exc
            if resp.status == 401 and attempt == 1:
                challenge = resp.headers.get("WWW-Authenticate", "")
                body = await resp.read()
                resp.release()
                await self._authorize(challenge, body)
                continue
            break
        try:
            yield resp
        finally:
            resp.release()

    async def _authorize(self, challenge: str, body: bytes) -> None:
        scheme, params = authmod.parse_challenge(challenge)
        cred = self.credentials
        if scheme == "bearer" and params.get("realm"):
            self._authorization = "Bearer " + await self._token(params)
        elif scheme == "basic" and cred is not None and cred.username:
            self._authorization = _basic(cred)
        else:
            raise Unauthorized(
                "pull access denied, repository does not exist or may require authorization: "
                f"server message: {_server_message(body) or '401 Unauthorized'}"
            )

    async def _token(self, params: dict[str, str]) -> str:
        realm = params["realm"]
        service = params.get("service", "")
        scope = params.get("scope") or self.scope
        cred = self.credentials
        user = cred.username if cred else ""
        key = (realm, service, scope, user)
        cached = self.tokens.get(key)
        if cached:
            return cached
        query = {k: v for k, v in (("service", service), ("scope", scope)) if v}
        try:
            if cred is not None and cred.token and not cred.password:
                # An identity (refresh) token is traded for an access token: OAuth2 POST.
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": cred.token,
                    "client_id": "pilothouse",
                    **query,
                }
                resp = await self.session.post(
                    realm, data=form, headers={"User-Agent": USER_AGENT}, ssl=self.ssl
                )
            else:
                headers = {"User-Agent": USER_AGENT}
                if cred is not None and cred.username:
                    headers["Authorization"] = _basic(cred)
                resp = await self.session.get(realm, params=query, headers=headers, ssl=self.ssl)
            async with resp:
                body = await resp.read()
                if resp.status in (401, 403):
                    raise Unauthorized(
                        f"failed to authorize: failed to fetch {'oauth' if cred else 'anonymous'} "
                        f"token: unexpected status from {resp.method} request to {realm}: {_status(resp)}"
                    )
                if resp.status != 200:
                    raise protocol.ImagePullError(
                        f"failed to authorize: failed to fetch token: unexpected status from "
                        f"{resp.method} request to {realm}: {_status(resp)}"
                    )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise protocol.ImagePullError(
                f'failed to authorize: failed to do request: "{realm}": {exc}'
            ) from exc
        try:
            doc = orjson.loads(body)
            token = str(doc.get("token") or doc.get("access_token") or "")
            expires_in = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token = ""
        if not token:
            raise protocol.ImagePullError(
                f"failed to authorize: token server {realm} sent no token"
            )
        self.tokens.put(key, token, expires_in)
        return token

    # --- pulling -------------------------------------------------------------------------
    async def get_manifest(self, obj: str) -> tuple[bytes, str, str]:
        """The manifest or index named by ``obj`` (tag or digest): body, media type, digest.

        A manifest asked for by digest is checked against it.
        """
        ref_text = str(self.ref)
        path = self.api(f"manifests/{obj}")
        async with self.request(
            "GET", path, headers={"Accept": mediatypes.MANIFEST_ACCEPT}
        ) as resp:
            if resp.status == 404:
                raise NotFound(f'failed to resolve reference "{ref_text}": {ref_text}: not found')
            if resp.status in (401, 403):
                body = await resp.read()
                # containerd's words, plus which request got which status: with mirrors
                # and credentials per endpoint, "denied" alone does not say where.
                raise Unauthorized(
                    f'failed to resolve reference "{ref_text}": pull access denied, repository does '
                    f"not exist or may require authorization: server message: {_server_message(body)} "
                    f"({_status(resp)} from GET {self.url(path)})"
                )
            if resp.status != 200:
                raise protocol.ImagePullError(
                    f'failed to resolve reference "{ref_text}": unexpected status from GET request '
                    f"to {self.url(path)}: {_status(resp)}"
                )
            if (resp.content_length or 0) > MAX_MANIFEST_BYTES:
                raise protocol.ImagePullError(f"manifest for {ref_text} is too large")
            body = await resp.content.read(MAX_MANIFEST_BYTES + 1)
            if len(body) > MAX_MANIFEST_BYTES:
                raise protocol.ImagePullError(f"manifest for {ref_text} is too large")
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        digest = content.sha256_digest(body)
        if obj.startswith("sha256:") and digest != obj:
            raise protocol.ImagePullError(
                f"failed to copy manifest {obj}: {content.DigestMismatch(obj, digest)}"
            )
        return body, media_type, digest

    async def fetch_blob(
        self,
        desc: dict[str, Any],
        blobs: content.BlobStore,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> Path:
        """Download a blob into ``blobs``, hashing as it streams; its verified path.

        A dropped connection is retried from the start (``BLOB_ATTEMPTS`` times).
        """
        digest = str(desc["digest"])
        size = int(desc.get("size", -1))
        path = self.api(f"blobs/{digest}")
        for attempt in range(1, BLOB_ATTEMPTS + 1):
            ingest = blobs.ingest(digest, size)
            try:
                async with self.request("GET", path) as resp:
                    if resp.status != 200:
                        raise protocol.ImagePullError(
                            f"failed to copy {digest}: unexpected status code {self.url(path)}: "
                            f"{_status(resp)}"
                        )
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        ingest.write(chunk)
                        if progress is not None:
                            progress(len(chunk))
            except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                ingest.abort()
                if attempt == BLOB_ATTEMPTS:
                    raise protocol.ImagePullError(f"failed to copy {digest}: {exc}") from exc
                continue
            except BaseException:
                ingest.abort()
                raise
            try:
                return ingest.commit()
            except (content.DigestMismatch, content.SizeMismatch) as exc:
                raise protocol.ImagePullError(f"failed to copy {digest}: {exc}") from exc
        raise AssertionError("unreachable")
