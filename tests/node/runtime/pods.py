"""Helpers shared by the real-container tests: start a container, wait, talk HTTP, inspect the host."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

from pilothouse.node.runtime import logs, protocol
from pilothouse.node.runtime.crun import CrunRuntime


async def start(
    rt: CrunRuntime,
    sandbox_id: str,
    image: protocol.Image,
    command: tuple[str, ...],
    **fields: object,
) -> str:
    config = protocol.ContainerConfig(
        name=str(fields.pop("name", "c")), image=image, command=command, **fields
    )  # type: ignore[arg-type]
    cid = await rt.create_container(sandbox_id, config)
    await rt.start_container(cid)
    return cid


async def wait_exited(rt: CrunRuntime, cid: str, timeout: float = 10) -> protocol.ContainerStatus:
    deadline = time.monotonic() + timeout
    while True:
        st = await rt.container_status(cid)
        if st.state == "exited" or time.monotonic() > deadline:
            return st
        await asyncio.sleep(0.05)


async def wait_for_log(path: Path, message: bytes, timeout: float = 10) -> None:
    """Wait until the container log at ``path`` holds a line whose message is ``message``."""
    deadline = time.monotonic() + timeout
    while message not in logs.messages(path):
        assert time.monotonic() < deadline, f"{message!r} never reached {path}"
        await asyncio.sleep(0.02)


def http_get(ip: str, port: int, path: str = "/index.html", timeout: float = 5) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((ip, port), timeout=2) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
                chunks = []
                while data := s.recv(65536):
                    chunks.append(data)
                return b"".join(chunks)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def exists(path: str | Path) -> bool:
    return os.path.exists(path)


def read(path: str | Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


async def rules() -> str:
    out = []
    for args in (["iptables-save"], ["nft", "list", "ruleset"]):
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        data, _ = await proc.communicate()
        out.append(data.decode(errors="replace"))
    return "\n".join(out)


async def nft(script: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "nft", "-f", "-", stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate(script.encode())
    assert proc.returncode == 0, err
