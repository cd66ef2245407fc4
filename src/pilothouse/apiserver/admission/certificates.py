"""CertificateSigningRequest admission: CertificateApproval, CertificateSigning and
CertificateSubjectRestriction (upstream's plugins of those names).

* approving or denying (the ``approval`` subresource) needs the ``approve`` verb on
  ``signers`` named by the request's signer (or ``<domain>/*``);
* issuing the certificate (``status`` with a new ``status.certificate``) needs ``sign``;
* a ``kubernetes.io/kube-apiserver-client`` request for the ``system:masters`` group
  is refused outright: cluster administrators are not made through the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilothouse.api import errors
from pilothouse.api.meta import Obj
from pilothouse.api.validation import certificates as csr_validation
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.authz import attributes as attrs_module
from pilothouse.apiserver.authz import authorizer as authz

if TYPE_CHECKING:
    from pilothouse.apiserver.registry.store import ResourceStore

GROUP = "certificates.k8s.io"
KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"


def authorized_for_signer(
    authorizer: authz.Authorizer, user: user_module.UserInfo, verb: str, signer: str
) -> bool:
    """Upstream's IsAuthorizedForSignerName: the signer by name, or its domain's ``*``."""
    for name in (signer, signer.split("/", 1)[0] + "/*"):
        check = attrs_module.resource(user, verb=verb, group=GROUP, resource="signers", name=name)
        if authorizer.allowed(check):
            return True
    return False


def check_approval(authorizer: authz.Authorizer, csr: Obj) -> None:
    user = user_module.current()
    if user is None:
        return
    signer = (csr.get("spec") or {}).get("signerName", "")
    if not authorized_for_signer(authorizer, user, "approve", signer):
        raise errors.forbidden(
            "certificatesigningrequests",
            GROUP,
            csr["metadata"].get("name", ""),
            f'user not permitted to approve requests with signerName "{signer}"',
        )


class CertificateAdmission:
    def __init__(self, authorizer: authz.Authorizer) -> None:
        self.authorizer = authorizer

    async def __call__(self, store: ResourceStore, op: str, obj: Obj) -> None:
        r = store.resource
        if r.group != GROUP or r.plural != "certificatesigningrequests":
            return
        spec = obj.get("spec") or {}
        name = (obj.get("metadata") or {}).get("name", "")
        if op == "create" and spec.get("signerName") == KUBE_APISERVER_CLIENT:
            self._subject_restriction(spec, name)
        if op != "update":
            return
        request = attrs_module.current()
        if request is None or request.subresource != "status":
            return
        user = user_module.current()
        if user is None:
            return
        old = await store.current("", name)
        old_cert = ((old.obj if old else {}).get("status") or {}).get("certificate")
        if (obj.get("status") or {}).get("certificate") == old_cert:
            return
        signer = spec.get("signerName", "")
        if not authorized_for_signer(self.authorizer, user, "sign", signer):
            raise errors.forbidden(
                "certificatesigningrequests",
                GROUP,
                name,
                f'user not permitted to sign requests with signerName "{signer}"',
            )

    def _subject_restriction(self, spec: Obj, name: str) -> None:
        try:
            request = csr_validation.parse_request(csr_validation.decode_bytes(spec.get("request")))
        except ValueError:
            return  # validation has reported it
        from cryptography.x509.oid import NameOID

        organizations = [
            str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        ]
        if "system:masters" in organizations:
            raise errors.forbidden(
                "certificatesigningrequests",
                GROUP,
                name,
                f"use of {KUBE_APISERVER_CLIENT} signer with system:masters group is not allowed",
            )
