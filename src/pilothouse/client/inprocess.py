"""The seam between the REST client and an API server in the same process.

The components inside ``pilothouse server`` (controller manager, scheduler, node
agent) reach the server without a socket: :class:`pilothouse.client.rest.Client`
hands each request to a :class:`Transport` (the server's side is
:mod:`pilothouse.apiserver.inprocess`), which runs it through the server's whole
handler chain — authentication, authorization, flow control, admission, audit,
metrics — and hands back what the handler wrote. Bodies stay bytes both ways: the
server decodes what it is given and encodes what it answers exactly as it does for
a socket, so nothing the caller holds is ever shared with the server (the caller
may keep mutating its object; the answer is a fresh object the caller owns).

One :class:`Transport` serves many concurrent requests, each its own task on the
server's side; :meth:`Transport.open` must be used from the server's event loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

# Errors a transport raises, mapped by the client onto its own TransportError family:
# the server takes no more requests (never sent) or cut an answer off mid-way.
Refused = ConnectionRefusedError
Cut = ConnectionResetError


class Answer(Protocol):
    """The server's answer: status and headers as soon as the handler starts its
    response, then the body as the handler writes it."""

    status: int
    headers: Mapping[str, str]  # case-insensitive, as HTTP's

    async def read(self) -> bytes:
        """The whole body (raises :data:`Cut` when the server ended it early)."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body in the pieces the handler wrote, until it ends (a stream: a watch)."""
        ...


class Transport(Protocol):
    """Sends requests to the server in this process."""

    def open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> contextlib.AbstractAsyncContextManager[Answer]:
        """Start the request; the block gets the answer once its status is known.
        Leaving the block before the body ended cancels the server's handler."""
        ...
