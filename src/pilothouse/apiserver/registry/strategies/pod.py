"""Pods: status starts Pending with a QoS class; deletion answers with the pod."""

from __future__ import annotations

from pilothouse.api import qos
from pilothouse.api.meta import Obj
from pilothouse.apiserver.registry.strategy import Strategy


class PodStrategy(Strategy):
    return_deleted_object = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending", "qosClass": qos.pod_qos_class(obj)}

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        # qosClass is decided once, at creation.
        qos_class = (old.get("status") or {}).get("qosClass")
        if qos_class:
            new.setdefault("status", {})["qosClass"] = qos_class
