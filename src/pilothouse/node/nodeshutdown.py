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
   replaces it at once, elsewhere.

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
import logging
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilothouse.api import errors, meta, resources
from pilothouse.client import rest
from pilothouse.node import status as node_status
from pilothouse.node.podsync import container_state_from

if TYPE_CHECKING:
    from pilothouse.node.pod_workers import PodWorker

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
    except (errors.StatusError, OSError) as exc:
        log.warning("could not report the node shutting down: %s", exc)


def _disrupted(conditions: list[Obj], now: str) -> list[Obj]:
    out = []
    for c in conditions:
        if c.get("type") in ("Ready", "ContainersReady") and c.get("status") == "True":
            c = {**c, "status": "False", "reason": "PodFailed", "lastTransitionTime": now}
            c.pop("message", None)
        if c.get("type") != "DisruptionTarget":
            out.append(c)
    out.append(
        {
            "type": "DisruptionTarget",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": now,
            "reason": "TerminationByKubelet",
            "message": POD_MESSAGE,
        }
    )
    return out


async def kill_for_shutdown(worker: PodWorker, *, grace_period: float) -> None:
    """Stop ``worker``'s pod for the node's shutdown and report it Failed (see above).
    The pod object stays: its controller replaces it, its owner or the garbage
    collector deletes it."""
    pod = worker.pod
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return
    spec = pod.get("spec") or {}
    grace = min(float(spec.get("terminationGracePeriodSeconds", 30)), grace_period)
    syncer = worker.syncer
    sandbox = syncer.sandboxes.get(worker.uid)
    states: list[node_status.ContainerState] = []
    if syncer.prober is not None:
        syncer.prober.forget_pod(worker.uid)
    if sandbox is not None:
        specs = {c["name"]: c for c in spec.get("containers") or []}
        running = [
            s for s in await syncer.runtime.list_containers(sandbox.id) if s.state == "running"
        ]
        await asyncio.gather(
            *(
                syncer.stop_container(
                    pod, specs.get(s.name, {"name": s.name}), s.id, sandbox, grace
                )
                for s in running
            ),
            return_exceptions=True,
        )
        latest = {s.name: s for s in await syncer.runtime.list_containers(sandbox.id)}
        states = [
            container_state_from(latest.get(c["name"]), c, None)
            for c in spec.get("containers") or []
        ]
        await syncer.runtime.stop_pod_sandbox(sandbox.id)
    now = meta.now()
    status = node_status.pod_status(
        pod,
        containers=states,
        host_ip=syncer.node.address,
        pod_ip=(pod.get("status") or {}).get("podIP", ""),
        sandbox_ready=False,
        start_time=worker.started,
        now=now,
    )
    status["phase"] = "Failed"
    status["reason"] = POD_REASON
    status["message"] = POD_MESSAGE
    status["conditions"] = _disrupted(status.get("conditions") or [], now)
    worker.report(pod, status)
    log.info("pod %s/%s: stopped for the node's shutdown", pod["metadata"].get("namespace"),
             pod["metadata"]["name"])  # fmt: skip
