"""A small asyncio client for etcd's v3 gRPC API, on ``grpcio``'s ``grpc.aio``.

Only what the store needs: Range, Txn, Compact, Watch streams, leases and Status,
with the error mapping the API relies on (unreachable → StoreUnavailableError,
deadline → StoreTimeoutError, compacted/future revisions → the store's errors).

Endpoints: one gRPC channel per endpoint, used in turn: a call that finds its
endpoint unreachable moves the client to the next one. Reads are retried on the
next endpoint; writes are not (a write that may have been applied is reported,
never repeated — the caller answers 503 and the client decides).

Concurrency: any number of calls run at once on the event loop; gRPC
multiplexes them over HTTP/2. Nothing here blocks the loop.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc  # type: ignore[import-untyped]

from pilothouse.storage import interface as storage
from pilothouse.storage.etcd import proto

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 15.0
_COMPACTED = "required revision has been compacted"
_FUTURE = "required revision is a future revision"
# gRPC codes etcd uses when it cannot serve right now (no leader, overloaded, down).
_UNAVAILABLE = ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "CANCELLED", "ABORTED")


@dataclass(frozen=True)
class TLSFiles:
    """Client TLS towards etcd: the CA to trust, and our certificate and key."""

    cafile: pathlib.Path | None = None
    certfile: pathlib.Path | None = None
    keyfile: pathlib.Path | None = None

    def credentials(self) -> Any:
        def read(path: pathlib.Path | None) -> bytes | None:
            return path.read_bytes() if path is not None else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.cafile),
            private_key=read(self.keyfile),
            certificate_chain=read(self.certfile),
        )


@dataclass(frozen=True)
class Endpoint:
    url: str
    target: str  # host:port
    secure: bool


def parse_endpoints(text: str) -> list[Endpoint]:
    """``http://HOST:2379[,https://HOST2:2379…]`` → endpoints; raises ValueError."""
    out = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        url = urllib.parse.urlsplit(raw)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"etcd endpoint {raw!r} is not an http:// or https:// URL with a host")
        if url.path not in ("", "/"):
            raise ValueError(
                f"etcd endpoint {raw!r} has a path; use --datastore-prefix for a key prefix"
            )
        host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
        out.append(Endpoint(raw, f"{host}:{url.port or 2379}", url.scheme == "https"))
    if not out:
        raise ValueError("no etcd endpoint given")
    return out


def translate(exc: BaseException, endpoint: str) -> storage.StoreError:
    """The store's error for a failed gRPC call."""
    if not isinstance(exc, grpc.aio.AioRpcError):
        return storage.StoreError(f"etcd at {endpoint}: {exc}")
    code = exc.code().name
    details = exc.details() or code
    if _COMPACTED in details:
        return storage.CompactedError(0, 0)
    if _FUTURE in details:
        return storage.FutureRevisionError(0, 0)
    if code == "DEADLINE_EXCEEDED":
        return storage.StoreTimeoutError(f"etcd at {endpoint} did not answer in time")
    if code in _UNAVAILABLE or "etcdserver: request timed out" in details:
        return storage.StoreUnavailableError(f"etcd at {endpoint} is unavailable: {details}")
    return storage.StoreError(f"etcd at {endpoint}: {code}: {details}")


class _Channel:
    """One endpoint's channel and the method callables on it."""

    def __init__(self, endpoint: Endpoint, tls: TLSFiles | None) -> None:
        self.endpoint = endpoint
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
            # Find a dead connection in seconds, not at the next write's timeout.
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2_000),
        ]
        if endpoint.secure:
            self.channel = grpc.aio.secure_channel(
                endpoint.target, (tls or TLSFiles()).credentials(), options=options
            )
        else:
            self.channel = grpc.aio.insecure_channel(endpoint.target, options=options)

        def unary(path: str, request: Any, response: Any) -> Any:
            return self.channel.unary_unary(
                path,
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )

        self.range = unary("/etcdserverpb.KV/Range", proto.RangeRequest, proto.RangeResponse)
        self.put = unary("/etcdserverpb.KV/Put", proto.PutRequest, proto.PutResponse)
        self.txn = unary("/etcdserverpb.KV/Txn", proto.TxnRequest, proto.TxnResponse)
        self.compact = unary(
            "/etcdserverpb.KV/Compact", proto.CompactionRequest, proto.CompactionResponse
        )
        self.status = unary(
            "/etcdserverpb.Maintenance/Status", proto.StatusRequest, proto.StatusResponse
        )
        self.lease_grant = unary(
            "/etcdserverpb.Lease/LeaseGrant", proto.LeaseGrantRequest, proto.LeaseGrantResponse
        )
        self.lease_revoke = unary(
            "/etcdserverpb.Lease/LeaseRevoke", proto.LeaseRevokeRequest, proto.LeaseRevokeResponse
        )
        self.lease_keepalive = self.channel.stream_stream(
            "/etcdserverpb.Lease/LeaseKeepAlive",
            request_serializer=proto.LeaseKeepAliveRequest.SerializeToString,
            response_deserializer=proto.LeaseKeepAliveResponse.FromString,
        )
        self.watch = self.channel.stream_stream(
            "/etcdserverpb.Watch/Watch",
            request_serializer=proto.WatchRequest.SerializeToString,
            response_deserializer=proto.WatchResponse.FromString,
        )


