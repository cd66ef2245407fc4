"""The cluster's certificates: a CA, the API server's serving certificate, client certificates.

:func:`ensure_pki` runs once at server start. On first start it creates, under
``<data_dir>/pki/``:

* ``ca.crt`` / ``ca.key`` — the cluster CA (ECDSA P-256, 10 years, CN ``pilothouse-ca``);
* ``server.crt`` / ``server.key`` — the serving certificate, for every name and
  address a client may dial (localhost, the host name, ``kubernetes.default.svc…``,
  the ``kubernetes`` Service IP 10.43.0.1, and whatever the caller adds);
* ``admin.crt`` / ``admin.key`` — a client certificate for CN ``admin`` in group
  ``system:masters``, which :func:`.kubeconfig.write_kubeconfig` embeds for the user.

Later starts reuse them. A leaf certificate is issued again only when it is
missing, unreadable, not from this CA, not for its key, near its end (90 days,
as k3s renews), or — for the serving certificate — lacks a requested name or
address. A new CA (when its files are lost) reissues everything, so kubeconfigs
written before stop working: rewrite the kubeconfig on every start.

ECDSA keeps this fast: creating everything takes a few milliseconds, and reusing
it costs a few certificate parses and one signature check each.

Client identity follows upstream's x509 authenticator: the subject's common
name is the user, its organizations are the groups (:func:`identity_from_peercert`).

Everything here is synchronous file I/O meant for start-up (before the server
accepts connections, or through ``asyncio.to_thread``). Private keys are written
with mode 0600, atomically (temporary file, then rename). Building, signing and
storing one certificate is :mod:`pilothouse.apiserver.auth.keypairs`; the admin's
kubeconfig is :mod:`pilothouse.apiserver.auth.kubeconfig`.
"""

from __future__ import annotations

import datetime
import ipaddress
import pathlib
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import exceptions, x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pilothouse import atomicfile
from pilothouse.apiserver.auth import keypairs

CA_COMMON_NAME = "pilothouse-ca"
GO_TLS12_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA", "AES256-SHA",
))  # fmt: skip
SERVER_COMMON_NAME = "pilothouse-apiserver"
ADMIN_USER = "admin"
ADMIN_GROUP = "system:masters"

# The ClusterIP of the `kubernetes` Service: the first address of 10.43.0.0/16.
KUBERNETES_SERVICE_IP = "10.43.0.1"
CLUSTER_DOMAIN = "cluster.local"

CA_DAYS = 3650
LEAF_DAYS = 365
RENEW_BEFORE = datetime.timedelta(days=90)

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# OpenSSL's X509_V_FLAG_NO_CHECK_TIME (see ssl_server_context).
_NO_CHECK_TIME = 0x200000


@dataclass(frozen=True, slots=True)
class PKI:
    """Where the cluster's certificates and keys are, and the TLS contexts built from them."""

    directory: pathlib.Path
    ca_cert: pathlib.Path
    ca_key: pathlib.Path
    server_cert: pathlib.Path
    server_key: pathlib.Path
    admin_cert: pathlib.Path
    admin_key: pathlib.Path

    @classmethod
    def at(cls, directory: pathlib.Path) -> PKI:
        """The file layout under ``directory`` (nothing is read or created)."""
        return cls(
            directory=directory,
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            server_cert=directory / "server.crt",
            server_key=directory / "server.key",
            admin_cert=directory / "admin.crt",
            admin_key=directory / "admin.key",
        )

    def ssl_server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        """A TLS 1.2+ server context serving ``server.crt`` and trusting the CA for clients.

        Without ``require_client_cert`` the server *asks* for a client certificate
        but lets a client without one connect (``CERT_OPTIONAL``), as
        kube-apiserver does: ``/healthz``, ``/livez``, ``/readyz`` and ``/version``
        are answered to anonymous clients, and token-bearing clients need no
        certificate; the server then authorizes each request by the identity it
        found. Unlike kube-apiserver, a client that presents a certificate this
        CA did not sign fails the TLS handshake rather than getting a 401
        (Python's ssl module offers no verify callback to defer the check). The
        validity period is left to the x509 authenticator (OpenSSL's
        ``X509_V_FLAG_NO_CHECK_TIME``), so an expired certificate is a 401 as upstream.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # Go's TLS 1.2 suites, and security level 0 for one reason: a TLS 1.2 client that
        # sends no signature_algorithms (busybox's wget, the usual "is the API up?" probe
        # in a pod) gets the SHA-1 handshake signature Go's server gives it; OpenSSL 3
        # refuses that at any higher level ("no shared cipher"). Clients that list
        # algorithms still get SHA-256 or better; TLS 1.3 is unaffected.
        context.set_ciphers(GO_TLS12_CIPHERS + ":@SECLEVEL=0")
        context.load_cert_chain(self.server_cert, self.server_key)
        context.load_verify_locations(cafile=self.ca_cert)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
        context.verify_flags |= _NO_CHECK_TIME
        # aiohttp speaks HTTP/1.1 only; saying so keeps Go clients from trying h2.
        context.set_alpn_protocols(["http/1.1"])
        return context

    def ssl_client_context(
        self, cert: pathlib.Path | None = None, key: pathlib.Path | None = None
    ) -> ssl.SSLContext:
        """A TLS 1.2+ client context trusting the CA, presenting ``cert``/``key`` if given."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_cert))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert is not None:
            context.load_cert_chain(cert, key)
        return context


