"""ServiceAccount tokens for this node's pods (upstream kubelet's token manager).

A pod whose projected volume has a ``serviceAccountToken`` source gets a token
from the TokenRequest API, bound to the pod (so it stops working when the pod is
gone) and to the audience and lifetime the source asks for. Tokens are kept per
pod, account, audience and lifetime and asked for again, as the kubelet does, once
80 % of their lifetime has passed or a day after they were issued (a little
earlier, by up to ten seconds of jitter, so a node's pods do not all renew at
once). The pod's worker rewrites the volume on each sync pass, so a renewed token
reaches the container within one pass.

Called from pod workers concurrently; a request in flight is not shared, which
at worst costs one extra token for a pod that syncs twice at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pilothouse.api import meta, resources
from pilothouse.client import rest

SERVICE_ACCOUNTS = resources.Resource("", "v1", "ServiceAccount", "serviceaccounts", True)
DEFAULT_EXPIRATION = 3600
MAX_TTL = 24 * 3600.0
MAX_JITTER = 10.0

Obj = dict[str, Any]
Key = tuple[str, str, str, str, int]


@dataclass
class _Held:
    token: str
    expires: float
    seconds: int


class TokenManager:
    def __init__(self, client: rest.Client, *, now: Callable[[], float] = time.time) -> None:
        self.client = client
        self.now = now
        self._held: dict[Key, _Held] = {}

    def _needs_refresh(self, held: _Held) -> bool:
        now = self.now()
        jitter = random.random() * MAX_JITTER
        issued = held.expires - held.seconds
        if now > issued + MAX_TTL - jitter:
            return True
        return now > held.expires - held.seconds * 0.2 - jitter

    async def token(self, pod: Obj, source: Obj) -> str:
        """The token for one ``serviceAccountToken`` projection of ``pod``."""
        md = pod["metadata"]
        spec = pod.get("spec") or {}
        account = spec.get("serviceAccountName") or "default"
        audience = str(source.get("audience") or "")
        seconds = int(source.get("expirationSeconds") or DEFAULT_EXPIRATION)
        key: Key = (md.get("uid", ""), md.get("namespace", ""), account, audience, seconds)
        held = self._held.get(key)
        if held is not None and not self._needs_refresh(held):
            return held.token
        answer = await self.client.request(
            "POST",
            rest.resource_path(SERVICE_ACCOUNTS, md.get("namespace", ""), account, "token"),
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {
                    "audiences": [audience] if audience else [],
                    "expirationSeconds": seconds,
                    "boundObjectRef": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": md.get("name", ""),
                        "uid": md.get("uid", ""),
                    },
                },
            },
        )
        status = answer.get("status") or {}
        expires = meta.parse_time(status.get("expirationTimestamp")) or (self.now() + seconds)
        self._held[key] = _Held(str(status.get("token") or ""), expires, seconds)
        return self._held[key].token

    def forget(self, pod_uid: str) -> None:
        """Drop the tokens of a pod that is gone."""
        for key in [k for k in self._held if k[0] == pod_uid]:
            del self._held[key]
