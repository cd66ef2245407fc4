"""Namespaces: the ``kubernetes`` finalizer, phase, and the name label."""

from __future__ import annotations

from pilothouse.api import errors
from pilothouse.api.meta import Obj
from pilothouse.apiserver.registry.strategy import Strategy

NAME_LABEL = "kubernetes.io/metadata.name"


class NamespaceStrategy(Strategy):
    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Active"}
        spec = obj.get("spec") or {}
        finalizers = list(spec.get("finalizers") or [])
        if "kubernetes" not in finalizers:
            finalizers.append("kubernetes")
        obj["spec"] = {**spec, "finalizers": finalizers}
        self._label(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        # spec.finalizers change only through /finalize; status through /status.
        new["spec"] = old.get("spec") or {}
        new["status"] = old.get("status") or {"phase": "Active"}
        self._label(new)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)

    def before_delete(self, obj: Obj) -> None:
        # Upstream's namespace REST Delete: once termination has started, only the
        # namespace controller's work ends it.
        md = obj.get("metadata") or {}
        if md.get("deletionTimestamp") and (obj.get("spec") or {}).get("finalizers"):
            raise errors.conflict(
                "namespaces",
                "",
                md.get("name", ""),
                "The system is ensuring all content is removed from this namespace.  "
                "Upon completion, this namespace will automatically be purged by the system.",
            )

    def has_other_finalizers(self, obj: Obj) -> bool:
        return bool((obj.get("spec") or {}).get("finalizers"))

    def mark_deleting(self, obj: Obj) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"
        # Upstream's namespace Delete sets only deletionTimestamp (and the phase):
        # a namespace has no grace period.
        obj["metadata"].pop("deletionGracePeriodSeconds", None)

    @staticmethod
    def _label(obj: Obj) -> None:
        md = obj.setdefault("metadata", {})
        labels = dict(md.get("labels") or {})
        labels[NAME_LABEL] = md.get("name", "")
        md["labels"] = labels
