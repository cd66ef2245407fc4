"""A new node obtains its identity with the join token (see ``apiserver/join.py``).

The agent makes its own keys, fetches the cluster CA and checks it against the
hash in the token, asks the server to sign a client and a serving certificate,
and keeps everything under ``<data-dir>/agent/pki`` with a kubeconfig, so
later starts need no token. Runs once at agent start, before anything else.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pilothouse import atomicfile

CACERTS_PATH = "/pilothouse/v1/cacerts"
JOIN_PATH = "/pilothouse/v1/join"


class JoinError(Exception):
    """Joining failed; the message says why and what to do."""


@dataclass(frozen=True)
class Identity:
    kubeconfig: Path
    ca: bytes
    serving_cert: bytes
    serving_key: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _csr(key: ec.EllipticCurvePrivateKey, name: str) -> str:
    req = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return req.public_bytes(serialization.Encoding.PEM).decode()


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomicfile.write(path, data, mode=mode)


def existing(directory: Path) -> Identity | None:
    kubeconfig = directory / "kubeconfig.yaml"
    files = [directory / n for n in ("ca.crt", "serving.crt", "serving.key")]
    if kubeconfig.exists() and all(f.exists() for f in files):
        return Identity(
            kubeconfig, files[0].read_bytes(), files[1].read_bytes(), files[2].read_bytes()
        )
    return None


async def join(
    *,
    server: str,
    token: str,
    node_name: str,
    addresses: list[str],
    hostnames: list[str],
    directory: Path,
) -> Identity:
    """Join (or reuse an earlier join) and return the node's identity."""
    found = existing(directory)
    if found is not None:
        return found
    digest, _, secret = token.removeprefix("K10").partition("::")
    secret = secret.removeprefix("server:")
    if not token.startswith("K10") or not secret:
        raise JoinError(
            "the token is not a pilothouse join token (K10<hash>::<id>.<secret>); "
            "copy it from the server's <data-dir>/token, or make one with "
            "`pilothouse token create` on the server"
        )
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(server.rstrip("/") + CACERTS_PATH, ssl=insecure) as resp:
                ca = await resp.read()
        except aiohttp.ClientError as exc:
            raise JoinError(f"cannot reach {server}: {exc}") from None
        if hashlib.sha256(ca).hexdigest() != digest:
            raise JoinError(
                f"the server at {server} presents a CA that does not match the token: "
                "wrong server, or a token from another cluster"
            )
        verified = ssl.create_default_context(cadata=ca.decode())
        client_key, serving_key = _key(), _key()
        body = {
            "nodeName": node_name,
            "clientCSR": _csr(client_key, f"system:node:{node_name}"),
            "servingCSR": _csr(serving_key, f"system:node:{node_name}"),
            "addresses": addresses,
            "hostnames": hostnames,
        }
        async with session.post(
            server.rstrip("/") + JOIN_PATH,
            data=orjson.dumps(body),
            ssl=verified,
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        ) as resp:
            answer = await resp.read()
            if resp.status != 200:
                raise JoinError(
                    f"the server refused to join this node ({resp.status}): {answer[:300].decode(errors='replace')}"
                )
    data = orjson.loads(answer)
    import base64

    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "pilothouse",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca).decode(),
                },
            }
        ],
        "contexts": [
            {
                "name": "pilothouse",
                "context": {"cluster": "pilothouse", "user": f"system:node:{node_name}"},
            }
        ],
        "current-context": "pilothouse",
        "users": [
            {
                "name": f"system:node:{node_name}",
                "user": {
                    "client-certificate-data": base64.b64encode(
                        data["clientCert"].encode()
                    ).decode(),
                    "client-key-data": base64.b64encode(_pem(client_key)).decode(),
                },
            }
        ],
    }
    _write(directory / "ca.crt", ca, 0o644)
    _write(directory / "serving.crt", data["servingCert"].encode(), 0o644)
    _write(directory / "serving.key", _pem(serving_key))
    _write(directory / "kubeconfig.yaml", yaml.safe_dump(kubeconfig, sort_keys=True).encode())
    found = existing(directory)
    assert found is not None
    return found
