"""Deleting a CRD deletes its custom resources first.

Upstream's ``customresourcecleanup.apiextensions.k8s.io`` finalizer
(``pkg/controller/finalizer/crd_finalizer.go``): a CRD being deleted is marked
``Terminating`` (reason ``InstanceDeletionPending``) and keeps its finalizer; then
every object of the resource is deleted (``InstanceDeletionInProgress``) — objects
with finalizers of their own stay until those are removed, so the cleanup waits
and tries again — and once none is left the condition says
``InstanceDeletionCompleted`` (``removed all instances``) and the finalizer goes,
which lets the store remove the CRD. Meanwhile creates of the resource are refused.

The API server runs this itself on its stores, as kube-apiserver runs the
finalizer controller of its apiextensions part; :class:`Cleanup` is driven by the
serving layer's reconcile loop, one CRD at a time per call.
"""

from __future__ import annotations

import logging

from pilothouse.api import errors
from pilothouse.api.apiextensions import crd as crds
from pilothouse.api.meta import Obj
from pilothouse.apiserver.registry import deletion
from pilothouse.apiserver.registry.listing import ListOptions
from pilothouse.apiserver.registry.store import ResourceStore

log = logging.getLogger(__name__)


def mark_for_deletion(crd: Obj) -> Obj | None:
    """The CRD as upstream's REST delete first writes it: with the cleanup finalizer
    and a Terminating condition (None when it is already being deleted)."""
    md = crd.get("metadata") or {}
    if md.get("deletionTimestamp"):
        return None
    out = dict(crd)
    out["metadata"] = {**md, "finalizers": [*(md.get("finalizers") or []), crds.FINALIZER]}
    if crds.FINALIZER in (md.get("finalizers") or []):
        out["metadata"]["finalizers"] = list(md.get("finalizers") or [])
    out["status"] = {**(crd.get("status") or {})}
    out["status"]["conditions"] = [dict(c) for c in crds.conditions(crd)]
    crds.set_condition(
        out,
        crds.TERMINATING,
        "True",
        "InstanceDeletionPending",
        "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
    )
    return out


async def delete_instances(store: ResourceStore) -> int:
    """Delete every object of ``store``'s resource; returns how many are left."""
    page = await store.list("", ListOptions())
    left = 0
    for entry in page.entries:
        md = entry.obj.get("metadata") or {}
        try:
            _, gone = await store.delete(
                md.get("namespace", ""), md.get("name", ""), deletion.Options()
            )
        except errors.StatusError as exc:
            if errors.is_not_found(exc):
                continue
            raise
        if not gone:
            left += 1
    return left
