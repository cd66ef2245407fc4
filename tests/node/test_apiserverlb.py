"""The agent's API server load balancer: new connections go to a live server, connections
to a server that stopped answering are closed, the list follows the Endpoints."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from pilothouse.node import apiserverlb


class Upstream:
    """A server that greets each connection with its name, then echoes lines."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> Upstream:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(f"{self.name}\n".encode())
            with contextlib.suppress(ConnectionError):
                while line := await reader.readline():
                    writer.write(line)
                    await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def stop_listening(self) -> None:
        """The server stops answering; connections already open stay (a host that is
        gone answers nothing, it does not reset them either)."""
        assert self.server is not None
        self.server.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def balancer(default: Upstream, **kw: object) -> AsyncIterator[apiserverlb.LoadBalancer]:
    lb = apiserverlb.LoadBalancer(f"https://{default.address}", **kw)  # type: ignore[arg-type]
    await lb.start()
    try:
        yield lb
    finally:
        await lb.close()


async def greet(
    lb: apiserverlb.LoadBalancer,
) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", lb.port)
    return (await asyncio.wait_for(reader.readline(), 5)).decode().strip(), reader, writer


async def test_new_connections_fail_over_to_a_live_server() -> None:
    a, b = await Upstream("a").start(), await Upstream("b").start()
    async with balancer(a, check_interval=60) as lb:
        lb.set_servers([a.address, b.address])
        name, _, w = await greet(lb)
        assert name == "a"
        w.close()
        a.stop_listening()
        name, _, w = await greet(lb)
        assert name == "b"
        assert lb.current == b.address
        w.close()
    b.stop_listening()


async def test_connections_to_a_server_that_stopped_answering_are_closed() -> None:
    a, b = await Upstream("a").start(), await Upstream("b").start()
    async with balancer(a, check_interval=0.1) as lb:
        lb.set_servers([a.address, b.address])
        name, reader, writer = await greet(lb)
        assert name == "a"
        writer.write(b"ping\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"ping\n"
        a.stop_listening()
        # The health check notices and closes the connection: the client sees EOF
        # (and reconnects), instead of waiting on a server that will never answer.
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert lb.current == b.address
        name, _, w = await greet(lb)
        assert name == "b"
        w.close()
    b.stop_listening()


async def test_no_server_answers_closes_the_connection() -> None:
    a = await Upstream("a").start()
    a.stop_listening()
    async with balancer(a, check_interval=60, dial_timeout=1) as lb:
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


def test_the_list_comes_from_the_endpoints_and_is_kept(tmp_path: Path) -> None:
    endpoints = {
        "subsets": [
            {
                "addresses": [{"ip": "10.99.0.2"}, {"ip": "10.99.0.3"}],
                "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
            }
        ]
    }
    assert apiserverlb.servers_of(endpoints) == ["10.99.0.2:6443", "10.99.0.3:6443"]
    state = tmp_path / "apiservers.json"
    lb = apiserverlb.LoadBalancer("https://10.99.0.9:6443", state_file=state)
    lb.set_servers(apiserverlb.servers_of(endpoints))
    # --server stays last, as the last resort.
    assert lb.servers == ["10.99.0.2:6443", "10.99.0.3:6443", "10.99.0.9:6443"]
    again = apiserverlb.LoadBalancer("https://10.99.0.9:6443", state_file=state)
    assert again.servers == lb.servers  # a restarted agent whose --server is gone
    lb.set_servers(["10.99.0.3:6443"])
    assert lb.servers == ["10.99.0.3:6443", "10.99.0.9:6443"]
    assert apiserverlb.host_port("https://[fd00::1]:6443") == "[fd00::1]:6443"


async def test_with_nowhere_to_go_connections_are_left_open() -> None:
    a = await Upstream("a").start()
    async with balancer(a, check_interval=0.05) as lb:
        name, reader, writer = await greet(lb)
        assert name == "a"
        a.stop_listening()  # unanswered checks, but no other server: keep what works
        await asyncio.sleep(0.5)
        writer.write(b"still\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"still\n"
        writer.close()
