"""Issue certificates for approved CertificateSigningRequests (upstream's csrsigning).

Certificates are signed by the cluster CA (``--cluster-signing-cert-file`` /
``--cluster-signing-key-file``; inside ``pilothouse server`` the server's own CA),
carry the request's subject and names, the usages the request lists, and last the
request's ``expirationSeconds`` (at least ten minutes) or a year, never past the
CA — backdated five minutes, as upstream does, for peers whose clocks lag.
"""

from __future__ import annotations

import base64
import datetime
import logging
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pilothouse.api import errors, meta
from pilothouse.api.validation import certificates as csr_validation
from pilothouse.client import rest
from pilothouse.controllers import base

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CLIENT = "kubernetes.io/kube-apiserver-client"
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
SIGNERS = (CLIENT, KUBELET_CLIENT, KUBELET_SERVING)
DEFAULT_DURATION = datetime.timedelta(days=365)
MIN_DURATION = datetime.timedelta(minutes=10)
BACKDATE = datetime.timedelta(minutes=5)

_EXT_USAGES = {
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "s/mime": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
}
_KEY_USAGES = {
    "signing": "digital_signature",
    "digital signature": "digital_signature",
    "content commitment": "content_commitment",
    "key encipherment": "key_encipherment",
    "key agreement": "key_agreement",
    "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign",
    "crl sign": "crl_sign",
    "encipher only": "encipher_only",
    "decipher only": "decipher_only",
}


def is_approved(csr: Obj) -> bool:
    return _has_condition(csr, "Approved") and not _has_condition(csr, "Denied")


def _has_condition(csr: Obj, kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status", "True") == "True"
        for c in (csr.get("status") or {}).get("conditions") or []
    )


def check_signer_rules(
    signer: str, request: x509.CertificateSigningRequest, usages: list[str]
) -> str:
    """What the signer will not sign, or "" (upstream's per-signer validators)."""
    names = _subject_names(request)
    if signer == CLIENT:
        allowed = {"digital signature", "key encipherment", "client auth"}
        bad = [u for u in usages if u not in allowed]
        if bad or "client auth" not in usages:
            return (
                f"invalid usage for client certificate: {', '.join(bad) or 'client auth missing'}"
            )
        return ""
    organizations = [
        str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    ]
    common = [str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if organizations != ["system:nodes"]:
        return "subject organization is not system:nodes"
    if not common or not common[0].startswith("system:node:"):
        return 'subject common name does not begin with "system:node:"'
    if signer == KUBELET_CLIENT:
        if names:
            return "subjectAltNames are not allowed"
        allowed = {"digital signature", "key encipherment", "client auth"}
        if any(u not in allowed for u in usages) or "client auth" not in usages:
            return "usages did not match " + str(sorted(allowed))
        return ""
    allowed = {"digital signature", "key encipherment", "server auth"}
    if any(u not in allowed for u in usages) or "server auth" not in usages:
        return "usages did not match " + str(sorted(allowed))
    if not names:
        return "DNS or IP subjectAltName is required"
    return ""


def _subject_names(request: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    try:
        ext = request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value)


def sign(
    request: x509.CertificateSigningRequest,
    *,
    ca_cert: x509.Certificate,
    ca_key: Any,
    usages: list[str],
    expiration_seconds: int | None,
    now: datetime.datetime,
) -> bytes:
    duration = DEFAULT_DURATION
    if expiration_seconds:
        duration = max(MIN_DURATION, min(duration, datetime.timedelta(seconds=expiration_seconds)))
    not_after = min(now + duration, ca_cert.not_valid_after_utc)
    public = request.public_key()
    flags = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    for usage in usages:
        if usage in _KEY_USAGES:
            flags[_KEY_USAGES[usage]] = True
    builder = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if any(flags.values()):
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    ext_usages = list(dict.fromkeys(_EXT_USAGES[u] for u in usages if u in _EXT_USAGES))
    if ext_usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ext_usages), critical=False)
    names = _subject_names(request)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    except x509.ExtensionNotFound:
        pass
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM)


class CSRSigningController(base.Controller):
    name = "csrsigning"
    workers = 2

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.resource = ctx.resource("certificates.k8s.io", "v1", "certificatesigningrequests")
        self.csrs = ctx.informers.informer(self.resource)
        self.csrs.add_handlers(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))
        self.files: tuple[Path, Path] | None = ctx.signing_files

    async def wait_ready(self) -> None:
        await self.csrs.wait_synced()

    def _ca(self) -> tuple[x509.Certificate, Any]:
        assert self.files is not None
        cert = x509.load_pem_x509_certificate(self.files[0].read_bytes())
        key = serialization.load_pem_private_key(self.files[1].read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError(f"{self.files[1]}: unsupported CA key type")
        return cert, key

    async def sync(self, key: str) -> None:
        csr = self.csrs.indexer.get(key)
        if csr is None or self.files is None:
            return
        spec, status = csr.get("spec") or {}, csr.get("status") or {}
        signer = spec.get("signerName", "")
        if signer not in SIGNERS or status.get("certificate") or not is_approved(csr):
            return
        if _has_condition(csr, "Failed"):
            return
        try:
            request = csr_validation.parse_request(csr_validation.decode_bytes(spec.get("request")))
        except ValueError as exc:
            await self._fail(csr, f"unable to parse csr: {exc}")
            return
        usages = [str(u) for u in spec.get("usages") or []]
        problem = check_signer_rules(signer, request, usages)
        if problem:
            await self._fail(csr, problem)
            return
        ca_cert, ca_key = self._ca()
        pem = sign(
            request,
            ca_cert=ca_cert,
            ca_key=ca_key,
            usages=usages,
            expiration_seconds=spec.get("expirationSeconds"),
            now=datetime.datetime.now(datetime.UTC),
        )
        updated = dict(csr)
        updated["status"] = {**status, "certificate": base64.b64encode(pem).decode()}
        try:
            await self.client.update_status(self.resource, updated)
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise

    async def _fail(self, csr: Obj, message: str) -> None:
        status = dict(csr.get("status") or {})
        now = meta.now()
        status["conditions"] = [
            *(status.get("conditions") or []),
            {
                "type": "Failed",
                "status": "True",
                "reason": "SignerValidationFailure",
                "message": message,
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            },
        ]
        updated = {**csr, "status": status}
        try:
            await self.client.update_status(self.resource, updated)
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise
