"""Joining a node to the cluster with a token (like k3s's node token).

The server keeps a join token in ``<data-dir>/token``, shaped
``K10<sha256 of the CA certificate>::<id>.<secret>`` — k3s's shape, whose last part
is an upstream bootstrap token (a ``bootstrap-token-<id>`` Secret in kube-system,
created with the file). More tokens can be made with ``pilothouse token create``
and revoked by deleting their Secret; a data directory from before bootstrap
tokens keeps its ``K10…::server:<secret>`` token working. A new node's agent
fetches the CA from ``/pilothouse/v1/cacerts`` (public), checks it against the
hash in the token — so it cannot be fooled by a server that is not ours — and
then POSTs certificate requests to ``/pilothouse/v1/join`` with the secret part as
its bearer token.
The server signs a client certificate for ``system:node:<name>`` (group
``system:nodes``) and a serving certificate for the agent's port; the node
chooses its keys, the server chooses the names.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from aiohttp import web

from pilothouse.api import errors
from pilothouse.api.validation import names
from pilothouse.apiserver.auth import certs
from pilothouse.apiserver.authn import authenticator as authn
from pilothouse.apiserver.authn import bootstrap

if TYPE_CHECKING:
    from pilothouse.apiserver.registry.store import ResourceStore

CACERTS_PATH = "/pilothouse/v1/cacerts"
JOIN_PATH = "/pilothouse/v1/join"


def ca_hash(ca_pem: bytes) -> str:
    return hashlib.sha256(ca_pem).hexdigest()


async def ensure_token(
    data_dir: Path, pki: certs.PKI, *, secrets: ResourceStore, join_secret: str = ""
) -> str:
    """The server's join token (created on first start, 0600), and its Secret.
    ``join_secret``: the cluster's (a server joining with ``--token``), else kept or new."""
    path = data_dir / "token"
    digest = ca_hash(pki.ca_cert.read_bytes())
    token = ""
    if path.exists():
        found = path.read_text().strip()
        if found.startswith(f"K10{digest}::") and parse_token(found)[1] == (
            join_secret or parse_token(found)[1]
        ):
            token = found
    if not token:
        token = f"K10{digest}::{join_secret or bootstrap.new_token()}"
        path.touch(mode=0o600)
        path.write_text(token + "\n")
    secret_part = parse_token(token)[1]
    if bootstrap.TOKEN_RE.match(secret_part):
        secret = bootstrap.secret_for(
            secret_part,
            description="pilothouse join token (<data-dir>/token)",
            ttl_seconds=None,
            extra_groups=[],
            now=time.time(),
        )
        name = secret["metadata"]["name"]
        if await secrets.current(bootstrap.NAMESPACE, name) is None:
            try:
                await secrets.create(bootstrap.NAMESPACE, secret)
            except errors.StatusError as exc:
                if not errors.is_already_exists(exc):
                    raise
    return token


def parse_token(token: str) -> tuple[str, str]:
    """(CA hash, secret) of a full token; a bare secret gives ("", secret)."""
    if token.startswith("K10") and "::" in token:
        digest, _, secret = token[3:].partition("::")
        return digest, secret.removeprefix("server:")
    return "", token


async def check_server_ca(server: str, ca: bytes) -> None:
    """Refuse to join through ``server`` (``--server``) unless it presents ``ca``, the CA
    of the cluster in this server's datastore: a server URL from another cluster, or a
    datastore that is not that server's, would otherwise split the cluster silently."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # the CA is compared below, byte for byte
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(server.rstrip("/") + CACERTS_PATH, ssl=insecure) as resp,
        ):
            theirs = await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ValueError(f"--server {server}: cannot reach it: {exc}") from None
    if ca_hash(theirs) != ca_hash(ca):
        raise ValueError(
            f"--server {server} presents a CA that is not the cluster's in the datastore: it"
            " serves another cluster, or --datastore-endpoint names another cluster's etcd"
        )


class JoinService:
    def __init__(
        self, *, pki: certs.PKI, token: str, authenticator: authn.RequestAuthenticator
    ) -> None:
        self.pki = pki
        self._secret = parse_token(token)[1]
        self.authenticator = authenticator

    def _accepts(self, given: str) -> bool:
        """The server's own join secret, or any valid bootstrap token."""
        if hmac.compare_digest(given.encode(), self._secret.encode()):
            return True
        if not bootstrap.TOKEN_RE.match(given):
            return False
        user, _ = self.authenticator.authenticate_token(given)
        return user is not None and bootstrap.DEFAULT_GROUP in user.groups

    async def cacerts(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.pki.ca_cert.read_bytes(), content_type="application/x-pem-file"
        )

    async def join(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            raise errors.method_not_allowed("")
        auth = request.headers.get("Authorization", "")
        given = parse_token(auth.removeprefix("Bearer ").strip())[1]
        if not given or not self._accepts(given):
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
