"""Delete expired bootstrap tokens (upstream's tokencleaner controller).

A ``bootstrap.kubernetes.io/token`` Secret in kube-system whose ``expiration`` has
passed is deleted; the authenticator already refuses it, this only tidies up.
Each Secret is looked at again when it would expire.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import time
from typing import Any

from pilothouse.api import errors
from pilothouse.client import lister, rest
from pilothouse.controllers import base

Obj = dict[str, Any]
NAMESPACE = "kube-system"
TOKEN_TYPE = "bootstrap.kubernetes.io/token"


def expiration(secret: Obj) -> float | None:
    raw = (secret.get("data") or {}).get("expiration")
    if not isinstance(raw, str):
        return None
    try:
        text = base64.b64decode(raw).decode()
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


class TokenCleanerController(base.Controller):
    name = "tokencleaner"
    workers = 1

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.resource = ctx.resource("", "v1", "secrets")
        self.secrets = ctx.informers.informer(
            self.resource, namespace=NAMESPACE, field_selector=f"type={TOKEN_TYPE}"
        )
        self.secrets.add_handlers(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))

    async def wait_ready(self) -> None:
        await self.secrets.wait_synced()

    async def sync(self, key: str) -> None:
        secret = self.secrets.indexer.get(key)
        if secret is None:
            return
        when = expiration(secret)
        if when is None:
            return
        left = when - time.time()
        if left > 0:
            self.queue.add_after(key, left + 1)
            return
        namespace, name = lister.split_key(key)
        try:
            await self.client.delete(
                self.resource, name, namespace, uid=secret["metadata"].get("uid", "")
            )
        except errors.StatusError as exc:
            if not (errors.is_not_found(exc) or errors.is_conflict(exc)):
                raise
