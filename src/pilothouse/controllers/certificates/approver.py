"""Approve node client certificates (upstream's csrapproving controller).

A ``kubernetes.io/kube-apiserver-client-kubelet`` request for ``system:node:<name>``
in ``system:nodes``, with client usages and no names, is approved when its
requester may ``create`` ``certificatesigningrequests/nodeclient`` (a bootstrap
token's user) or, asking for itself, ``certificatesigningrequests/selfnodeclient``
— decided by a SubjectAccessReview, as upstream asks.
"""

from __future__ import annotations

from typing import Any

from cryptography.x509.oid import NameOID

from pilothouse.api import errors, meta
from pilothouse.api.validation import certificates as csr_validation
from pilothouse.client import rest
from pilothouse.controllers import base
from pilothouse.controllers.certificates import signer

Obj = dict[str, Any]
ALLOWED_USAGES = frozenset({"digital signature", "key encipherment", "client auth"})


def is_node_client_request(csr: Obj) -> tuple[bool, str]:
    """(is a node client request, the node's user name)."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") != signer.KUBELET_CLIENT:
        return False, ""
    try:
        request = csr_validation.parse_request(csr_validation.decode_bytes(spec.get("request")))
    except ValueError:
        return False, ""
    organizations = [
        str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    ]
    common = [str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    usages = set(spec.get("usages") or [])
    if organizations != ["system:nodes"] or not common or not common[0].startswith("system:node:"):
        return False, ""
    if not usages <= ALLOWED_USAGES or "client auth" not in usages:
        return False, ""
    return True, common[0]


class CSRApprovingController(base.Controller):
    name = "csrapproving"
    workers = 1

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.resource = ctx.resource("certificates.k8s.io", "v1", "certificatesigningrequests")
        self.reviews = ctx.resource("authorization.k8s.io", "v1", "subjectaccessreviews")
        self.csrs = ctx.informers.informer(self.resource)
        self.csrs.add_handlers(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))

    async def wait_ready(self) -> None:
        await self.csrs.wait_synced()

    async def _allowed(self, spec: Obj, subresource: str) -> bool:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": spec.get("username", ""),
                "uid": spec.get("uid", ""),
                "groups": spec.get("groups") or [],
                "extra": spec.get("extra") or {},
                "resourceAttributes": {
                    "group": "certificates.k8s.io",
                    "resource": "certificatesigningrequests",
                    "verb": "create",
                    "subresource": subresource,
                    "version": "*",
                },
            },
        }
        answer = await self.client.create(self.reviews, review)
        return bool((answer.get("status") or {}).get("allowed"))

    async def sync(self, key: str) -> None:
        csr = self.csrs.indexer.get(key)
        if csr is None:
            return
        conditions = (csr.get("status") or {}).get("conditions") or []
        if any(c.get("type") in ("Approved", "Denied") for c in conditions):
            return
        ok, node_user = is_node_client_request(csr)
        if not ok:
            return
        spec = csr.get("spec") or {}
        if spec.get("username") == node_user:
            approved = await self._allowed(spec, "selfnodeclient")
        else:
            approved = await self._allowed(spec, "nodeclient")
        if not approved:
            return
        now = meta.now()
        updated = {
            **csr,
            "status": {
                **(csr.get("status") or {}),
                "conditions": [
                    *conditions,
                    {
                        "type": "Approved",
                        "status": "True",
                        "reason": "AutoApproved",
                        "message": "Auto approving kubelet client certificate after SubjectAccessReview.",
                        "lastUpdateTime": now,
                        "lastTransitionTime": now,
                    },
                ],
            },
        }
        try:
            await self.client.update(self.resource, updated, subresource="approval")
        except errors.StatusError as exc:
            if not (errors.is_not_found(exc) or errors.is_conflict(exc)):
                raise
