"""One identity per controller (upstream's ``--use-service-account-credentials``).

With it, each controller talks to the API as the ServiceAccount ``kube-system/<name>``
— e.g. ``replicaset-controller``, bound by the bootstrap policy to
``system:controller:replicaset-controller`` — so it can do only what that role
allows. The controller manager's own identity (``system:kube-controller-manager``)
is used for the shared informers and to make the accounts and their tokens.

Tokens come from the TokenRequest API, last an hour and are renewed at 80 % of
their life by :meth:`ControllerCredentials.run` (one task for all of them); the
clients read the current token on every request. A client for an account is
built once and shared by the controllers that use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging

from pilothouse.api import errors, resources
from pilothouse.client import rest
from pilothouse.client.clock import DEFAULT as DEFAULT_CLOCK
from pilothouse.client.clock import Clock

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
TOKEN_SECONDS = 3600
RETRY_SECONDS = 5.0
SERVICE_ACCOUNTS = resources.Resource("", "v1", "ServiceAccount", "serviceaccounts", True)


class _Token:
    def __init__(self, name: str) -> None:
        self.name = name
        self.value = ""
        self.renew_at = 0.0

    def __call__(self) -> str:
        return self.value


class ControllerCredentials:
    """Clients acting as controllers' ServiceAccounts, over a root client."""

    def __init__(
        self,
        root: rest.Client,
        *,
        namespace: str = NAMESPACE,
        clock: Clock = DEFAULT_CLOCK,
        token_seconds: int = TOKEN_SECONDS,
    ) -> None:
        self.root = root
        self.namespace = namespace
        self.clock = clock
        self.token_seconds = token_seconds
        self._tokens: dict[str, _Token] = {}
        self._clients: dict[str, rest.Client] = {}
        self._changed = asyncio.Event()

    async def client_for(self, account: str) -> rest.Client:
        """A client acting as ``kube-system/<account>`` (the account is made if missing)."""
        found = self._clients.get(account)
        if found is not None:
            return found
        await self._ensure_account(account)
        token = _Token(account)
        await self._renew(token)
        self._tokens[account] = token
        # Like client-go's AnonymousClientConfig: the token, never the root's certificate.
        config = dataclasses.replace(
            self.root.config,
            cert_data=None,
            key_data=None,
            token=None,
            token_source=token,
            user_agent=f"{self.root.config.user_agent}/{account}",
        )
        client = rest.Client(config)
        self._clients[account] = client
        self._changed.set()
        return client

    async def _ensure_account(self, account: str) -> None:
        try:
            await self.root.get(SERVICE_ACCOUNTS, account, self.namespace)
            return
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise
        try:
            await self.root.create(
                SERVICE_ACCOUNTS,
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}},
                self.namespace,
            )
        except errors.StatusError as exc:
            if not errors.is_already_exists(exc):
                raise

    async def _renew(self, token: _Token) -> None:
        answer = await self.root.request(
            "POST",
            rest.resource_path(SERVICE_ACCOUNTS, self.namespace, token.name, "token"),
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": self.token_seconds},
            },
        )
        token.value = answer["status"]["token"]
        token.renew_at = self.clock.monotonic() + self.token_seconds * 0.8

    async def run(self) -> None:
        """Renew every token before it expires, until cancelled."""
        while True:
            now = self.clock.monotonic()
            for token in list(self._tokens.values()):
                if now < token.renew_at:
                    continue
                try:
                    await self._renew(token)
                except Exception as exc:  # retried: a controller keeps its old token meanwhile
                    log.warning("cannot renew the token of %s: %s", token.name, exc)
                    token.renew_at = now + RETRY_SECONDS
            pending = [t.renew_at for t in self._tokens.values()]
            wait = max(0.5, min(pending) - self.clock.monotonic()) if pending else 3600.0
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(wait, 3600.0))

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        self._tokens.clear()
