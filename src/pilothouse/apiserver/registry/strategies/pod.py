"""Pods: status starts Pending with a QoS class; deletion answers with the pod."""

from __future__ import annotations

from pilothouse.api import qos
from pilothouse.api.meta import Obj
from pilothouse.apiserver.registry.strategy import Strategy

DEFAULT_GRACE_SECONDS = 30


class PodStrategy(Strategy):
    def grace_period(self, obj: Obj, requested: int | None) -> int | None:
        """Upstream's CheckGracefulDelete for pods: bound, unfinished pods get their
        grace period; unscheduled or finished pods go at once."""
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if requested is not None:
            period = requested if requested >= 0 else 1  # negative: one second
        else:
            period = int(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS) or 0)
        if not spec.get("nodeName") or phase in ("Failed", "Succeeded"):
            period = 0
        return period

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending", "qosClass": qos.pod_qos_class(obj)}

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        # qosClass is decided once, at creation.
        qos_class = (old.get("status") or {}).get("qosClass")
        if qos_class:
            new.setdefault("status", {})["qosClass"] = qos_class
