"""PersistentVolumes: the phase starts Pending and its changes are timestamped
(upstream's persistentvolume strategy with ``PersistentVolumeLastPhaseTransitionTime``)."""

from __future__ import annotations

from pilothouse.api import meta
from pilothouse.api.meta import Obj
from pilothouse.apiserver.registry.strategy import Strategy


class PersistentVolumeStrategy(Strategy):
    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending", "lastPhaseTransitionTime": meta.now()}

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        status = new.get("status")
        if not isinstance(status, dict):
            return
        old_status = old.get("status") or {}
        stamp = status.get("lastPhaseTransitionTime")
        if status.get("phase") == old_status.get("phase"):
            if stamp is None and old_status.get("lastPhaseTransitionTime") is not None:
                status["lastPhaseTransitionTime"] = old_status["lastPhaseTransitionTime"]
        elif stamp is None or stamp == old_status.get("lastPhaseTransitionTime"):
            # The phase changed and the writer did not say when: now.
            status["lastPhaseTransitionTime"] = meta.now()
