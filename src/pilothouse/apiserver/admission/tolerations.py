"""DefaultTolerationSeconds (upstream's admission plugin of the same name).

A pod that does not tolerate the ``node.kubernetes.io/not-ready`` and
``node.kubernetes.io/unreachable`` NoExecute taints gets tolerations for 300
seconds, so a node that drops out for a moment does not lose its pods at once.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import resources
from pilothouse.apiserver.admission.chain import Deps
from pilothouse.apiserver.admission.interface import Attributes, Plugin

DEFAULT_TOLERATION_SECONDS = 300
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


def _toleration(key: str, seconds: int) -> dict[str, Any]:
    return {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}


class DefaultTolerationSeconds(Plugin):
    name = "DefaultTolerationSeconds"

    def __init__(self, deps: Deps, *, seconds: int = DEFAULT_TOLERATION_SECONDS) -> None:
        self.not_ready_seconds = seconds
        self.unreachable_seconds = seconds

    def handles(self, resource: resources.Resource, subresource: str, operation: str) -> bool:
        return (
            not subresource
            and resource.group == ""
            and resource.plural == "pods"
            and operation in self.operations
        )

    async def admit(self, a: Attributes) -> None:
        if a.obj is None:
            return
        spec = a.obj.setdefault("spec", {})
        tolerations = [t for t in spec.get("tolerations") or [] if isinstance(t, dict)]
        not_ready = unreachable = False
        for t in tolerations:
            key, effect = t.get("key") or "", t.get("effect") or ""
            if effect not in ("", "NoExecute"):
                continue
            not_ready = not_ready or key in ("", NOT_READY)
            unreachable = unreachable or key in ("", UNREACHABLE)
        if not not_ready:
            tolerations.append(_toleration(NOT_READY, self.not_ready_seconds))
        if not unreachable:
            tolerations.append(_toleration(UNREACHABLE, self.unreachable_seconds))
        if not (not_ready and unreachable):
            spec["tolerations"] = tolerations
