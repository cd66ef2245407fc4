"""Graceful node shutdown (upstream's kubelet ``nodeshutdown`` manager).

When the machine itself is shutting down and the agent is stopped (SIGTERM from
the service manager), containers would otherwise die with the machine and their
pods stay Running in the API until the node lifecycle controller notices the node
is gone, minutes later. With ``--shutdown-grace-period`` (kubelet's
``shutdownGracePeriod``; 0, the default, keeps it off as upstream) the agent
instead, before it stops:

1. reports its node NotReady (``KubeletNotReady``, "node is shutting down"), so the
   scheduler places nothing new here;
2. stops every pod's containers, each within the smaller of its own
   ``terminationGracePeriodSeconds`` and the shutdown grace period, and reports the
   pod ``Failed`` with reason ``Terminated`` and upstream's message, with a
   ``DisruptionTarget`` condition (``TerminationByKubelet``) — so its controller
   replaces it at once, elsewhere. The pod workers do it the way they carry out a
   node-pressure eviction (the same kill, another reason).

Whether the machine is shutting down is asked of systemd (``systemctl
is-system-running`` says ``stopping``; a scheduled shutdown leaves
``/run/systemd/shutdown/scheduled``), where upstream holds a logind inhibitor lock;
an agent stopped on a machine that keeps running leaves its pods alone, as before.

Concurrency: the pods are shut down by their own workers (each worker is the only
code acting on its pod), all at once; the agent waits for them up to the grace
period plus a little for the status writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilothouse.api import errors, meta, resources
from pilothouse.client import rest
from pilothouse.node import status as node_status
from pilothouse.node.eviction.manager import Eviction

if TYPE_CHECKING:
    from pilothouse.node.pod_workers import PodWorkers

log = logging.getLogger(__name__)

Obj = dict[str, Any]
POD_MESSAGE = "Pod was terminated in response to imminent node shutdown."
POD_REASON = "Terminated"
NODE_MESSAGE = "node is shutting down"
SCHEDULED = Path("/run/systemd/shutdown/scheduled")
NODES = resources.Resource("", "v1", "Node", "nodes", False)


def host_shutting_down() -> bool:
    """Whether this machine is going down (systemd's view; False where it cannot tell)."""
    if SCHEDULED.exists():
        return True
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return False
    try:
        state = subprocess.run(
            [systemctl, "is-system-running"], capture_output=True, text=True, timeout=2
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return False
    return state == "stopping"


async def report_node(client: rest.Client, node_name: str) -> None:
    """The node's Ready condition False, "node is shutting down" (upstream's words)."""
    try:
        current = await client.get(NODES, node_name)
        conditions = node_status.node_conditions(
            meta.now(),
            ready=False,
            ready_message=NODE_MESSAGE,
            old=(current.get("status") or {}).get("conditions"),
        )
        await client.patch(
            NODES, node_name, {"status": {"conditions": conditions}}, subresource="status"
        )
    except (errors.StatusError, rest.TransportError, OSError) as exc:
        log.warning("could not report the node shutting down: %s", exc)


def eviction_for(pod: Obj, grace_period: float) -> Eviction:
    """How the node's shutdown stops ``pod``: within the smaller of its own grace period
    and the shutdown's, reported Failed/Terminated with upstream's DisruptionTarget."""
    own = int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
    return Eviction(
        grace_seconds=max(0, min(own, int(grace_period))),
        message=POD_MESSAGE,
        condition={
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "TerminationByKubelet",
            "message": POD_MESSAGE,
        },
        reason=POD_REASON,
    )


async def shut_down_pods(workers: PodWorkers, *, grace_period: float) -> None:
    """Stop every pod of the node at once (each by its own worker, as an eviction is)
    and wait up to the grace period, plus a little for the status writes."""
    pods = [
        w.pod
        for w in list(workers.workers.values())
        if (w.pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        and not w.should_terminate()
    ]
    if not pods:
        return
    log.info("stopping %d pod(s) for the node's shutdown", len(pods))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace_period + 2):
            await asyncio.gather(
                *(workers.evict(p, eviction_for(p, grace_period)) for p in pods),
                return_exceptions=True,
            )
