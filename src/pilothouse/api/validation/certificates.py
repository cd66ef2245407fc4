"""CertificateSigningRequests (``pkg/apis/certificates/validation``).

A request carries a PEM PKCS#10 request whose signature must hold, the usages it
wants, and a signer name shaped ``example.com/signer``; ``status.conditions`` obey
the Approved/Denied/Failed rules, and only the ``approval`` and ``status``
subresources may add approval conditions or the issued certificate.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography import x509

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import meta, names
from pilothouse.api.validation.fields import as_dict, as_list, as_str, is_int

LEGACY_UNKNOWN_SIGNER = "kubernetes.io/legacy-unknown"
VALID_USAGES = tuple(
    sorted(
        (
            "signing",
            "digital signature",
            "content commitment",
            "key encipherment",
            "key agreement",
            "data encipherment",
            "cert sign",
            "crl sign",
            "encipher only",
            "decipher only",
            "any",
            "server auth",
            "client auth",
            "code signing",
            "email protection",
            "s/mime",
            "ipsec end system",
            "ipsec tunnel",
            "ipsec user",
            "timestamping",
            "ocsp signing",
            "microsoft sgc",
            "netscape sgc",
        )
    )
)
_TRUE_ONLY = frozenset({"Approved", "Denied", "Failed"})
_STATUS_VALUES = ("False", "True", "Unknown")


def _no_name_rule(name: str, prefix: bool) -> list[str]:
    return []  # upstream: "We don't care what you call your certificate requests."


def decode_bytes(value: Any) -> bytes:
    """A ``[]byte`` field's bytes (base64 in JSON); b"" when absent or not base64."""
    if not isinstance(value, str) or not value:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _go_bytes(data: bytes) -> errors.GoValue:
    if not data:
        return errors.GoValue("[]byte(nil)")
    return errors.GoValue("[]byte{" + ", ".join(f"0x{b:x}" for b in data) + "}")


def parse_request(pem: bytes) -> x509.CertificateSigningRequest:
    """The PKCS#10 request in a PEM block; ValueError worded as upstream's ParseCSR."""
    start = pem.find(b"-----BEGIN ")
    if start < 0 or not pem[start:].startswith(b"-----BEGIN CERTIFICATE REQUEST-----"):
        raise ValueError("PEM block type must be CERTIFICATE REQUEST")
    try:
        return x509.load_pem_x509_csr(pem[start:])
    except ValueError as exc:
        raise ValueError(f"x509: malformed certificate request: {exc}") from None


def _check_request(pem: bytes) -> str:
    try:
        csr = parse_request(pem)
    except ValueError as exc:
        return str(exc)
    if not csr.is_signature_valid:
        return "x509: signature verification failure"
    return ""


def _check_certificate(pem: bytes) -> str:
    if not pem:
        return ""
    blocks = 0
    rest = pem
    while True:
        begin = rest.find(b"-----BEGIN ")
        if begin < 0:
            break
        line_end = rest.find(b"-----", begin + 11)
        block_type = rest[begin + 11 : line_end].decode(errors="replace")
        end_marker = f"-----END {block_type}-----".encode()
        end = rest.find(end_marker, line_end)
        if end < 0:
            break
        if block_type != "CERTIFICATE":
            return f'only CERTIFICATE PEM blocks are allowed, found "{block_type}"'
        block = rest[begin : end + len(end_marker)]
        if b":" in block.split(b"\n", 2)[1]:
            return "no PEM block headers are permitted"
        try:
            x509.load_pem_x509_certificate(block)
        except ValueError as exc:
            return f"x509: malformed certificate: {exc}"
        blocks += 1
        rest = rest[end + len(end_marker) :]
    if blocks == 0:
        return "must contain at least one CERTIFICATE PEM block"
    return ""


def validate_signer_name(value: str, path: str) -> list[FieldError]:
    if not value:
        return [errors.required(path, "signerName must be provided")]
    segments = value.split("/")
    if len(segments) != 2:
        return [
            errors.invalid_value(
                path,
                value,
                "must be a fully qualified domain and path of the form 'example.com/signer-name'",
            )
        ]
    errs: list[FieldError] = []
    domain, rest = segments
    if len(domain) > 253:
        errs.append(errors.too_long(path, 253))
    labels = domain.split(".")
    for label in labels:
        problems = names.is_dns1123_label(label)
        if problems:
            errs.extend(
                errors.invalid_value(path, domain, f'validating label "{label}": {p}')
                for p in problems
            )
            break
    if len(labels) < 2:
        errs.append(
            errors.invalid_value(
                path, domain, "should be a domain with at least two segments separated by dots"
            )
        )
    for label in rest.split("."):
        problems = names.is_dns1123_subdomain(label)
        if problems:
            errs.extend(
                errors.invalid_value(path, rest, f'validating label "{label}": {p}')
                for p in problems
            )
            break
    if len(value) > 253 + 253 + 63 + 1 + 1:
        errs.append(errors.too_long(path, 571))
    return errs


