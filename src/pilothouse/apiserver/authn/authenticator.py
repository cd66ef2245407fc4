"""The request authenticator: certificate, then bearer token, else anonymous.

Upstream's union with ``FailOnError`` around anonymous: the first authenticator
that recognises the credential decides; a credential nobody accepts (or one that is
recognised and invalid: an expired certificate, a token for a deleted pod) is a
401 ``Unauthorized``; only a request with no credential at all is
``system:anonymous`` (when anonymous access is on). Every other user gets
``system:authenticated``.

Bearer tokens come from ``Authorization: Bearer …`` or, for WebSocket clients that
cannot set headers, the ``base64url.bearer.authorization.k8s.io.<token>``
subprotocol. Requests on the server's private Unix socket (root-only, mode 0600)
without a token are the server's own ``system:apiserver`` in ``system:masters``,
as upstream trusts its loopback client; with a token they are whoever the token
names — that is how the components inside ``pilothouse server`` each act with an
identity of their own. Their requests served in process, without the socket
(:mod:`pilothouse.apiserver.inprocess`), are private in the same way: their transport
says so with :data:`IN_PROCESS`, which no request from outside can carry.
"""

from __future__ import annotations

import base64
import binascii
import logging
import socket
import time
from collections.abc import Mapping
from typing import Any, Protocol

from pilothouse.api import errors
from pilothouse.apiserver.authn import serviceaccount
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.authn import x509 as x509_module

log = logging.getLogger(__name__)

WEBSOCKET_BEARER_PREFIX = "base64url.bearer.authorization.k8s.io."

# The extra-info key of the transport of a request served in process.
IN_PROCESS = "pilothouse-in-process"


class TokenAuthenticator(Protocol):
    def authenticate(self, token: str, now: float) -> user_module.UserInfo | None:
        """The token's user, None when it is not this authenticator's; may raise
        :class:`serviceaccount.TokenInvalid` for one that is its own and invalid."""
        ...


class StaticTokens:
    """In-memory tokens: the server's components, and tests."""

    def __init__(self, tokens: dict[str, user_module.UserInfo] | None = None) -> None:
        self._tokens = dict(tokens or {})

    def add(self, token: str, user: user_module.UserInfo) -> None:
        self._tokens[token] = user

    def authenticate(self, token: str, now: float) -> user_module.UserInfo | None:
        return self._tokens.get(token)


class TokenFileAdapter:
    """A :class:`tokenfile.TokenFile` as a TokenAuthenticator."""

    def __init__(self, tokens: Any) -> None:
        self._tokens = tokens

    def authenticate(self, token: str, now: float) -> user_module.UserInfo | None:
        found: user_module.UserInfo | None = self._tokens.authenticate(token)
        return found


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The bearer token of a request, from Authorization or the WebSocket subprotocol;
    raises 401 for a subprotocol token that is not valid base64url."""
    auth = headers.get("Authorization", "").strip()
    if auth:
        parts = auth.split(" ", 2)
        if len(parts) >= 2 and parts[0].lower() == "bearer" and parts[1]:
            return parts[1]
    if headers.get("Upgrade", "").lower() == "websocket":
        for proto in headers.get("Sec-WebSocket-Protocol", "").split(","):
            proto = proto.strip()
            if proto.startswith(WEBSOCKET_BEARER_PREFIX):
                encoded = proto[len(WEBSOCKET_BEARER_PREFIX) :]
                try:
                    raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
                    return raw.decode()
                except (binascii.Error, UnicodeDecodeError, ValueError):
                    log.info("invalid base64.bearer.authorization token encoding")
                    raise errors.unauthorized() from None
    return None


class RequestAuthenticator:
    """Decides who a request is from (see the module docstring)."""

    def __init__(
        self,
        *,
        tokens: list[TokenAuthenticator],
        anonymous: bool = True,
        x509: x509_module.X509Authenticator | None = None,
    ) -> None:
        self.x509 = x509 or x509_module.X509Authenticator()
        self.tokens = tokens
        self.anonymous = anonymous

    def authenticate(
        self, *, transport: Any, headers: Mapping[str, str], now: float | None = None
    ) -> user_module.UserInfo:
        now = time.time() if now is None else now
        failure = ""
        if transport is not None and _is_private(transport):
            token = bearer_token(headers)
            if token is None:
                return user_module.APISERVER
            user = self._token(token, now)
            if user is None:
                raise errors.unauthorized()
            return user_module.with_authenticated(user)
        try:
            user = self.x509.authenticate(transport, now)
        except x509_module.InvalidCertificate as exc:
            failure = str(exc)
            user = None
        if user is not None:
            return user_module.with_authenticated(user)
        token = bearer_token(headers)
        if token is not None:
            user = self._token(token, now)
            if user is not None:
                return user_module.with_authenticated(user)
            failure = failure or "invalid bearer token"
        if failure:
            log.info("unable to authenticate the request: %s", failure)
            raise errors.unauthorized()
        if not self.anonymous:
            raise errors.unauthorized()
        return user_module.ANONYMOUS

    def authenticate_token(
        self, token: str, *, now: float | None = None, audiences: tuple[str, ...] | None = None
    ) -> tuple[user_module.UserInfo | None, str]:
        """For TokenReview: (user, error message)."""
        now = time.time() if now is None else now
        for authenticator in self.tokens:
            try:
                if audiences is not None and isinstance(
                    authenticator, serviceaccount.TokenValidator
                ):
                    found = authenticator.authenticate(token, now, audiences=audiences)
                else:
                    found = authenticator.authenticate(token, now)
            except serviceaccount.TokenInvalid as exc:
                return None, f"[invalid bearer token, {exc}]"
            if found is not None:
                return user_module.with_authenticated(found), ""
        return None, "[invalid bearer token, token lookup failed]"

    def _token(self, token: str, now: float) -> user_module.UserInfo | None:
        for authenticator in self.tokens:
            try:
                found = authenticator.authenticate(token, now)
            except serviceaccount.TokenInvalid as exc:
                log.info("invalid bearer token: %s", exc)
                return None
            if found is not None:
                return found
        return None


def _is_private(transport: Any) -> bool:
    """The private Unix socket, or a request from a component in this process."""
    if transport.get_extra_info(IN_PROCESS):
        return True
    sock = transport.get_extra_info("socket")
    return sock is not None and sock.family == socket.AF_UNIX
