"""Tables of RoleBindings, ClusterRoleBindings and CertificateSigningRequests.

Ports of upstream's ``printRoleBinding``, ``printClusterRoleBinding`` and
``printCertificateSigningRequest``; Roles and ClusterRoles use the default
convertor (``Name``, ``Created At``), as upstream's printers for them do.
"""

from __future__ import annotations

from typing import Any

from pilothouse.apiserver.table import docs, timefmt
from pilothouse.apiserver.table.model import Cells, Object, Printer, column

_EMPTY: dict[str, Any] = {}
_NAME = column("Name", "string", docs.NAME, format_="name")
_AGE = column("Age", "string", docs.CREATION_TIMESTAMP)

ROLE_REF = "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable."
CSR_SIGNER_NAME = 'signerName indicates the requested signer, and is a qualified name.\n\nList/watch requests for CertificateSigningRequests can filter on this field using a "spec.signerName=NAME" fieldSelector.\n\nWell-known Kubernetes signers are:\n 1. "kubernetes.io/kube-apiserver-client": issues client certificates that can be used to authenticate to kube-apiserver.\n  Requests for this signer are never auto-approved by kube-controller-manager, can be issued by the "csrsigning" controller in kube-controller-manager.\n 2. "kubernetes.io/kube-apiserver-client-kubelet": issues client certificates that kubelets use to authenticate to kube-apiserver.\n  Requests for this signer can be auto-approved by the "csrapproving" controller in kube-controller-manager, and can be issued by the "csrsigning" controller in kube-controller-manager.\n 3. "kubernetes.io/kubelet-serving" issues serving certificates that kubelets use to serve TLS endpoints, which kube-apiserver can connect to securely.\n  Requests for this signer are never auto-approved by kube-controller-manager, and can be issued by the "csrsigning" controller in kube-controller-manager.\n\nMore details are available at https://k8s.io/docs/reference/access-authn-authz/certificate-signing-requests/#kubernetes-signers\n\nCustom signerNames can also be specified. The signer defines:\n 1. Trust distribution: how trust (CA bundles) are distributed.\n 2. Permitted subjects: and behavior when a disallowed subject is requested.\n 3. Required, permitted, or forbidden x509 extensions in the request (including whether subjectAltNames are allowed, which types, restrictions on allowed values) and behavior when a disallowed extension is requested.\n 4. Required, permitted, or forbidden key usages / extended key usages.\n 5. Expiration/certificate lifetime: whether it is fixed by the signer, configurable by the admin.\n 6. Whether or not requests for CA certificates are allowed.'
CSR_REQUEST = 'request contains an x509 certificate signing request encoded in a "CERTIFICATE REQUEST" PEM block. When serialized as JSON or YAML, the data is additionally base64-encoded.'
CSR_EXPIRATION_SECONDS = "expirationSeconds is the requested duration of validity of the issued certificate. The certificate signer may issue a certificate with a different validity duration so a client must check the delta between the notBefore and and notAfter fields in the issued certificate to determine the actual duration.\n\nThe v1.22+ in-tree implementations of the well-known Kubernetes signers will honor this field as long as the requested duration is not greater than the maximum duration they will honor per the --cluster-signing-duration CLI flag to the Kubernetes controller manager.\n\nCertificate signers may not honor this field for various reasons:\n\n  1. Old signer that is unaware of the field (such as the in-tree\n     implementations prior to v1.22)\n  2. Signer whose configured maximum is shorter than the requested duration\n  3. Signer whose configured minimum is longer than the requested duration\n\nThe minimum valid value for expirationSeconds is 600, i.e. 10 minutes."
CSR_CONDITIONS = (
    'conditions applied to the request. Known conditions are "Approved", "Denied", and "Failed".'
)


def _binding_columns(what: str) -> tuple[Any, ...]:
    return (
        _NAME,
        column("Role", "string", ROLE_REF),
        _AGE,
        column("Users", "string", f"Users in the {what}", priority=1),
        column("Groups", "string", f"Groups in the {what}", priority=1),
        column("ServiceAccounts", "string", f"ServiceAccounts in the {what}", priority=1),
    )


ROLE_BINDING_COLUMNS = _binding_columns("roleBinding")
CLUSTER_ROLE_BINDING_COLUMNS = _binding_columns("clusterRoleBinding")


def binding_cells(binding: Object, now: float) -> Cells:
    meta = binding.get("metadata") or _EMPTY
    ref = binding.get("roleRef") or _EMPTY
    users, groups, accounts = [], [], []
    for subject in binding.get("subjects") or []:
        kind = subject.get("kind")
        if kind == "User":
            users.append(subject.get("name", ""))
        elif kind == "Group":
            groups.append(subject.get("name", ""))
        elif kind == "ServiceAccount":
            accounts.append(f"{subject.get('namespace', '')}/{subject.get('name', '')}")
    return [
        meta.get("name", ""),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        timefmt.since(meta.get("creationTimestamp"), now),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(accounts),
    ]


CSR_COLUMNS = (
    _NAME,
    _AGE,
    column("SignerName", "string", CSR_SIGNER_NAME),
    column("Requestor", "string", CSR_REQUEST),
    column("RequestedDuration", "string", CSR_EXPIRATION_SECONDS),
    column("Condition", "string", CSR_CONDITIONS),
)


def csr_condition(csr: Object) -> str:
    """upstream's extractCSRStatus: Denied/Approved/Pending, then Failed, then Issued."""
    status = csr.get("status") or _EMPTY
    kinds = {c.get("type") for c in status.get("conditions") or []}
    text = "Denied" if "Denied" in kinds else "Approved" if "Approved" in kinds else "Pending"
    if "Failed" in kinds:
        text += ",Failed"
    if status.get("certificate"):
        text += ",Issued"
    return text


def csr_cells(csr: Object, now: float) -> Cells:
    meta = csr.get("metadata") or _EMPTY
    spec = csr.get("spec") or _EMPTY
    seconds = spec.get("expirationSeconds")
    duration = timefmt.human_duration(float(seconds)) if isinstance(seconds, int) else "<none>"
    return [
        meta.get("name", ""),
        timefmt.since(meta.get("creationTimestamp"), now),
        spec.get("signerName") or "<none>",
        spec.get("username", ""),
        duration,
        csr_condition(csr),
    ]


PRINTERS = {
    ("rbac.authorization.k8s.io", "RoleBinding"): Printer(ROLE_BINDING_COLUMNS, binding_cells),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): Printer(
        CLUSTER_ROLE_BINDING_COLUMNS, binding_cells
    ),
    ("certificates.k8s.io", "CertificateSigningRequest"): Printer(CSR_COLUMNS, csr_cells),
}
