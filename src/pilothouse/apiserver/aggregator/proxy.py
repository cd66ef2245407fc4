"""Requests to an aggregated group-version, proxied to the APIService's Service
(kube-aggregator's ``proxyHandler``).

The request has been authenticated and authorized here already; the extension
server learns who asked from ``X-Remote-User``/``X-Remote-Group``/``X-Remote-Extra-*``
on a connection made with the front-proxy client certificate (credentials the
client sent are not passed on, nor ``X-Remote-*`` headers it made up). The path
and query go through unchanged; the body of the answer is streamed back as it
arrives, so watches work. Discovery requests (``/apis/<group>/<version>``) get 5 s.

An APIService that is not ``Available``, or whose Service cannot be resolved, is a
503 ``ServiceUnavailable`` (the text client-go shows for upstream's plain-text 503:
``the server is currently unable to handle the request``); a connection that fails
is a 503 too, saying why.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import Any

import aiohttp
from aiohttp import web

from pilothouse.api import errors
from pilothouse.apiserver.aggregator import available, frontproxy
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.webhook import client, resolver

log = logging.getLogger(__name__)

DISCOVERY_TIMEOUT = 5.0
# How often a quiet proxied stream checks that its client is still there.
_CLIENT_CHECK = 1.0
UNAVAILABLE = "the server is currently unable to handle the request"

# Headers that describe one hop, or carry credentials meant for this server.
_DROPPED = frozenset(
    {
        "authorization",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_DROPPED_RESPONSE = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
)


def _drop(name: str) -> bool:
    lower = name.lower()
    return lower in _DROPPED or lower.startswith(("impersonate-", "x-remote-"))


def auth_proxy_headers(user: user_module.UserInfo) -> list[tuple[str, str]]:
    """client-go's ``SetAuthProxyHeaders``: the user, each group, each extra value."""
    headers = [(frontproxy.USER_HEADER, user.name)]
    headers += [(frontproxy.GROUP_HEADER, group) for group in user.groups]
    for key, values in user.extra.items():
        escaped = urllib.parse.quote(key, safe="")
        headers += [(frontproxy.EXTRA_PREFIX + escaped, value) for value in values]
    return headers


def unavailable() -> errors.StatusError:
    return errors.service_unavailable(UNAVAILABLE)


class Proxy:
    """Forwards requests to extension API servers; one per API server."""

    def __init__(
        self, *, clients: client.ClientManager, services: resolver.ServiceResolver
    ) -> None:
        self.clients = clients
        self.services = services

    async def handle(self, request: web.Request, api_service: dict[str, Any]) -> web.StreamResponse:
        if not available.is_available(api_service):
            raise unavailable()
        if request.headers.get("Upgrade"):
            raise errors.StatusError(
                501,
                "NotImplemented",
                "upgrade requests (exec, attach, port-forward) are not proxied to aggregated "
                "API servers",
            )
        user = user_module.current()
        if user is None:
            raise errors.internal("missing user")
        spec = api_service.get("spec") or {}
        ref = spec.get("service") or {}
        namespace, name = str(ref.get("namespace") or ""), str(ref.get("name") or "")
        port = int(ref.get("port") or 443)
        try:
            address = self.services.resolve(namespace, name, port)
        except resolver.ResolveError as exc:
            log.error("error resolving %s/%s: %s", namespace, name, exc)
            raise unavailable() from None
        try:
            context = self.clients.ssl_context(
                client.decode_ca_bundle(spec.get("caBundle")),
                insecure=spec.get("insecureSkipTLSVerify") is True,
            )
        except client.CallError as exc:
            raise errors.internal(str(exc)) from None
        url = f"https://{address.netloc}{request.rel_url.raw_path_qs}"
        headers = [(k, v) for k, v in request.headers.items() if not _drop(k)]
        headers += auth_proxy_headers(user)
        forwarded = request.remote or ""
        if forwarded:
            previous = request.headers.get("X-Forwarded-For")
            headers = [(k, v) for k, v in headers if k.lower() != "x-forwarded-for"]
            headers.append(
                ("X-Forwarded-For", f"{previous}, {forwarded}" if previous else forwarded)
            )
        body = await request.read() if request.can_read_body else None
        segments = request.path.strip("/").split("/")
        timeout = aiohttp.ClientTimeout(
            total=DISCOVERY_TIMEOUT if len(segments) == 3 else None, sock_connect=DISCOVERY_TIMEOUT
        )
        session = self.clients.session()
        try:
            upstream = await session.request(
                request.method,
                url,
                data=body,
                headers=headers,
                ssl=context,
                server_hostname=f"{name}.{namespace}.svc",
                allow_redirects=False,
                timeout=timeout,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            target = client.Target(url, None, f"{name}.{namespace}.svc", None, context)
            reason = (
                "context deadline exceeded"
                if isinstance(exc, TimeoutError)
                else client.describe(exc, target)
            )
            raise errors.service_unavailable(f"error trying to reach service: {reason}") from None
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in _DROPPED_RESPONSE or key.lower() == "content-encoding":
                    response.headers.add(key, value)
            await response.prepare(request)
            try:
                if await _stream(request, upstream, response):
                    await response.write_eof()
            except (aiohttp.ClientError, TimeoutError, ConnectionResetError) as exc:
                log.info("proxied response from %s/%s ended: %s", namespace, name, exc)
            return response


async def _stream(
    request: web.Request, upstream: aiohttp.ClientResponse, response: web.StreamResponse
) -> bool:
    """Copy the answer as it arrives; False when the client went first (a watch the
    client dropped must not hold a connection to the extension server until it ends)."""
    while True:
        try:
            chunk = await asyncio.wait_for(upstream.content.readany(), _CLIENT_CHECK)
        except TimeoutError:
            if request.transport is None or request.transport.is_closing():
                upstream.close()  # not released to the pool: the stream is cut
                return False
            continue
        if not chunk:
            return True
        await response.write(chunk)
