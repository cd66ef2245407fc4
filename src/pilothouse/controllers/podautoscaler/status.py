"""The HPA's conditions, and the error that carries a failed reconcile's reason.

:class:`Conditions` sets AbleToScale, ScalingActive and ScalingLimited as upstream's
``setCondition`` does: in first-set order, keeping ``lastTransitionTime`` while the
status stays the same. No I/O here.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import meta

Obj = dict[str, Any]


class StatusError(Exception):
    """A reconcile that stopped for a reason users see in conditions and events."""

    def __init__(self, reason: str, message: str, *, statuses: list[Obj] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.statuses = statuses


class Conditions:
    def __init__(self, status: Obj, now: float) -> None:
        self.status = status
        self.now = meta.format_time(now)

    def set(self, type_: str, value: bool, reason: str, message: str) -> None:
        text = "True" if value else "False"
        conditions = self.status.setdefault("conditions", [])
        for condition in conditions:
            if condition.get("type") == type_:
                if condition.get("status") != text:
                    condition["lastTransitionTime"] = self.now
                condition.update(status=text, reason=reason, message=message)
                return
        conditions.append(
            {
                "type": type_,
                "status": text,
                "lastTransitionTime": self.now,
                "reason": reason,
                "message": message,
            }
        )