def _conditions(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    errs: list[FieldError] = []
    conditions = [as_dict(c) for c in as_list(as_dict(obj.get("status")).get("conditions"))]
    old_conditions = (
        [as_dict(c) for c in as_list(as_dict(old.get("status")).get("conditions"))] if old else []
    )
    old_types = [as_str(c.get("type")) for c in old_conditions]
    allow_both = "Approved" in old_types and "Denied" in old_types
    allow_duplicates = len(set(old_types)) != len(old_types)
    allow_empty = "" in old_types
    seen: set[str] = set()
    approved = denied = False
    for i, cond in enumerate(conditions):
        path = f"status.conditions[{i}]"
        kind = as_str(cond.get("type"))
        if not kind and not allow_empty:
            errs.append(errors.required(f"{path}.type"))
        allowed = ("True",) if kind in _TRUE_ONLY else _STATUS_VALUES
        status = as_str(cond.get("status"))
        if not status:
            errs.append(errors.required(f"{path}.status"))
        elif status not in allowed:
            errs.append(errors.not_supported(f"{path}.status", status, allowed))
        if not allow_both:
            if kind == "Approved":
                approved = True
                if denied:
                    errs.append(
                        errors.invalid_value(
                            f"{path}.type",
                            kind,
                            "Approved and Denied conditions are mutually exclusive",
                        )
                    )
            elif kind == "Denied":
                denied = True
                if approved:
                    errs.append(
                        errors.invalid_value(
                            f"{path}.type",
                            kind,
                            "Approved and Denied conditions are mutually exclusive",
                        )
                    )
        if not allow_duplicates:
            if kind in seen:
                errs.append(errors.duplicate(f"{path}.type", kind))
            seen.add(kind)
    return errs


def _validate(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=False, name_fn=_no_name_rule)
    spec = as_dict(obj.get("spec"))
    old_spec = as_dict(old.get("spec")) if old else {}
    request = decode_bytes(spec.get("request"))
    problem = _check_request(request)
    if problem:
        errs.append(errors.invalid_value("spec.request", _go_bytes(request), problem))
    usages = [as_str(u) for u in as_list(spec.get("usages"))]
    if not usages:
        errs.append(errors.required("spec.usages", "usages must be provided"))
    old_usages = [as_str(u) for u in as_list(old_spec.get("usages"))]
    if not any(u not in VALID_USAGES for u in old_usages):
        errs.extend(
            errors.not_supported(f"spec.usages[{i}]", u, VALID_USAGES)
            for i, u in enumerate(usages)
            if u not in VALID_USAGES
        )
    if len(set(old_usages)) == len(old_usages):
        seen: set[str] = set()
        for i, u in enumerate(usages):
            if u in seen:
                errs.append(errors.duplicate(f"spec.usages[{i}]", u))
            seen.add(u)
    signer = as_str(spec.get("signerName"))
    legacy_allowed = as_str(old_spec.get("signerName")) == LEGACY_UNKNOWN_SIGNER
    if signer == LEGACY_UNKNOWN_SIGNER and not legacy_allowed:
        errs.append(
            errors.invalid_value(
                "spec.signerName",
                signer,
                "the legacy signerName is not allowed via this API version",
            )
        )
    else:
        errs.extend(validate_signer_name(signer, "spec.signerName"))
    seconds = spec.get("expirationSeconds")
    if is_int(seconds) and seconds < 600:
        errs.append(
            errors.invalid_value(
                "spec.expirationSeconds",
                seconds,
                "may not specify a duration less than 600 seconds (10 minutes)",
            )
        )
    errs.extend(_conditions(obj, old))
    cert = decode_bytes(as_dict(obj.get("status")).get("certificate"))
    old_cert = decode_bytes(as_dict(old.get("status")).get("certificate")) if old else b""
    arbitrary = old is not None and (cert == old_cert or bool(_check_certificate(old_cert)))
    if not arbitrary:
        problem = _check_certificate(cert)
        if problem:
            errs.append(errors.invalid_value("status.certificate", "<certificate data>", problem))
    return errs


def validate_csr(obj: dict[str, Any]) -> list[FieldError]:
    return _validate(obj, None)


def _conditions_of(obj: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        as_dict(c)
        for c in as_list(as_dict(obj.get("status")).get("conditions"))
        if as_dict(c).get("type") == kind
    ]


def _update(
    new: dict[str, Any], old: dict[str, Any], *, approval: bool, certificate: bool
) -> list[FieldError]:
    errs = _validate(new, old) + meta.validate_object_meta_update(new, old)
    for kind in ("Approved", "Denied", "Failed"):
        if len(_conditions_of(new, kind)) < len(_conditions_of(old, kind)):
            errs.append(
                errors.field_forbidden(
                    "status.conditions", f'updates may not remove a condition of type "{kind}"'
                )
            )
    if not approval:
        for kind in ("Approved", "Denied"):
            before, after = _conditions_of(old, kind), _conditions_of(new, kind)
            if len(after) > len(before):
                errs.append(
                    errors.field_forbidden(
                        "status.conditions", f'updates may not add a condition of type "{kind}"'
                    )
                )
            elif len(after) == len(before) and after != before:
                errs.append(
                    errors.field_forbidden(
                        "status.conditions", f'updates may not modify a condition of type "{kind}"'
                    )
                )
    new_cert = as_dict(new.get("status")).get("certificate") or ""
    old_cert = as_dict(old.get("status")).get("certificate") or ""
    if new_cert != old_cert:
        if not certificate:
            errs.append(
                errors.field_forbidden(
                    "status.certificate", "updates may not set certificate content"
                )
            )
        elif old_cert:
            errs.append(
                errors.field_forbidden(
                    "status.certificate", "updates may not modify existing certificate content"
                )
            )
    return errs


def validate_csr_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return _update(new, old, approval=False, certificate=False)


def validate_csr_status_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return _update(new, old, approval=False, certificate=True)


def validate_csr_approval_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return _update(new, old, approval=True, certificate=False)
