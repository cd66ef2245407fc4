"""The proxy's one seam to the machine: nftables transactions, conntrack, sysctls,
and whether a port is already taken on this node.

:class:`Kernel` is the protocol; :class:`NftKernel` is the real one (``nft -f -``
for a transaction, the ``conntrack`` tool for stale UDP flows, ``/proc`` for
sysctls and listening sockets, all in the network namespace this process runs
in); :class:`pilothouse.proxy.fake.FakeKernel` is the one tests and benchmarks
use without root.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

PROC_NET = Path("/proc/net")
PROC_SYS = Path("/proc/sys")
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp
_UDP_BOUND = "07"  # TCP_CLOSE: an unconnected, bound UDP socket
_V4_MAPPED = "0000000000000000FFFF0000"


class NftError(Exception):
    """``nft`` refused a transaction; nothing of it was applied."""


class Kernel(Protocol):
    @property
    def sctp(self) -> bool:
        """Whether the kernel tracks (and so can NAT) SCTP connections."""
        ...

    async def apply(self, script: str) -> None:
        """Run ``script`` as one nftables transaction; raise NftError if refused."""
        ...

    async def delete_conntrack(self, args: list[str]) -> None:
        """Delete the conntrack entries ``conntrack -D ARGS`` selects (best effort)."""
        ...

    def port_in_use(self, protocol: str, port: int, addresses: Iterable[str]) -> bool:
        """Whether a socket of this host already holds ``port`` on one of ``addresses``."""
        ...

    def enable_route_localnet(self) -> None:
        """Let DNAT turn 127.0.0.1 into a pod address (localhost NodePorts)."""
        ...


class NftKernel:
    """The real thing, in this process's network namespace (``prefix``, such as
    ``("ip", "netns", "exec", "NAME")``, runs ``nft`` and ``conntrack`` elsewhere;
    the ``/proc`` reads stay in this process's namespace)."""

    def __init__(
        self,
        *,
        nft: str = "nft",
        conntrack: str = "conntrack",
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.nft = shutil.which(nft) or nft
        self.conntrack = shutil.which(conntrack)
        self.prefix = prefix
        self._warned_conntrack = False

    @property
    def sctp(self) -> bool:
        return (PROC_SYS / "net/netfilter/nf_conntrack_sctp_timeout_established").exists()

    async def apply(self, script: str) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.prefix, self.nft, "-f", "-",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise NftError(
                "nft not found: apt-get install nftables, or run `make install`"
            ) from exc
        _, err = await proc.communicate(script.encode())
        if proc.returncode != 0:
            raise NftError(err.decode(errors="replace").strip() or f"nft exit {proc.returncode}")

    async def delete_conntrack(self, args: list[str]) -> None:
        if self.conntrack is None:
            if not self._warned_conntrack:
                self._warned_conntrack = True
                log.warning(
                    "conntrack not found: UDP flows to removed endpoints linger until they time "
                    "out (apt-get install conntrack, or run `make install`)"
                )
            return
        proc = await asyncio.create_subprocess_exec(
            *self.prefix, self.conntrack, "-D", *args,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await proc.wait()  # exit 1 means "nothing matched": fine

    def port_in_use(self, protocol: str, port: int, addresses: Iterable[str]) -> bool:
        proto = protocol.lower()
        if proto not in ("tcp", "udp"):
            return False
        wanted = {_hex_address(a) for a in addresses} | {"00000000"}
        state = _LISTEN if proto == "tcp" else _UDP_BOUND
        for name in (proto, f"{proto}6"):
            try:
                lines = (PROC_NET / name).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                cols = line.split()
                if len(cols) < 4 or cols[3] != state:
                    continue
                address, _, hexport = cols[1].partition(":")
                if int(hexport, 16) != port:
                    continue
                if name.endswith("6"):
                    # ::, or an IPv4-mapped address (::ffff:a.b.c.d) we may also hold.
                    mapped = address[:24] == _V4_MAPPED and address[-8:] in wanted
                    if address == "0" * 32 or mapped:
                        return True
                elif address in wanted:
                    return True
        return False

    def enable_route_localnet(self) -> None:
        path = PROC_SYS / "net/ipv4/conf/all/route_localnet"
        try:
            if path.read_text().strip() != "1":
                path.write_text("1")
        except OSError as exc:
            log.warning("cannot set %s (localhost NodePorts will not work): %s", path, exc)


def _hex_address(ip: str) -> str:
    """An IPv4 address as /proc/net/tcp prints it (little-endian hex)."""
    try:
        parts = [int(p) for p in ip.split(".")]
    except ValueError:
        return ""
    if len(parts) != 4:
        return ""
    return "".join(f"{p:02X}" for p in reversed(parts))
