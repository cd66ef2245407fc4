"""CertificateSigningRequest admission: CertificateApproval, CertificateSigning and
CertificateSubjectRestriction (upstream's plugins of those names, validating, in the
admission chain; without an authorizer the first two let everything through).

* approving or denying (the ``approval`` subresource) needs the ``approve`` verb on
  ``signers`` named by the request's signer (or ``<domain>/*``);
* issuing the certificate (``status`` with a new ``status.certificate``) needs ``sign``;
* a ``kubernetes.io/kube-apiserver-client`` request for the ``system:masters`` group
  is refused outright: cluster administrators are not made through the API.
"""

from __future__ import annotations

from pilothouse.api import resources
from pilothouse.api.validation import certificates as csr_validation
from pilothouse.apiserver.admission.interface import CREATE, UPDATE, Attributes, Plugin
from pilothouse.apiserver.authn import user as user_module
from pilothouse.apiserver.authz import attributes as attrs_module
from pilothouse.apiserver.authz import authorizer as authz

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


class _CSRPlugin(Plugin):
    operation = UPDATE
    subresource = ""

    def __init__(self, authorizer: authz.Authorizer | None) -> None:
        self.authorizer = authorizer

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        return (
            resource.group == GROUP
            and resource.plural == "certificatesigningrequests"
            and subresource == self.subresource
            and operation == self.operation
        )

    def _permitted(self, verb: str, signer: str) -> bool:
        user = user_module.current()
        if user is None or self.authorizer is None:
            return True
        return authorized_for_signer(self.authorizer, user, verb, signer)


class CertificateApproval(_CSRPlugin):
    """Approving or denying needs ``approve`` on the request's signer."""

    name = "CertificateApproval"
    subresource = "approval"

    async def validate(self, a: Attributes) -> None:
        signer = ((a.obj or {}).get("spec") or {}).get("signerName", "")
        if not self._permitted("approve", signer):
            raise a.forbidden(f'user not permitted to approve requests with signerName "{signer}"')


class CertificateSigning(_CSRPlugin):
    """Writing a new ``status.certificate`` needs ``sign`` on the request's signer."""

    name = "CertificateSigning"
    subresource = "status"

    async def validate(self, a: Attributes) -> None:
        certificate = ((a.obj or {}).get("status") or {}).get("certificate")
        if certificate == ((a.old or {}).get("status") or {}).get("certificate"):
            return
        signer = ((a.obj or {}).get("spec") or {}).get("signerName", "")
        if not self._permitted("sign", signer):
            raise a.forbidden(f'user not permitted to sign requests with signerName "{signer}"')


class CertificateSubjectRestriction(_CSRPlugin):
    """No ``kube-apiserver-client`` certificate for the ``system:masters`` group."""

    name = "CertificateSubjectRestriction"
    operation = CREATE

    async def validate(self, a: Attributes) -> None:
        spec = (a.obj or {}).get("spec") or {}
        if spec.get("signerName") != KUBE_APISERVER_CLIENT:
            return
        try:
            request = csr_validation.parse_request(csr_validation.decode_bytes(spec.get("request")))
        except ValueError:
            return  # validation has reported it
        from cryptography.x509.oid import NameOID

        organizations = [
            str(o.value) for o in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        ]
        if "system:masters" in organizations:
            raise a.forbidden(
                f"use of {KUBE_APISERVER_CLIENT} signer with system:masters group is not allowed"
            )
