"""The WebSocket channel protocols clients use for exec, attach and port-forward.

Every binary message starts with a channel byte; the ``base64`` variants send
text messages whose first character is the channel digit and whose rest is
base64. What differs by version (apimachinery's ``wsstream`` and the kubelet):

* ``v5.channel.k8s.io`` (kubectl 1.30+): ``[255, channel]`` half-closes a channel
  (kubectl closes stdin this way); the error channel carries a Status.
* ``v4.channel.k8s.io`` / ``v4.base64.channel.k8s.io`` (the Python clients): a
  Status on the error channel, no half-close.
* ``channel.k8s.io`` / ``base64.channel.k8s.io`` / none: the error channel
  carries only the failure's message as text.

Like upstream, the server sends an empty message on the lowest channel it
writes as soon as the session is set up.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import WSMsgType, web

from pilothouse.api import errors
from pilothouse.api import remotecommand as rc

EXEC_PROTOCOLS = (rc.V5, rc.V4, rc.V4_BASE64, rc.V1, rc.V1_BASE64, "")
# The legacy port-forward protocol of the kubelet (the Python client's): no v5.
PORT_FORWARD_PROTOCOLS = (rc.V4, rc.V4_BASE64, rc.V1, rc.V1_BASE64, "")
_BASE64 = (rc.V4_BASE64, rc.V1_BASE64)
_STATUS_JSON = (rc.V5, rc.V4, rc.V4_BASE64)


def requested_protocols(request: web.Request) -> list[str]:
    raw = ",".join(request.headers.getall("Sec-WebSocket-Protocol", []))
    return [p.strip() for p in raw.split(",") if p.strip()]


def is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def negotiate(requested: list[str], supported: tuple[str, ...]) -> str:
    """The first protocol the client asked for that we speak (the client's order, as Go's)."""
    for protocol in requested or [""]:
        if protocol in supported:
            return protocol
    raise errors.bad_request(
        f"unable to upgrade: requested protocol(s) are not supported: [{' '.join(requested)}]; "
        f"supports [{' '.join(p for p in supported if p)}]"
    )


class ChannelSocket:
    """The server end of one WebSocket that speaks a channel protocol."""

    def __init__(self, ws: web.WebSocketResponse, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.base64 = protocol in _BASE64
        self.status_json = protocol in _STATUS_JSON
        self.half_close = protocol == rc.V5

    @classmethod
    async def accept(
        cls, request: web.Request, supported: tuple[str, ...] = EXEC_PROTOCOLS
    ) -> ChannelSocket:
        """Upgrade ``request`` (a Status error when no protocol fits, before any upgrade)."""
        protocol = negotiate(requested_protocols(request), supported)
        ws = web.WebSocketResponse(
            protocols=(protocol,) if protocol else (),
            compress=False,
            max_msg_size=16 << 20,
            autoping=True,
        )
        await ws.prepare(request)
        return cls(ws, protocol)

    async def send(self, channel: int, data: bytes) -> None:
        if self.base64:
            await self.ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
        else:
            await self.ws.send_bytes(rc.frame(channel, data))

    async def receive(self) -> tuple[int, bytes] | None:
        """The next (channel, data) from the client; ``(CLOSE, [channel])`` for a v5
        half-close; None once the client hung up."""
        while True:
            msg = await self.ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return None
            if msg.type == WSMsgType.TEXT and msg.data and self.base64:
                text: str = msg.data
                try:
                    return ord(text[0]) - ord("0"), base64.b64decode(text[1:])
                except (binascii.Error, ValueError):
                    continue
            if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT) and msg.data:
                # Upstream reads text messages as bytes too (the Python client sends
                # ``write_stdin("…")`` as text).
                data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                if self.half_close and data[0] == rc.CLOSE:
                    return (rc.CLOSE, data[1:2]) if len(data) == 2 else None
                return data[0], data[1:]

    async def send_status(self, status: rc.Status) -> None:
        """The session's outcome on the error channel, in this protocol's format."""
        if self.status_json:
            await self.send(rc.ERROR, rc.encode_status(status))
        elif status.get("status") != "Success":
            await self.send(rc.ERROR, str(status.get("message", "")).encode())

    async def close(self) -> None:
        await self.ws.close()
