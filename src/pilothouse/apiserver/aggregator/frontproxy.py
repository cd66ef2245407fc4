"""The front-proxy certificates and the ConfigMap extension API servers read them from.

As kubeadm lays them out: a CA of its own (``front-proxy-ca``) that signs one client
certificate (CN ``front-proxy-client``). The aggregator presents that certificate
to extension API servers and names the user of each request in ``X-Remote-User``,
``X-Remote-Group`` and ``X-Remote-Extra-*``; an extension server built on
k8s.io/apiserver trusts those headers only from a client certificate the
``requestheader-client-ca-file`` signed, with a CN in ``requestheader-allowed-names``
— both of which it reads from the ``kube-system/extension-apiserver-authentication``
ConfigMap this module describes.

Certificates are made on first start and kept under ``DATA_DIR/pki/front-proxy/``;
the functions that make them are plain (``new_ca``, ``issue``) so tests can make a
CA and serving certificates of their own the same way.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import pathlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pilothouse.apiserver.auth import keypairs

CLIENT_NAME = "front-proxy-client"
CONFIGMAP = "extension-apiserver-authentication"
USER_HEADER = "X-Remote-User"
GROUP_HEADER = "X-Remote-Group"
EXTRA_PREFIX = "X-Remote-Extra-"
_DAYS = 3650


@dataclass(frozen=True, slots=True)
class KeyPair:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_ca(common_name: str, *, days: int = _DAYS) -> KeyPair:
    """A self-signed CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = keypairs.self_signed_ca(key, _name(common_name), now=now, days=days)
    return KeyPair(cert, key)


def issue(
    ca: KeyPair,
    common_name: str,
    *,
    server: bool,
    hostnames: list[str] | None = None,
    ips: list[str] | None = None,
    days: int = _DAYS,
) -> KeyPair:
    """A leaf certificate from ``ca``: serving (with SANs) or client."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - keypairs.BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    sans: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames or []]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips or []]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return KeyPair(builder.sign(ca.key, hashes.SHA256()), key)


@dataclass(frozen=True, slots=True)
class Files:
    ca_cert: pathlib.Path
    client_cert: pathlib.Path
    client_key: pathlib.Path


def _write(path: pathlib.Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def ensure(pki_dir: pathlib.Path) -> Files:
    """The front-proxy CA and client certificate under ``pki_dir/front-proxy``."""
    directory = pki_dir / "front-proxy"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = Files(
        directory / "front-proxy-ca.crt",
        directory / "front-proxy-client.crt",
        directory / "front-proxy-client.key",
    )
    if files.ca_cert.exists() and files.client_cert.exists() and files.client_key.exists():
        return files
    ca = new_ca("front-proxy-ca")
    client = issue(ca, CLIENT_NAME, server=False)
    _write(files.ca_cert, ca.cert_pem, 0o644)
    _write(files.client_key, client.key_pem, 0o600)
    _write(files.client_cert, client.cert_pem, 0o644)
    # The CA key is not kept: nothing else is ever signed with it.
    return files


def authentication_configmap(*, client_ca: bytes, front_proxy_ca: bytes) -> dict[str, object]:
    """``kube-system/extension-apiserver-authentication`` as kube-apiserver writes it."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP, "namespace": "kube-system"},
        "data": {
            "client-ca-file": client_ca.decode(),
            "requestheader-allowed-names": json.dumps([CLIENT_NAME]),
            "requestheader-client-ca-file": front_proxy_ca.decode(),
            "requestheader-extra-headers-prefix": json.dumps([EXTRA_PREFIX]),
            "requestheader-group-headers": json.dumps([GROUP_HEADER]),
            "requestheader-uid-headers": json.dumps([]),
            "requestheader-username-headers": json.dumps([USER_HEADER]),
        },
    }
