"""The Pod table: READY, STATUS, RESTARTS as ``kubectl get pods`` shows them.

A port of upstream's ``printPod``. STATUS starts from the phase (or the pod's
``status.reason``), becomes ``SchedulingGated`` while gated, ``Init:…`` while an
init container has not finished (``Init:1/3``, ``Init:CrashLoopBackOff``,
``Init:Error``, ``Init:ExitCode:2``, ``Init:Signal:9``), then the reason of the
first container that is waiting or terminated (containers are read last to first
so the first one wins), ``Running``/``NotReady`` when a finished container sits
beside a running one, and ``Terminating`` (or ``Unknown`` for ``NodeLost``) while
a non-terminal pod is being deleted. Restartable init containers (sidecars)
count toward READY and RESTARTS once the pod has initialized.
"""

from __future__ import annotations

from typing import Any

from pilothouse.apiserver.table import docs, timefmt
from pilothouse.apiserver.table.model import Cells, Object, Printer, column

COLUMNS = (
    column("Name", "string", docs.NAME, format_="name"),
    column("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    column("Status", "string", "The aggregate status of the containers in this pod."),
    column(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the "
        "last container in this pod has restarted.",
    ),
    column("Age", "string", docs.CREATION_TIMESTAMP),
    column("IP", "string", docs.POD_IP, priority=1),
    column("Node", "string", docs.POD_NODE_NAME, priority=1),
    column("Nominated Node", "string", docs.POD_NOMINATED_NODE_NAME, priority=1),
    column("Readiness Gates", "string", docs.POD_READINESS_GATES, priority=1),
)

_SUCCEEDED = [
    {
        "type": "Completed",
        "status": "True",
        "reason": "Succeeded",
        "message": "The pod has completed successfully.",
    }
]
_FAILED = [
    {"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}
]
_EMPTY: dict[str, Any] = {}


def _last_finished(status: dict[str, Any]) -> float | None:
    """When the container's previous run ended (``lastState.terminated.finishedAt``)."""
    last = status.get("lastState")
    if not last:
        return None
    terminated = last.get("terminated")
    if terminated is None:
        return None
    return timefmt.parse_time(terminated.get("finishedAt"))


def _later(candidate: float | None, current: float | None) -> float | None:
    if candidate is not None and (current is None or candidate > current):
        return candidate
    return current


def _terminated_reason(terminated: dict[str, Any], prefix: str) -> str:
    reason = terminated.get("reason") or ""
    if reason:
        return prefix + reason
    signal = terminated.get("signal") or 0
    if signal:
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{terminated.get('exitCode') or 0}"


def _first_condition_true(conditions: list[dict[str, Any]], type_: str) -> bool:
    for condition in conditions:
        if condition.get("type") == type_:
            return bool(condition.get("status") == "True")
    return False


def _any_condition_true(conditions: list[dict[str, Any]], type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions)


def _readiness_gates(gates: list[dict[str, Any]], conditions: list[dict[str, Any]]) -> str:
    if not gates:
        return "<none>"
    true_count = 0
    for gate in gates:
        wanted = gate.get("conditionType")
        for condition in conditions:
            if condition.get("type") == wanted:
                if condition.get("status") == "True":
                    true_count += 1
                break
    return f"{true_count}/{len(gates)}"


def pod_cells(pod: Object, now: float) -> Cells:
    """The cells of one pod's row (all columns, wide ones included)."""
    meta = pod.get("metadata") or _EMPTY
    spec = pod.get("spec") or _EMPTY
    status = pod.get("status") or _EMPTY
    conditions = status.get("conditions") or []
    init_specs = spec.get("initContainers") or []

    total = len(spec.get("containers") or ())
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for condition in conditions:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    # Upstream keys init containers by name (the last of a duplicated name wins).
    restartable: dict[str, bool] = {}
    for container in init_specs:
        is_sidecar = container.get("restartPolicy") == "Always"
        restartable[container.get("name", "")] = is_sidecar
        if is_sidecar:
            total += 1

    restarts = 0
    sidecar_restarts = 0
    ready = 0
    last_restart: float | None = None
    last_sidecar_restart: float | None = None
    initializing = False
    for index, cs in enumerate(status.get("initContainerStatuses") or ()):
        count = cs.get("restartCount") or 0
        finished = _last_finished(cs)
        restarts += count
        last_restart = _later(finished, last_restart)
        is_sidecar = restartable.get(cs.get("name", ""), False)
        if is_sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(finished, last_sidecar_restart)
        state = cs.get("state") or _EMPTY
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated is not None and (terminated.get("exitCode") or 0) == 0:
            continue
        if is_sidecar and cs.get("started") is True:
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            reason = _terminated_reason(terminated, "Init:")
        elif (
            waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing"
        ):
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _first_condition_true(conditions, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or ()):
            restarts += cs.get("restartCount") or 0
            last_restart = _later(_last_finished(cs), last_restart)
            state = cs.get("state") or _EMPTY
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None:
                reason = _terminated_reason(terminated, "")
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # A finished container beside a running one: the pod is still running.
        if reason == "Completed" and has_running:
            reason = "Running" if _any_condition_true(conditions, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") is not None:
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Failed", "Succeeded"):
            reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({timefmt.human_duration(now - last_restart)} ago)"

    pod_ips = status.get("podIPs")
    pod_ip = (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or "<none>"
    return [
        meta.get("name", ""),
        f"{ready}/{total}",
        reason,
        restarts_text,
        timefmt.since(meta.get("creationTimestamp"), now),
        pod_ip,
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        _readiness_gates(spec.get("readinessGates") or [], conditions),
    ]


def pod_conditions(pod: Object) -> list[dict[str, str]] | None:
    """Row conditions: ``Completed`` for pods that succeeded or failed."""
    phase = (pod.get("status") or _EMPTY).get("phase")
    if phase == "Succeeded":
        return _SUCCEEDED
    if phase == "Failed":
        return _FAILED
    return None


POD = Printer(COLUMNS, pod_cells, pod_conditions)

PRINTERS = {("", "Pod"): POD}
