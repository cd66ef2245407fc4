"""The agent's client-side load balancer for the API servers (k3s's agent ``loadbalancer``).

An agent joins through one ``--server`` URL, but a cluster may have several servers
and any may die. As k3s does, the agent talks to the API through a TCP proxy of its
own on ``127.0.0.1`` (TLS passes through untouched: the servers' certificates name
127.0.0.1 and every server's is signed by the cluster CA, so the agent's client
verifies whichever answers). The proxy sends new connections to the *current*
server; when dialling it fails, it tries the others in order and the first that
answers becomes current. A health check dials the current server every
``check_interval`` seconds and, when it misses twice in a row, moves on and closes
the connections still open to it (if there is another server to move to), so the agent's watches reconnect at once instead of
waiting for TCP to notice. Pods never notice: the agent process keeps running, its
informers re-list or resume through the new server.

The server list is the ``default/kubernetes`` Endpoints (every live server, from the
servers' master leases), followed by the agent's ``--server`` as a last resort,
and saved to ``<data-dir>/apiservers.json`` so a restarted agent whose
``--server`` is gone still finds the others.

Concurrency: everything runs on the agent's event loop. Each proxied connection is
two copy tasks (one per direction) owned by the connection's handler; the health
check and the Endpoints watch are supervised children.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp

from pilothouse import supervisor
from pilothouse.api import errors, resources
from pilothouse.client import rest

log = logging.getLogger(__name__)

ENDPOINTS = resources.Resource("", "v1", "Endpoints", "endpoints", True)
DIAL_TIMEOUT = 3.0
CHECK_INTERVAL = 2.0
FAILED_CHECKS = 2  # health checks missed in a row before the server counts as dead
COPY_CHUNK = 64 * 1024


def host_port(url: str) -> str:
    """``https://HOST:PORT`` → ``HOST:PORT`` (443 when the URL has no port)."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{url!r} is not a server URL (https://HOST:PORT)")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or 443}"


