"""Joining a node to the cluster with a token (like k3s's node token).

The server keeps a join token in ``<data-dir>/token``, shaped
``K10<sha256 of the CA certificate>::server:<secret>``. A new node's agent
fetches the CA from ``/pilothouse/v1/cacerts`` (public), checks it against the
hash in the token — so it cannot be fooled by a server that is not ours — and
then POSTs certificate requests to ``/pilothouse/v1/join`` with the secret.
The server signs a client certificate for ``system:node:<name>`` (group
``system:nodes``) and a serving certificate for the agent's port; the node
chooses its keys, the server chooses the names.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from pilothouse.api import errors
from pilothouse.api.validation import names
from pilothouse.apiserver.auth import certs

CACERTS_PATH = "/pilothouse/v1/cacerts"
JOIN_PATH = "/pilothouse/v1/join"


def ca_hash(ca_pem: bytes) -> str:
    return hashlib.sha256(ca_pem).hexdigest()


def ensure_token(data_dir: Path, pki: certs.PKI) -> str:
    """The server's join token (created on first start, 0600)."""
    path = data_dir / "token"
    digest = ca_hash(pki.ca_cert.read_bytes())
    if path.exists():
        token = path.read_text().strip()
        if token.startswith(f"K10{digest}::server:"):
            return token
    token = f"K10{digest}::server:{secrets.token_hex(16)}"
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token


def parse_token(token: str) -> tuple[str, str]:
    """(CA hash, secret) of a full token; a bare secret gives ("", secret)."""
    if token.startswith("K10") and "::server:" in token:
        digest, _, secret = token[3:].partition("::server:")
        return digest, secret
    return "", token


class JoinService:
    def __init__(self, *, pki: certs.PKI, token: str) -> None:
        self.pki = pki
        self._secret = parse_token(token)[1]

    async def cacerts(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.pki.ca_cert.read_bytes(), content_type="application/x-pem-file"
        )

    async def join(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            raise errors.method_not_allowed("")
        auth = request.headers.get("Authorization", "")
        given = auth.removeprefix("Bearer ").strip()
        if not given or not hmac.compare_digest(
            parse_token(given)[1].encode(), self._secret.encode()
        ):
            raise errors.unauthorized()
        try:
            body: dict[str, Any] = orjson.loads(await request.read())
            node = str(body["nodeName"])
            client_csr = str(body["clientCSR"]).encode()
            serving_csr = str(body["servingCSR"]).encode()
            addresses = [str(a) for a in body.get("addresses") or []]
            hostnames = [str(h) for h in body.get("hostnames") or []]
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
            raise errors.bad_request(
                "join request must be JSON with nodeName, clientCSR and servingCSR"
            ) from None
        problems = names.is_dns1123_subdomain(node)
        if problems:
            raise errors.bad_request(f"invalid node name {node!r}: {'; '.join(problems)}")
        try:
            client = certs.sign_csr(
                self.pki,
                client_csr,
                common_name=f"system:node:{node}",
                organizations=["system:nodes"],
                server=False,
            )
            serving = certs.sign_csr(
                self.pki,
                serving_csr,
                common_name=f"system:node:{node}",
                organizations=["system:nodes"],
                server=True,
                hostnames=[node, *hostnames],
                ips=addresses,
            )
        except ValueError as exc:
            raise errors.bad_request(f"cannot sign the request: {exc}") from None
        return web.Response(
            body=orjson.dumps(
                {
                    "ca": self.pki.ca_cert.read_text(),
                    "clientCert": client.decode(),
                    "servingCert": serving.decode(),
                }
            ),
            content_type="application/json",
        )
