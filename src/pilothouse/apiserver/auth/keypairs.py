"""Certificates and their keys: building X.509 certificates for ECDSA keys, signing them
with a CA, and keeping each certificate/key pair in files.

The building blocks of :mod:`pilothouse.apiserver.auth.certs`, which decides which
certificates the cluster has and when one is issued again; the aggregation layer's
front proxy builds its own CA with :func:`self_signed_ca`. Nothing here knows the
cluster's names or file layout.

Everything here is synchronous and runs at start-up or through ``asyncio.to_thread``;
nothing is shared between calls. Files are written atomically and durably
(:mod:`pilothouse.atomicfile`), private keys with mode 0600.
"""

from __future__ import annotations

import datetime
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pilothouse import atomicfile

# Certificates start an hour in the past so that a peer whose clock runs a
# little behind still accepts them.
BACKDATE = datetime.timedelta(hours=1)


def name(common_name: str, organizations: list[str]) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def self_signed_ca(
    key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    *,
    now: datetime.datetime,
    days: int,
    backdate: datetime.timedelta = BACKDATE,
) -> x509.Certificate:
    """A self-signed CA certificate for ``key`` (certificate and CRL signing)."""
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def sign(
    public: ec.EllipticCurvePublicKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    now: datetime.datetime,
    days: int,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def read_pair(
    cert_path: pathlib.Path, key_path: pathlib.Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} does not hold an ECDSA key")
    return cert, key


def load_pair(
    cert_path: pathlib.Path, key_path: pathlib.Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """A certificate and its key, or None when either is missing, broken or they differ."""
    try:
        cert, key = read_pair(cert_path, key_path)
    except (OSError, ValueError):
        return None
    if cert.public_key() != key.public_key():
        return None
    return cert, key


def write_pair(
    cert_path: pathlib.Path,
    key_path: pathlib.Path,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    # Key first: a crash in between leaves a pair that fails the key check on
    # the next start, and is issued again.
    atomicfile.write(key_path, key_pem(key), mode=0o600)
    atomicfile.write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
