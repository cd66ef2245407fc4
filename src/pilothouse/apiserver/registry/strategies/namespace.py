"""Namespaces: the ``kubernetes`` finalizer, phase, and the name label."""

from __future__ import annotations

from pilothouse.api.meta import Obj
from pilothouse.apiserver.registry.strategy import Strategy

NAME_LABEL = "kubernetes.io/metadata.name"


class NamespaceStrategy(Strategy):
    return_deleted_object = True

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

    def has_other_finalizers(self, obj: Obj) -> bool:
        return bool((obj.get("spec") or {}).get("finalizers"))

    def mark_deleting(self, obj: Obj) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"

    @staticmethod
    def _label(obj: Obj) -> None:
        md = obj.setdefault("metadata", {})
        labels = dict(md.get("labels") or {})
        labels[NAME_LABEL] = md.get("name", "")
        md["labels"] = labels