class Client:
    """etcd v3 over gRPC, with fail-over between endpoints (see the module docstring)."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        tls: TLSFiles | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoint given")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._tls = tls
        self._channels: list[_Channel] | None = None
        self._current = 0

    def _open(self) -> list[_Channel]:
        if self._channels is None:
            self._channels = [_Channel(e, self._tls) for e in self.endpoints]
        return self._channels

    @property
    def current(self) -> _Channel:
        return self._open()[self._current]

    def _failed(self, channel: _Channel) -> None:
        """``channel`` could not serve a call: use the next endpoint from now on."""
        channels = self._open()
        if len(channels) > 1 and channels[self._current] is channel:
            self._current = (self._current + 1) % len(channels)
            log.warning(
                "etcd at %s is unreachable; using %s",
                channel.endpoint.url,
                channels[self._current].endpoint.url,
            )

    async def _call(self, method: str, request: Any, *, retry: bool, timeout: float | None) -> Any:
        attempts = len(self._open()) if retry else 1
        error: storage.StoreError | None = None
        for _ in range(attempts):
            channel = self.current
            try:
                return await getattr(channel, method)(request, timeout=timeout or self.timeout)
            except grpc.aio.AioRpcError as exc:
                error = translate(exc, channel.endpoint.url)
                if not isinstance(error, storage.StoreUnavailableError):
                    raise error from None
                self._failed(channel)
        assert error is not None
        raise error

    async def range(self, request: Any, *, timeout: float | None = None) -> Any:
        return await self._call("range", request, retry=True, timeout=timeout)

    async def put(self, key: bytes, value: bytes, *, timeout: float | None = None) -> int:
        """An unconditional put; returns its revision."""
        request = proto.PutRequest(key=key, value=value)
        response = await self._call("put", request, retry=False, timeout=timeout)
        return int(response.header.revision)

    async def txn(self, request: Any, *, timeout: float | None = None) -> Any:
        # A read-only transaction could be retried; every txn of ours writes.
        return await self._call("txn", request, retry=False, timeout=timeout)

    async def compact(self, revision: int, *, timeout: float | None = None) -> Any:
        return await self._call(
            "compact", proto.CompactionRequest(revision=revision), retry=True, timeout=timeout
        )

    async def status(self, *, timeout: float | None = None) -> Any:
        return await self._call("status", proto.StatusRequest(), retry=True, timeout=timeout)

    async def grant_lease(self, ttl: int, *, timeout: float | None = None) -> int:
        """A lease of ``ttl`` seconds (for keys that should vanish with their owner)."""
        response = await self._call(
            "lease_grant", proto.LeaseGrantRequest(TTL=ttl), retry=False, timeout=timeout
        )
        if response.error:
            raise storage.StoreError(f"etcd refused a lease: {response.error}")
        return int(response.ID)

    async def keep_alive_once(self, lease: int, *, timeout: float | None = None) -> int:
        """Renew ``lease``; returns its new TTL (0: the lease has expired)."""
        call = self.current.lease_keepalive(timeout=timeout or self.timeout)
        try:
            await call.write(proto.LeaseKeepAliveRequest(ID=lease))
            response = await call.read()
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, self.current.endpoint.url) from None
        finally:
            call.cancel()
        if response is grpc.aio.EOF:
            raise storage.StoreUnavailableError("etcd closed the lease keep-alive stream")
        return int(response.TTL)

    async def revoke_lease(self, lease: int, *, timeout: float | None = None) -> None:
        await self._call(
            "lease_revoke", proto.LeaseRevokeRequest(ID=lease), retry=True, timeout=timeout
        )

    def watch_call(self) -> tuple[Any, str]:
        """A new bidirectional Watch stream on the current endpoint, and that endpoint."""
        channel = self.current
        return channel.watch(), channel.endpoint.url

    def watch_failed(self, endpoint: str) -> None:
        for channel in self._open():
            if channel.endpoint.url == endpoint:
                self._failed(channel)

    async def wait_reachable(self, *, what: str = "etcd", max_delay: float = 10.0) -> Any:
        """Status from the first endpoint that answers, retrying (with a message each
        time) until one does; cancel to give up."""
        delay = 0.5
        while True:
            try:
                return await self.status(timeout=5.0)
            except storage.StoreError as exc:
                urls = ", ".join(e.url for e in self.endpoints)
                log.warning(
                    "waiting for %s at %s: %s; retrying in %.1fs (is etcd running and"
                    " reachable? check --datastore-endpoint and the TLS flags)",
                    what,
                    urls,
                    exc,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)

    async def close(self) -> None:
        channels, self._channels = self._channels, None
        for channel in channels or []:
            await channel.channel.close()
