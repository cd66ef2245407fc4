"""The endpoints ``pilothouse secrets-encrypt`` talks to (k3s's ``/v1-k3s/encrypt/*``).

``GET /v1-pilothouse/encrypt/status`` answers the state as JSON; ``PUT
/v1-pilothouse/encrypt/config`` with ``{"enable": true|false}`` or ``{"stage":
"rotate_keys"|"reencrypt_active", "skip": bool}`` runs an operation. Only
cluster administrators (group ``system:masters``) may call them; errors are
Kubernetes Status objects like every other answer of the API server.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from pilothouse.api import errors
from pilothouse.apiserver import app as app_module
from pilothouse.apiserver.encryption import manager

STATUS_PATH = "/v1-pilothouse/encrypt/status"
CONFIG_PATH = "/v1-pilothouse/encrypt/config"
ROTATE_KEYS = "rotate_keys"
REENCRYPT = "reencrypt_active"


class EncryptionAPI:
    """HTTP handlers over one :class:`~pilothouse.apiserver.encryption.manager.Encryption`."""

    def __init__(self, encryption: manager.Encryption) -> None:
        self.encryption = encryption

    def routes(self) -> dict[str, app_module.Handler]:
        return {STATUS_PATH: self.status, CONFIG_PATH: self.config}

    async def status(self, request: web.Request) -> web.StreamResponse:
        _authorize(request, "get")
        if request.method != "GET":
            raise errors.method_not_allowed("")
        return _json(self.encryption.status())

    async def config(self, request: web.Request) -> web.StreamResponse:
        _authorize(request, "update")
        if request.method != "PUT":
            raise errors.method_not_allowed("")
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"the request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        stage, enable = body.get("stage"), body.get("enable")
        try:
            if stage == ROTATE_KEYS:
                message = await self.encryption.rotate_keys()
            elif stage == REENCRYPT:
                message = await self.encryption.reencrypt(skip=bool(body.get("skip")))
            elif stage is not None:
                raise errors.bad_request(
                    f'unknown stage "{stage}" requested; use "{ROTATE_KEYS}" or "{REENCRYPT}"'
                )
            elif isinstance(enable, bool):
                message = await self.encryption.enable(enable)
            else:
                raise errors.bad_request('the request names no operation: send "stage" or "enable"')
        except manager.OperationError as exc:
            raise errors.bad_request(str(exc)) from None
        if body.get("wait"):
            await self.encryption.wait()
        return _json({"message": message, **self.encryption.status()})


def _authorize(request: web.Request, verb: str) -> None:
    user = request.get(app_module.USER_KEY)
    if user is None or "system:masters" not in user.groups:
        name = user.name if user is not None else "system:anonymous"
        raise errors.StatusError(
            403, errors.FORBIDDEN, f'forbidden: User "{name}" cannot {verb} path "{request.path}"'
        )


def _json(body: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")
