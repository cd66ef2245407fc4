"""The API server's end of one streaming session with a node agent.

One WebSocket per exec/attach session or forwarded connection, over the
mutual-TLS client the API server already uses for logs; framing and the
agent's first message are described in :mod:`pilothouse.api.remotecommand`.
"""

from __future__ import annotations

import json

import aiohttp

from pilothouse.api import remotecommand as rc
from pilothouse.api.meta import Obj
from pilothouse.apiserver.handlers.nodeproxy import NodeProxy


class AgentUnavailable(Exception):
    """The agent could not be reached (the words upstream uses for a kubelet it cannot dial)."""


class AgentLink:
    """A streaming session on a node agent."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    @classmethod
    async def open(
        cls, proxy: NodeProxy, pod: Obj, path: str, params: list[tuple[str, str]]
    ) -> AgentLink:
        """Connect to ``path`` on the agent of ``pod`` (Status errors when the pod has no node)."""
        url = f"{await proxy.agent_url(pod)}{path}"
        try:
            ws = await proxy.session().ws_connect(
                url,
                params=params,
                protocols=(rc.V5,),
                compress=0,
                max_msg_size=16 << 20,
                timeout=aiohttp.ClientWSTimeout(ws_close=10),
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise AgentUnavailable(f"error dialing backend: {exc}") from None
        return cls(ws)

    async def started(self) -> bytes | None:
        """None when the session is up; otherwise the agent's first message (why it is not)."""
        first = await self.receive()
        if first is None:
            return rc.frame(rc.ERROR, rc.encode_status(rc.internal_error("the node agent hung up")))
        if first == rc.frame(rc.STARTED):
            return None
        return first

    async def receive(self) -> bytes | None:
        """The next message; None once the agent closed the session."""
        while True:
            msg = await self.ws.receive()
            if msg.type == aiohttp.WSMsgType.BINARY:
                if msg.data:
                    data: bytes = msg.data
                    return data
                continue
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                continue
            return None

    async def send(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        await self.ws.close()


def status_of(message: bytes) -> rc.Status:
    """The Status an error-channel message from the agent carries."""
    try:
        status = json.loads(message[1:])
    except ValueError:
        status = None
    if not isinstance(status, dict):
        return rc.internal_error(f"unexpected answer from the node agent: {message[:200]!r}")
    return status


def is_refusal(status: rc.Status) -> bool:
    """A Status without a reason: the agent refused before starting (no pod, no container…),
    which upstream's kubelet answers instead of upgrading the connection."""
    return status.get("status") != "Success" and not status.get("reason")