def _split(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host.strip("[]"), int(port)


def servers_of(endpoints: dict[str, Any]) -> list[str]:
    """``HOST:PORT`` of each address of the ``kubernetes`` Endpoints (port ``https``)."""
    out: list[str] = []
    for subset in endpoints.get("subsets") or []:
        ports = [p["port"] for p in subset.get("ports") or [] if p.get("name") in ("https", None)]
        for address in subset.get("addresses") or []:
            ip = address["ip"]
            host = f"[{ip}]" if ":" in ip else ip
            out.extend(f"{host}:{port}" for port in ports[:1])
    return out


class LoadBalancer:
    def __init__(
        self,
        default_server: str,
        *,
        state_file: Path | None = None,
        check_interval: float = CHECK_INTERVAL,
        dial_timeout: float = DIAL_TIMEOUT,
        listen_host: str = "127.0.0.1",
    ) -> None:
        self.default = host_port(default_server)
        self.state_file = state_file
        self.check_interval = check_interval
        self.dial_timeout = dial_timeout
        self.listen_host = listen_host
        self.servers: list[str] = [self.default]
        self.current = self.default
        self._server: asyncio.Server | None = None
        self._open: dict[str, set[asyncio.StreamWriter]] = {}
        self.children = supervisor.Supervisor("apiserver-lb")
        self.port = 0
        if state_file is not None:
            with contextlib.suppress(OSError, ValueError, TypeError):
                saved = json.loads(state_file.read_text())
                self.set_servers([str(s) for s in saved["servers"]])

    @property
    def url(self) -> str:
        return f"https://{self.listen_host}:{self.port}"

    # -- the server list -------------------------------------------------------------

    def set_servers(self, servers: list[str]) -> None:
        """The live servers (from the Endpoints); ``--server`` stays as the last resort."""
        wanted = list(dict.fromkeys([*servers, self.default]))
        if wanted == self.servers:
            return
        log.info("API servers: %s (current %s)", ", ".join(wanted), self.current)
        self.servers = wanted
        if self.state_file is not None:
            with contextlib.suppress(OSError):
                self.state_file.write_text(json.dumps({"servers": wanted}))
        if self.current not in wanted:
            self._switch_from(self.current)

    def _switch_from(self, failed: str) -> None:
        """Make the server after ``failed`` current, and drop connections to ``failed``
        — unless there is no other server to go to: then the connections are left to
        end by themselves (a slow server is better than none)."""
        if failed == self.current:
            i = self.servers.index(failed) if failed in self.servers else -1
            following = self.servers[(i + 1) % len(self.servers)]
            if following == failed:
                return
            self.current = following
            log.warning("API server %s is not answering; using %s", failed, self.current)
        for writer in self._open.pop(failed, set()):
            writer.close()

    # -- proxying --------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.listen_host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.children.start("health-check", self._check)

    async def close(self) -> None:
        await self.children.stop()
        if self._server is not None:
            self._server.close()
            for writers in self._open.values():
                for w in writers:
                    w.close()
            self._open.clear()
            await self._server.wait_closed()
            self._server = None

    async def _dial(self, server: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        host, port = _split(server)
        try:
            return await asyncio.wait_for(asyncio.open_connection(host, port), self.dial_timeout)
        except (OSError, TimeoutError):
            return None

    async def _connect(self) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to the current server, or to the next that answers."""
        start = self.current
        order = [start, *(s for s in self.servers if s != start)]
        for server in order:
            dialled = await self._dial(server)
            if dialled is not None:
                if server != self.current:
                    log.warning("API server %s is not answering; using %s", self.current, server)
                    self.current = server
                return server, *dialled
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected = await self._connect()
        if connected is None:
            log.warning("no API server answers (%s)", ", ".join(self.servers))
            writer.close()
            return
        server, upstream_reader, upstream_writer = connected
        tracked = self._open.setdefault(server, set())
        tracked.update((writer, upstream_writer))
        try:
            await _pipe(reader, writer, upstream_reader, upstream_writer)
        finally:
            tracked.discard(writer)
            tracked.discard(upstream_writer)
            for w in (writer, upstream_writer):
                w.close()

    async def _check(self) -> None:
        misses = 0
        while True:
            await asyncio.sleep(self.check_interval)
            server = self.current
            dialled = await self._dial(server)
            if dialled is not None:
                dialled[1].close()
                misses = 0
                continue
            # Two misses in a row: one slow dial on a loaded machine is not a dead server.
            misses += 1
            if misses >= FAILED_CHECKS and server == self.current:
                misses = 0
                self._switch_from(server)

    # -- following the Endpoints ------------------------------------------------------

    def follow(self, client: rest.Client) -> None:
        """Keep the list in step with ``default/kubernetes`` (a supervised watch)."""
        self.children.start("endpoints", lambda: self._follow(client))

    async def _follow(self, client: rest.Client) -> None:
        version = ""
        while True:
            try:
                if not version:
                    found = await client.get(ENDPOINTS, "kubernetes", "default")
                    self._take(found)
                    version = found["metadata"]["resourceVersion"]
                async for event in client.watch(
                    ENDPOINTS,
                    "default",
                    resource_version=version,
                    field_selector="metadata.name=kubernetes",
                    timeout_seconds=300,
                ):
                    if event["type"] == "ERROR":
                        version = ""
                        break
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._take(event["object"])
                    version = event["object"]["metadata"].get("resourceVersion") or version
            except errors.StatusError as exc:
                if not errors.is_not_found(exc):
                    log.info("following the kubernetes Endpoints: %s", exc.message)
                version = ""
                await asyncio.sleep(self.check_interval)
            except (rest.TransportError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                # The server went away mid-watch: the proxy has moved on; follow again.
                log.info("following the kubernetes Endpoints: %r; again shortly", exc)
                await asyncio.sleep(self.check_interval)

    def _take(self, endpoints: dict[str, Any]) -> None:
        servers = servers_of(endpoints)
        if servers:  # none listed (loopback servers, a moment between leases): keep ours
            self.set_servers(servers)


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    """Copy both ways until either side closes; then both close."""

    async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(COPY_CHUNK):
                dst.write(data)
                await dst.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                if dst.can_write_eof():
                    dst.write_eof()

    tasks = [
        asyncio.ensure_future(copy(reader, upstream_writer)),
        asyncio.ensure_future(copy(upstream_reader, writer)),
    ]
    try:
        # The first direction to end (a reset, or the server closing) ends the
        # connection: half-open TLS is of no use to anyone.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
