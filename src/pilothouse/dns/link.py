"""The cluster DNS address on the node: 10.43.0.10 as a local address, as NodeLocal DNSCache does.

Pods send their queries to the cluster DNS IP; their default route goes through
the node bridge, and because the address is local to the node the kernel
delivers them to the server listening on it — no NAT, no proxy rule. The
address lives on a ``dummy`` interface of its own (``pilothouse-dns``); a kernel
built without dummy interfaces (``CONFIG_DUMMY``) gets it on ``lo`` instead,
labelled ``lo:ph-dns`` so it can be told from addresses others put there.

Set-up is idempotent (an agent killed with -9 left the address behind; the next
one just uses it) and :func:`remove` takes away exactly what :func:`ensure` made.
Both shell out to iproute2's ``ip``, which every node has.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

LINK = "pilothouse-dns"
LOOPBACK_LABEL = "lo:ph-dns"


class LinkError(Exception):
    """``ip`` failed; the message is its own explanation."""


@dataclass(frozen=True)
class Placement:
    """Where the addresses went, so they can be taken away again."""

    device: str  # LINK, or "lo"
    addresses: tuple[str, ...]


async def _ip(*args: str, check: bool = True) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "ip", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    code = proc.returncode or 0
    if check and code != 0:
        raise LinkError(f"ip {' '.join(args)}: {err.decode(errors='replace').strip()}")
    return code, out.decode(errors="replace")


def _prefix(address: str) -> str:
    return f"{address}/{32 if ipaddress.ip_address(address).version == 4 else 128}"


async def ensure(addresses: tuple[str, ...]) -> Placement:
    """Make every address local to this node (idempotent)."""
    code, _ = await _ip("link", "show", "dev", LINK, check=False)
    if code != 0:
        code, _ = await _ip("link", "add", LINK, "type", "dummy", check=False)
    if code == 0:
        await _ip("link", "set", "dev", LINK, "up")
        for a in addresses:
            await _ip("addr", "replace", _prefix(a), "dev", LINK)
        return Placement(LINK, addresses)
    log.info("no dummy interfaces in this kernel; putting %s on lo", ", ".join(addresses))
    for a in addresses:
        label = ("label", LOOPBACK_LABEL) if ipaddress.ip_address(a).version == 4 else ()
        await _ip("addr", "replace", _prefix(a), "dev", "lo", *label)
    return Placement("lo", addresses)


async def remove(placement: Placement) -> None:
    """Take the addresses away again (the interface too, when it was ours)."""
    if placement.device == LINK:
        await _ip("link", "del", "dev", LINK, check=False)
        return
    for a in placement.addresses:
        await _ip("addr", "del", _prefix(a), "dev", "lo", check=False)