# --- creating and reusing -------------------------------------------------


def ensure_pki(
    data_dir: pathlib.Path, *, hostnames: Iterable[str] = (), ips: Iterable[str] = ()
) -> PKI:
    """Create the cluster's certificates on first start, reuse (or renew) them later.

    ``hostnames`` and ``ips`` are added to the serving certificate's names;
    an IP that does not parse raises ``ValueError``.
    """
    pki = PKI.at(data_dir / "pki")
    pki.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = _now()
    dns_names, addresses = _serving_names(hostnames, ips)

    ca = keypairs.load_pair(pki.ca_cert, pki.ca_key)
    if ca is None or ca[0].not_valid_after_utc - now < RENEW_BEFORE:
        ca = _create_ca(pki, now)
        reissue = True
    else:
        reissue = False
    ca_cert, ca_key = ca

    server = None if reissue else _load_leaf(pki.server_cert, pki.server_key, ca_cert, now)
    if server is None or not _covers(server, dns_names, addresses):
        _issue(
            pki.server_cert,
            pki.server_key,
            ca_cert,
            ca_key,
            now=now,
            subject=keypairs.name(SERVER_COMMON_NAME, []),
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            sans=[*map(x509.DNSName, dns_names), *map(x509.IPAddress, addresses)],
        )
    admin = None if reissue else _load_leaf(pki.admin_cert, pki.admin_key, ca_cert, now)
    if admin is None:
        _issue(
            pki.admin_cert,
            pki.admin_key,
            ca_cert,
            ca_key,
            now=now,
            subject=keypairs.name(ADMIN_USER, [ADMIN_GROUP]),
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        )
    return pki


