"""Per-namespace identity objects: the ``default`` ServiceAccount and the
``kube-root-ca.crt`` ConfigMap (upstream's serviceaccount controller and
root-ca-cert-publisher).

Both are keyed by namespace: a new namespace, a deleted ``default`` account or a
changed ``kube-root-ca.crt`` enqueues the namespace, and the sync creates what is
missing (or puts the CA back). Terminating namespaces are left alone. Pods need
both: ServiceAccount admission waits for the ``default`` account, and the node
agent mounts the CA from the ConfigMap into every pod's token volume.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors
from pilothouse.client import lister, rest
from pilothouse.controllers import base

Obj = dict[str, Any]
DEFAULT_ACCOUNT = "default"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)


def _active(ns: Obj | None) -> bool:
    if ns is None or ns["metadata"].get("deletionTimestamp"):
        return False
    return (ns.get("status") or {}).get("phase") != "Terminating"


class ServiceAccountsController(base.Controller):
    """Every active namespace has a ``default`` ServiceAccount."""

    name = "serviceaccount"
    workers = 2

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.accounts_resource = ctx.resource("", "v1", "serviceaccounts")
        self.namespaces = ctx.informers.informer(ctx.resource("", "v1", "namespaces"))
        self.accounts = ctx.informers.informer(self.accounts_resource)
        self.namespaces.add_handlers(
            on_add=self._namespace, on_update=lambda old, new: self._namespace(new)
        )
        self.accounts.add_handlers(on_delete=self._account_deleted)

    def _namespace(self, ns: Obj) -> None:
        self.enqueue_key(ns["metadata"]["name"])

    def _account_deleted(self, sa: Obj) -> None:
        if sa["metadata"].get("name") == DEFAULT_ACCOUNT:
            self.enqueue_key(sa["metadata"].get("namespace", ""))

    async def wait_ready(self) -> None:
        await self.namespaces.wait_synced()
        await self.accounts.wait_synced()

    async def sync(self, key: str) -> None:
        if not _active(self.namespaces.indexer.get(key)):
            return
        if self.accounts.indexer.get_by(key, DEFAULT_ACCOUNT) is not None:
            return
        try:
            await self.client.create(
                self.accounts_resource,
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": DEFAULT_ACCOUNT},
                },
                key,
            )
        except errors.StatusError as exc:
            # Gone or going namespaces and accounts made meanwhile are fine.
            if not (
                errors.is_already_exists(exc)
                or errors.is_not_found(exc)
                or errors.is_forbidden(exc)
            ):
                raise


class RootCACertPublisher(base.Controller):
    """Every active namespace has ``kube-root-ca.crt`` holding the cluster CA."""

    name = "root-ca-cert-publisher"
    workers = 2

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.root_ca: bytes = ctx.root_ca
        self.configmaps_resource = ctx.resource("", "v1", "configmaps")
        self.namespaces = ctx.informers.informer(ctx.resource("", "v1", "namespaces"))
        self.configmaps = ctx.informers.informer(
            self.configmaps_resource, field_selector=f"metadata.name={ROOT_CA_CONFIGMAP}"
        )
        self.namespaces.add_handlers(
            on_add=self._namespace, on_update=lambda old, new: self._namespace(new)
        )
        self.configmaps.add_handlers(
            on_update=lambda old, new: self._configmap(new), on_delete=self._configmap
        )

    def _namespace(self, ns: Obj) -> None:
        self.enqueue_key(ns["metadata"]["name"])

    def _configmap(self, cm: Obj) -> None:
        self.enqueue_key(cm["metadata"].get("namespace", ""))

    async def wait_ready(self) -> None:
        await self.namespaces.wait_synced()
        await self.configmaps.wait_synced()

    def _wanted(self) -> dict[str, str]:
        return {"ca.crt": self.root_ca.decode()}

    async def sync(self, key: str) -> None:
        if not self.root_ca or not _active(self.namespaces.indexer.get(key)):
            return
        current = self.configmaps.indexer.get(
            lister.key_of({"metadata": {"namespace": key, "name": ROOT_CA_CONFIGMAP}})
        )
        try:
            if current is None:
                await self.client.create(
                    self.configmaps_resource,
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {
                            "name": ROOT_CA_CONFIGMAP,
                            "annotations": {"kubernetes.io/description": DESCRIPTION},
                        },
                        "data": self._wanted(),
                    },
                    key,
                )
                return
            annotations = current["metadata"].get("annotations") or {}
            if (
                current.get("data") == self._wanted()
                and annotations.get("kubernetes.io/description") == DESCRIPTION
            ):
                return
            updated = dict(current)
            updated["data"] = self._wanted()
            updated["metadata"] = {
                **current["metadata"],
                "annotations": {**annotations, "kubernetes.io/description": DESCRIPTION},
            }
            await self.client.update(self.configmaps_resource, updated)
        except errors.StatusError as exc:
            if not (
                errors.is_already_exists(exc)
                or errors.is_not_found(exc)
                or errors.is_forbidden(exc)
            ):
                raise
