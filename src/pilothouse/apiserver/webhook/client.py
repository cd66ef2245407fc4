"""The HTTPS client behind admission webhooks (upstream's ``webhookutil.ClientManager``).

A webhook is reached at ``clientConfig.url`` or, for ``clientConfig.service``, at
``https://<name>.<namespace>.svc:<port><path>``: the URL names the Service (that
is what error messages and the certificate check use, server name
``<name>.<namespace>.svc``) while the connection goes to the address the
:class:`~pilothouse.apiserver.webhook.resolver.ServiceResolver` finds, as
upstream's dialer swaps the address under the URL.

Every call goes through one aiohttp session, so connections to a webhook are kept
alive and reused across requests; a TLS context is made once per CA bundle
(``caBundle``, else the system's roots). Many requests call webhooks at once; the
pool is the only shared state and aiohttp guards it.

Transport failures raise :class:`CallError` whose text is what Go's HTTP client
would say (``Post "https://…?timeout=10s": dial tcp 127.0.0.1:1: connect:
connection refused``, ``…: context deadline exceeded``), since upstream's
messages embed it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiohttp

from pilothouse.apiserver.webhook import resolver as resolver_module

# Upstream keeps at most this many idle connections per host for webhooks
# (http.Transport's MaxIdleConnsPerHost of its REST clients is 25 by default).
_CONNECTIONS_PER_HOST = 64
_KEEPALIVE = 30.0


class CallError(Exception):
    """The webhook could not be called (transport, TLS, resolution, bad client config).

    ``stage`` is the step that failed, as upstream prefixes it (``failed to call
    webhook``, ``could not get REST client``)."""

    def __init__(self, message: str, *, stage: str = "failed to call webhook") -> None:
        super().__init__(message)
        self.stage = stage

    @property
    def reason(self) -> str:
        return f"{self.stage}: {self}"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class Target:
    """Where one call goes: the URL shown in messages, and the address dialled."""

    url: str
    dial: resolver_module.Address | None
    server_name: str | None
    host_header: str | None
    ssl: ssl.SSLContext


def decode_ca_bundle(value: Any) -> bytes:
    """``caBundle`` as stored (base64 in JSON) → PEM bytes."""
    if not value:
        return b""
    if isinstance(value, bytes):
        return value
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return str(value).encode()


def go_timeout(seconds: float) -> str:
    """The ``timeout`` query parameter as client-go writes it (``10s``, ``1m0s``)."""
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    return f"{minutes}m{secs}s"


class ClientManager:
    """Connection pool and TLS contexts for calls out of the API server."""

    def __init__(
        self,
        resolver: resolver_module.ServiceResolver | None,
        *,
        client_cert: tuple[str, str] | None = None,
    ) -> None:
        self.resolver = resolver
        self.client_cert = client_cert
        self._session: aiohttp.ClientSession | None = None
        self._contexts: dict[tuple[bytes, bool], ssl.SSLContext] = {}

    # --- pool -------------------------------------------------------------------
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0, limit_per_host=_CONNECTIONS_PER_HOST, keepalive_timeout=_KEEPALIVE
                ),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def ssl_context(self, ca_bundle: bytes, *, insecure: bool = False) -> ssl.SSLContext:
        key = (ca_bundle, insecure)
        context = self._contexts.get(key)
        if context is not None:
            return context
        if insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif ca_bundle:
            try:
                context = ssl.create_default_context(cadata=ca_bundle.decode("ascii", "replace"))
            except (ssl.SSLError, ValueError):
                raise CallError(
                    "unable to load root certificates: unable to parse bytes as PEM block",
                    stage="could not get REST client",
                ) from None
        else:
            context = ssl.create_default_context()
        # Upstream pins webhooks and extension servers to HTTP/1.1 (issue 75791).
        context.set_alpn_protocols(["http/1.1"])
        if self.client_cert is not None:
            context.load_cert_chain(*self.client_cert)
        self._contexts[key] = context
        return context

    # --- targets ----------------------------------------------------------------
    def target(self, client_config: dict[str, Any], *, timeout: float | None) -> Target:
        """The URL and dial address of a ``WebhookClientConfig``."""
        context = self.ssl_context(decode_ca_bundle(client_config.get("caBundle")))
        query = f"?timeout={go_timeout(timeout)}" if timeout else ""
        url = client_config.get("url")
        if url:
            parts = urllib.parse.urlsplit(str(url))
            return Target(
                f"{parts.scheme}://{parts.netloc}{parts.path}{query}", None, None, None, context
            )
        service = client_config.get("service") or {}
        namespace, name = str(service.get("namespace") or ""), str(service.get("name") or "")
        port = int(service.get("port") or 443)
        server_name = f"{name}.{namespace}.svc"
        host = resolver_module.join_host_port(server_name, port)
        path = str(service.get("path") or "")
        if self.resolver is None:
            raise CallError("no service resolver")
        try:
            address = self.resolver.resolve(namespace, name, port)
        except resolver_module.ResolveError as exc:
            raise CallError(f'Post "https://{host}{path}{query}": {exc}') from None
        return Target(f"https://{host}{path}{query}", address, server_name, host, context)

    # --- calls ------------------------------------------------------------------
    async def post(self, client_config: dict[str, Any], body: bytes, *, timeout: float) -> Response:
        """POST a JSON body; transport failures raise :class:`CallError`."""
        target = self.target(client_config, timeout=timeout)
        return await self.send(target, "POST", body, timeout=timeout)

    async def send(
        self,
        target: Target,
        method: str,
        body: bytes | None,
        *,
        timeout: float,
        headers: dict[str, str] | None = None,
    ) -> Response:
        url = target.url
        if target.dial is not None:
            parts = urllib.parse.urlsplit(url)
            url = urllib.parse.urlunsplit(parts._replace(netloc=target.dial.netloc))
        send_headers = {"Content-Type": "application/json", "Accept": "application/json, */*"}
        if target.host_header:
            send_headers["Host"] = target.host_header
        send_headers.update(headers or {})
        try:
            async with asyncio.timeout(timeout):
                async with self.session().request(
                    method,
                    url,
                    data=body,
                    headers=send_headers,
                    ssl=target.ssl,
                    server_hostname=target.server_name,
                    allow_redirects=False,
                ) as resp:
                    data = await resp.read()
                    return Response(resp.status, data, resp.content_type)
        except TimeoutError:
            raise CallError(f'{method.title()} "{target.url}": context deadline exceeded') from None
        except (aiohttp.ClientError, OSError) as exc:
            raise CallError(f'{method.title()} "{target.url}": {describe(exc, target)}') from None


def describe(exc: BaseException, target: Target) -> str:
    """A transport failure in Go's ``net/http`` words."""
    netloc = (
        target.dial.netloc if target.dial is not None else urllib.parse.urlsplit(target.url).netloc
    )
    if ":" not in netloc.rsplit("]", 1)[-1]:
        netloc += ":443"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        code = getattr(cert_error, "verify_code", None)
        # self-signed, unknown issuer, unverifiable leaf; a signature that fails under a CA
        # of the same name is Go's "unknown authority" too
        if code in (7, 19, 20, 21):
            return (
                "tls: failed to verify certificate: x509: certificate signed by unknown authority"
            )
        if code == 62:  # hostname mismatch
            name = target.server_name or urllib.parse.urlsplit(target.url).hostname
            return f"tls: failed to verify certificate: x509: certificate is not valid for {name}"
        if code == 10:
            return "tls: failed to verify certificate: x509: certificate has expired or is not yet valid"
        return f"tls: failed to verify certificate: {getattr(cert_error, 'verify_message', cert_error)}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError | ssl.SSLError):
        return f"remote error: tls: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError) or os_error.errno == errno.ECONNREFUSED:
            return f"dial tcp {netloc}: connect: connection refused"
        if isinstance(os_error, OSError) and os_error.errno in (
            errno.ENETUNREACH,
            errno.EHOSTUNREACH,
        ):
            return f"dial tcp {netloc}: connect: no route to host"
        if "Name or service not known" in str(os_error) or "nodename nor servname" in str(os_error):
            host = netloc.rsplit(":", 1)[0]
            return f"dial tcp: lookup {host}: no such host"
        return f"dial tcp {netloc}: {os_error.strerror or os_error}".lower()
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "EOF"
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return f"malformed HTTP response: {exc}"
    if isinstance(exc, ConnectionResetError):
        return f"read tcp {netloc}: read: connection reset by peer"
    return str(exc) or type(exc).__name__