def issue_client_cert(
    pki: PKI, *, common_name: str, organizations: list[str], days: int = LEAF_DAYS
) -> tuple[bytes, bytes]:
    """A new client certificate from the cluster CA: ``(cert PEM, key PEM)``.

    The CN becomes the user name and each organization a group (e.g. a node
    agent: ``system:node:<name>`` in ``system:nodes``). X.509 bounds a CN to
    1 to 64 characters; outside that this raises ``ValueError``.
    """
    ca_cert, ca_key = keypairs.read_pair(pki.ca_cert, pki.ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = keypairs.sign(
        key.public_key(),
        ca_cert,
        ca_key,
        now=_now(),
        days=days,
        subject=keypairs.name(common_name, organizations),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    return cert.public_bytes(serialization.Encoding.PEM), keypairs.key_pem(key)


def issue_serving_cert(
    pki: PKI, *, common_name: str, hostnames: list[str], ips: list[str], days: int = LEAF_DAYS
) -> tuple[bytes, bytes]:
    """A serving certificate from the cluster CA for a node agent: ``(cert PEM, key PEM)``."""
    ca_cert, ca_key = keypairs.read_pair(pki.ca_cert, pki.ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    return _sign_public(
        pki,
        key.public_key(),
        ca_cert,
        ca_key,
        common_name=common_name,
        organizations=[],
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        hostnames=hostnames,
        ips=ips,
        days=days,
    ), keypairs.key_pem(key)


def sign_csr(
    pki: PKI,
    csr_pem: bytes,
    *,
    common_name: str,
    organizations: list[str],
    server: bool,
    hostnames: Sequence[str] = (),
    ips: Sequence[str] = (),
    days: int = LEAF_DAYS,
) -> bytes:
    """Sign a certificate request's public key with the cluster CA.

    The subject and names come from the arguments, never from the request: a
    joining node cannot choose who it is. Raises ValueError for a bad request."""
    csr = x509.load_pem_x509_csr(csr_pem)
    if not csr.is_signature_valid:
        raise ValueError("certificate request signature is invalid")
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise ValueError("certificate request must carry an ECDSA key")
    ca_cert, ca_key = keypairs.read_pair(pki.ca_cert, pki.ca_key)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    return _sign_public(
        pki,
        public,
        ca_cert,
        ca_key,
        common_name=common_name,
        organizations=organizations,
        usage=usage,
        hostnames=list(hostnames),
        ips=list(ips),
        days=days,
    )


def _sign_public(
    pki: PKI,
    public: ec.EllipticCurvePublicKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    organizations: list[str],
    usage: x509.ObjectIdentifier,
    hostnames: list[str],
    ips: list[str],
    days: int,
) -> bytes:
    sans: list[x509.GeneralName] = [
        x509.DNSName(h) for h in dict.fromkeys(hostnames) if h and h.isascii()
    ]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(ips) if a]
    cert = keypairs.sign(
        public,
        ca_cert,
        ca_key,
        now=_now(),
        days=days,
        subject=keypairs.name(common_name, organizations),
        usage=usage,
        sans=sans or None,
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def ensure_client_pair(
    pki: PKI, name: str, *, common_name: str, organizations: list[str]
) -> tuple[pathlib.Path, pathlib.Path]:
    """A client certificate kept in the PKI directory (``<name>.crt``/``.key``), issued once
    and renewed when near its end or no longer from this CA."""
    cert_path, key_path = pki.directory / f"{name}.crt", pki.directory / f"{name}.key"
    ca_cert, _ = keypairs.read_pair(pki.ca_cert, pki.ca_key)
    if _load_leaf(cert_path, key_path, ca_cert, _now()) is None:
        cert, key = issue_client_cert(pki, common_name=common_name, organizations=organizations)
        atomicfile.write(key_path, key, mode=0o600)
        atomicfile.write(cert_path, cert, mode=0o644)
    return cert_path, key_path


def identity_from_peercert(der: bytes) -> tuple[str, list[str]]:
    """The user and groups a (verified) client certificate names: CN and O, as upstream.

    Raises ``ValueError`` for a certificate without a common name, which
    upstream's authenticator does not accept as a user either.
    """
    subject = x509.load_der_x509_certificate(der).subject
    names = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    # Go keeps the last CN it reads and every O, in order.
    if not names or not names[-1]:
        raise ValueError("client certificate has no common name")
    groups = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return names[-1], groups


# --- pieces ---------------------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _serving_names(
    hostnames: Iterable[str], ips: Iterable[str]
) -> tuple[list[str], list[_IPAddress]]:
    dns = [
        "localhost",
        socket.gethostname(),
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{CLUSTER_DOMAIN}",
        *hostnames,
    ]
    # DNS names in certificates are ASCII; a host name that is not (or is
    # empty) cannot be one, and is dialled by address instead.
    dns_names = list(dict.fromkeys(n.lower() for n in dns if n and n.isascii()))
    addresses = [ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", KUBERNETES_SERVICE_IP, *ips)]
    return dns_names, list(dict.fromkeys(addresses))


def _covers(cert: x509.Certificate, dns_names: list[str], addresses: list[_IPAddress]) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have_dns = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    have_ips = set(san.get_values_for_type(x509.IPAddress))
    return set(dns_names) <= have_dns and set(addresses) <= have_ips


def _create_ca(
    pki: PKI, now: datetime.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = keypairs.self_signed_ca(key, keypairs.name(CA_COMMON_NAME, []), now=now, days=CA_DAYS)
    keypairs.write_pair(pki.ca_cert, pki.ca_key, cert, key)
    return cert, key


def _issue(
    cert_path: pathlib.Path,
    key_path: pathlib.Path,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    now: datetime.datetime,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = keypairs.sign(
        key.public_key(),
        ca_cert,
        ca_key,
        now=now,
        days=LEAF_DAYS,
        subject=subject,
        usage=usage,
        sans=sans,
    )
    keypairs.write_pair(cert_path, key_path, cert, key)


def _load_leaf(
    cert_path: pathlib.Path,
    key_path: pathlib.Path,
    ca_cert: x509.Certificate,
    now: datetime.datetime,
) -> x509.Certificate | None:
    """A reusable leaf certificate: from this CA, for its key, not near its end."""
    pair = keypairs.load_pair(cert_path, key_path)
    if pair is None:
        return None
    cert = pair[0]
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, exceptions.InvalidSignature):
        return None
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return None
    return cert
