"""The words exec, attach and port-forward streams are made of (no I/O).

Shared by the API server, which speaks them to clients, and the node agent,
which speaks them to the API server: channel numbers and sub-protocol names as
apimachinery's ``pkg/util/remotecommand`` and ``pkg/util/portforward`` define
them, and the ``metav1.Status`` objects that end a command on the error channel.

The agent link is one WebSocket per exec/attach session or per forwarded
connection, framed as ``v5.channel.k8s.io``: binary messages whose first byte
names the channel (:data:`STDIN` … :data:`RESIZE`, :data:`CLOSE` + channel to
half-close). The agent's first message is either :data:`STARTED` alone (the
process runs / the port is connected) or the failure that prevented it: a
Status on :data:`ERROR` for exec and attach, text on :data:`PF_ERROR` for
port-forward. A command ends with one Status on :data:`ERROR`, then the agent
closes the socket.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255  # v5: [255, channel] half-closes a channel
STARTED = 254  # agent link only: the process or connection is up

# port-forward channels on the agent link (the legacy WebSocket protocol uses 2n, 2n+1)
PF_DATA, PF_ERROR = 0, 1

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
V1_BASE64 = "base64.channel.k8s.io"
PORT_FORWARD_V1 = "portforward.k8s.io"
SPDY_31 = "SPDY/3.1"
TUNNELING_PREFIX = "SPDY/3.1+"  # kubectl port-forward over WebSocket: SPDY inside

NON_ZERO_EXIT = "NonZeroExitCode"
EXIT_CODE_CAUSE = "ExitCode"
INTERNAL_ERROR = "InternalError"

# SPDY stream headers (lower-cased on the wire) and their values
STREAM_TYPE = "streamType"
PORT = "port"
REQUEST_ID = "requestID"
TYPE_ERROR, TYPE_DATA = "error", "data"
TYPE_STDIN, TYPE_STDOUT, TYPE_STDERR, TYPE_RESIZE = "stdin", "stdout", "stderr", "resize"
STREAM_CHANNELS = {
    TYPE_STDIN: STDIN,
    TYPE_STDOUT: STDOUT,
    TYPE_STDERR: STDERR,
    TYPE_ERROR: ERROR,
    TYPE_RESIZE: RESIZE,
}

Status = dict[str, Any]


def success() -> Status:
    return {"metadata": {}, "status": "Success"}


def exit_status(code: int, command: list[str]) -> Status:
    """A command that ran and exited non-zero, as the kubelet words it."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            "command terminated with non-zero exit code: "
            f"error executing command {_go_list(command)}, exit code {code}"
        ),
        "reason": NON_ZERO_EXIT,
        "details": {"causes": [{"reason": EXIT_CODE_CAUSE, "message": str(code)}]},
    }


def internal_error(message: str) -> Status:
    """``apierrors.NewInternalError``: what a failed stream reports."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": INTERNAL_ERROR,
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


def failure(message: str, *, code: int = 500) -> Status:
    """A plain failure (the agent could not start the session: no such pod, container…)."""
    return {"metadata": {}, "status": "Failure", "message": message, "code": code}


def exit_code(status: Status) -> int | None:
    """The exit code a Status carries: 0 for Success, None when it is another failure."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") != NON_ZERO_EXIT:
        return None
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == EXIT_CODE_CAUSE:
            try:
                return int(cause.get("message", ""))
            except ValueError:
                return None
    return None


def encode_status(status: Status) -> bytes:
    return json.dumps(status, separators=(",", ":")).encode()


def frame(channel: int, data: bytes = b"") -> bytes:
    return bytes((channel,)) + data


def close_frame(channel: int) -> bytes:
    return bytes((CLOSE, channel))


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def parse_bool(value: str | None) -> bool:
    """Query flags: kubectl sends ``true``, the API server sends the agent ``1``."""
    return (value or "").lower() in ("1", "true")


class ResizeDecoder:
    """Terminal sizes from a resize channel: JSON objects, possibly split or run together."""

    def __init__(self) -> None:
        self._buffer = ""
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        """The (width, height) pairs completed by ``data``."""
        self._buffer += data.decode(errors="replace")
        sizes: list[tuple[int, int]] = []
        while True:
            text = self._buffer.lstrip()
            if not text:
                self._buffer = ""
                return sizes
            try:
                obj, end = self._decoder.raw_decode(text)
            except ValueError:
                self._buffer = text
                if len(text) > 4096:  # garbage, not a size being split
                    self._buffer = ""
                return sizes
            self._buffer = text[end:]
            if isinstance(obj, dict):
                with contextlib.suppress(TypeError, ValueError):
                    sizes.append((int(obj.get("Width", 0)), int(obj.get("Height", 0))))
