"""Writing why a pod is not scheduled: the ``PodScheduled=False`` condition (reason,
message) and ``status.nominatedNodeName``, as one strategic-merge patch of the pod's
status — skipped when nothing would change, as upstream's ``updatePod``."""

from __future__ import annotations

import logging
from typing import Any

from pilothouse.api import errors, meta, resources
from pilothouse.client import rest
from pilothouse.client.rest import STRATEGIC_PATCH

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = resources.Resource("", "v1", "Pod", "pods", True)


async def set_unschedulable(
    client: rest.Client, pod: Obj, reason: str, message: str, nominated: str | None
) -> None:
    """Patch the pod's PodScheduled condition (and nomination) unless already so."""
    status = pod.get("status") or {}
    existing = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None
    )
    same = (
        existing is not None
        and existing.get("status") == "False"
        and existing.get("reason") == reason
        and existing.get("message") == message
    )
    current_nomination = status.get("nominatedNodeName") or ""
    if same and (nominated is None or nominated == current_nomination):
        return
    transition = (
        existing.get("lastTransitionTime")
        if existing is not None and existing.get("status") == "False"
        else meta.now()
    )
    patch: Obj = {
        "status": {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": None,
                    "lastTransitionTime": transition,
                }
            ]
        }
    }
    if nominated is not None and nominated != current_nomination:
        patch["status"]["nominatedNodeName"] = nominated or None
    md = pod.get("metadata") or {}
    try:
        await client.patch(
            PODS,
            md.get("name", ""),
            patch,
            md.get("namespace", ""),
            patch_type=STRATEGIC_PATCH,
            subresource="status",
        )
    except errors.StatusError as exc:
        if not errors.is_not_found(exc):
            log.debug("updating status of %s: %s", md.get("name"), exc.message)
    except rest.TransportError as exc:
        log.debug("updating status of %s: %r", md.get("name"), exc)
