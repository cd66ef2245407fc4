"""A DaemonSet's status (upstream's ``updateDaemonSetStatus`` and ``storeDaemonSetStatus``).

Counted per node that should run a pod: desired, scheduled, ready and available (the
node's oldest pod), updated (at the current revision); pods on nodes that should not
run one are misscheduled. Written only when a count changed or a new generation was
observed; with ``minReadySeconds`` the set is looked at again once pods can have
become available.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilothouse.api import errors
from pilothouse.api.meta import Obj
from pilothouse.controllers import podcontrol
from pilothouse.controllers.daemonset import util

if TYPE_CHECKING:
    from pilothouse.controllers.daemonset.controller import DaemonSetController

STATUS_UPDATE_RETRIES = 1

# Written even when zero (no omitempty upstream); the rest only when non-zero.
_ALWAYS = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady")
_COUNTS = (*_ALWAYS, "updatedNumberScheduled", "numberAvailable", "numberUnavailable")


def compute(
    ds: Obj,
    nodes: list[Obj],
    node_to_pods: dict[str, list[Obj]],
    hash_: str,
    now: float,
    placement: util.Placement,
) -> dict[str, int]:
    counts = dict.fromkeys(_COUNTS, 0)
    min_ready = util.min_ready_seconds(ds)
    generation = util.template_generation(ds)
    for node in nodes:
        should_run, _ = placement.decide(node)
        pods = node_to_pods.get(node["metadata"]["name"]) or []
        if not should_run:
            if pods:
                counts["numberMisscheduled"] += 1
            continue
        counts["desiredNumberScheduled"] += 1
        if not pods:
            continue
        counts["currentNumberScheduled"] += 1
        pod = util.by_creation_and_phase(pods)[0]
        if podcontrol.pod_ready(pod):
            counts["numberReady"] += 1
            if podcontrol.pod_available(pod, min_ready, now):
                counts["numberAvailable"] += 1
        if util.is_pod_updated(pod, hash_, generation):
            counts["updatedNumberScheduled"] += 1
    counts["numberUnavailable"] = counts["desiredNumberScheduled"] - counts["numberAvailable"]
    return counts


def _as_status(old: Obj, counts: dict[str, int], observed_generation: int | None) -> Obj:
    out: Obj = {}
    generation = observed_generation
    if generation is None:
        generation = int(old.get("observedGeneration") or 0)
    if generation:
        out["observedGeneration"] = generation
    for key in _COUNTS:
        if counts[key] or key in _ALWAYS:
            out[key] = counts[key]
    if old.get("collisionCount") is not None:
        out["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        out["conditions"] = old["conditions"]
    return out


async def update_status(
    dc: DaemonSetController, ds: Obj, nodes: list[Obj], hash_: str, *, observed: bool
) -> None:
    node_to_pods = await dc.nodes_to_daemon_pods(ds)
    counts = compute(ds, nodes, node_to_pods, hash_, dc.clock.now(), dc.placement(ds))
    old = util.status(ds)
    generation = int(ds["metadata"].get("generation") or 0)
    unchanged = all(int(old.get(k) or 0) == v for k, v in counts.items())
    if unchanged and int(old.get("observedGeneration") or 0) >= generation:
        pass
    else:
        target = ds
        for attempt in range(STATUS_UPDATE_RETRIES + 1):
            updated = dict(target)
            updated["status"] = _as_status(
                util.status(target), counts, generation if observed else None
            )
            try:
                await dc.client.update_status(dc.ds_resource, updated)
                break
            except errors.StatusError as exc:
                if not errors.is_conflict(exc) or attempt == STATUS_UPDATE_RETRIES:
                    raise
            target = await dc.client.get(dc.ds_resource, util.name(ds), util.namespace(ds))
    min_ready = util.min_ready_seconds(ds)
    if min_ready > 0 and counts["numberReady"] != counts["numberAvailable"]:
        dc.enqueue_after(ds, float(min_ready))
