"""DaemonSet rolling updates and history (upstream's ``daemon/update.go``).

* :func:`rolling_update` — without surge, delete old pods so that at most
  ``maxUnavailable`` nodes lack an available pod (the manage step then makes new
  ones); with ``maxSurge``, start new pods beside old available ones on up to
  ``maxSurge`` nodes and delete each old pod once its replacement is available.
* :func:`construct_history` — the revision matching the template now (made, or
  renumbered past the others), the older ones, duplicates merged.
* :func:`cleanup_history` — delete old revisions no pod uses beyond
  ``revisionHistoryLimit``.

Called from one DaemonSet's sync, which runs in one worker at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilothouse.api import errors, meta, selectors
from pilothouse.api.meta import Obj
from pilothouse.client import rest
from pilothouse.controllers import podcontrol, refmanager
from pilothouse.controllers.daemonset import util
from pilothouse.controllers.deployment import hash as template_hash
from pilothouse.controllers.history import revisions

if TYPE_CHECKING:
    from pilothouse.controllers.daemonset.controller import DaemonSetController


def find_updated_pods_on_node(
    ds: Obj, pods: list[Obj], hash_: str
) -> tuple[Obj | None, Obj | None, bool]:
    """(new pod, old pod, ok): at most one of each among the node's live pods; not ok
    when there are more (the manage step prunes them first)."""
    new: Obj | None = None
    old: Obj | None = None
    generation = util.template_generation(ds)
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        if util.is_pod_updated(pod, hash_, generation):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def desired_counts(
    ds: Obj, nodes: list[Obj], node_to_pods: dict[str, list[Obj]], placement: util.Placement
) -> tuple[int, int, int]:
    """(maxSurge, maxUnavailable, desired) for the nodes that should run a pod; those
    nodes get an (empty) entry in ``node_to_pods``."""
    desired = 0
    for node in nodes:
        if not placement.decide(node)[0]:
            continue
        desired += 1
        node_to_pods.setdefault(node["metadata"]["name"], [])
    max_unavailable = util.unavailable_count(ds, desired)
    max_surge = util.surge_count(ds, desired)
    if desired > 0 and max_unavailable == 0 and max_surge == 0:
        max_unavailable = 1  # an impossible configuration: accept unavailability
    return max_surge, max_unavailable, desired


async def rolling_update(dc: DaemonSetController, ds: Obj, nodes: list[Obj], hash_: str) -> None:
    node_to_pods = await dc.nodes_to_daemon_pods(ds)
    placement = dc.placement(ds)
    max_surge, max_unavailable, desired = desired_counts(ds, nodes, node_to_pods, placement)
    min_ready = util.min_ready_seconds(ds)
    now = dc.clock.now()

    def available(pod: Obj) -> bool:
        return podcontrol.pod_available(pod, min_ready, now)

    if max_surge == 0:
        # Deleted pods do not count as unavailable, so updates go on while nodes are down.
        unavailable = 0
        replacements: list[str] = []
        candidates: list[str] = []
        for pods in node_to_pods.values():
            new, old, ok = find_updated_pods_on_node(ds, pods, hash_)
            if not ok or (old is None) == (new is None):
                unavailable += 1  # the manage step is creating or pruning here
                continue
            if new is not None:
                if not available(new):
                    unavailable += 1
                continue
            assert old is not None
            if not available(old):
                replacements.append(util.name(old))  # not serving anyway: replace it
                unavailable += 1
            elif unavailable < max_unavailable:
                candidates.append(util.name(old))
        room = max(0, max_unavailable - unavailable)
        await dc.sync_nodes(ds, replacements + candidates[:room], [], hash_)
        return

    to_delete: list[str] = []
    should_not_run: list[str] = []
    candidate_nodes: list[str] = []
    allowed_nodes: list[str] = []
    surging = 0
    available_count = 0
    by_name = {n["metadata"]["name"]: n for n in nodes}
    for node_name, pods in node_to_pods.items():
        new, old, ok = find_updated_pods_on_node(ds, pods, hash_)
        if not ok:
            surging += 1  # the manage step prunes this node first
            continue
        if old is not None:
            available_count += 1 if available(old) else 0
        elif new is not None:
            available_count += 1 if available(new) else 0
        if old is None:
            continue  # nothing to replace here
        if new is None:
            node = by_name.get(node_name)
            should_run = node is not None and placement.decide(node)[0]
            if not available(old):
                if not should_run:
                    to_delete.append(util.name(old))
                else:
                    allowed_nodes.append(node_name)
            elif not should_run:
                should_not_run.append(util.name(old))
            elif surging < max_surge:
                candidate_nodes.append(node_name)
            continue
        if not available(new):
            surging += 1  # waiting for the new pod here
            continue
        to_delete.append(util.name(old))  # the new pod serves: the old one goes
    # With surge, users expect full availability: a pod on a node that should no longer
    # run one goes only once enough pods elsewhere are available.
    deletable = min(available_count - desired, len(should_not_run))
    if deletable > 0:
        to_delete += should_not_run[:deletable]
    room = min(max(0, max_surge - surging), len(candidate_nodes))
    await dc.sync_nodes(ds, to_delete, allowed_nodes + candidate_nodes[:room], hash_)


# --- history ------------------------------------------------------------------------------
def matches(ds: Obj, revision: Obj) -> bool:
    """Whether the revision records the set's template now (``Match``)."""
    return revisions.data_bytes({"data": revisions.template_patch(ds)}) == revisions.data_bytes(
        revision
    )


async def controlled_histories(dc: DaemonSetController, ds: Obj) -> list[Obj]:
    selector = selectors.from_label_selector_dict(util.spec(ds).get("selector"))
    manager = refmanager.ControllerRefManager(
        dc.client,
        controller=ds,
        selector=selector,
        resource=dc.revision_resource,
        recheck=refmanager.recheck_deletion(dc.client, dc.ds_resource, ds),
    )
    return await dc.history.claim_all(ds, manager)


async def construct_history(dc: DaemonSetController, ds: Obj) -> tuple[Obj, list[Obj]]:
    """(current revision, old revisions)."""
    current: list[Obj] = []
    old: list[Obj] = []
    for history in await controlled_histories(dc, ds):
        labels = history["metadata"].get("labels") or {}
        if util.REVISION_LABEL not in labels:
            # Label it with its name rather than a hash: names never collide.
            updated = meta.deep_copy(history)
            updated["metadata"].setdefault("labels", {})[util.REVISION_LABEL] = util.name(history)
            history = await dc.client.update(dc.revision_resource, updated)
        (current if matches(ds, history) else old).append(history)
    next_number = revisions.max_revision(old) + 1
    if not current:
        return await snapshot(dc, ds, next_number), old
    cur = await dedup_current(dc, ds, current)
    if revisions.number(cur) < next_number:
        updated = meta.deep_copy(cur)
        updated["revision"] = next_number
        cur = await dc.client.update(dc.revision_resource, updated)
    return cur, old


async def snapshot(dc: DaemonSetController, ds: Obj, number: int) -> Obj:
    """Record the template as revision ``number``, named by the pod-template hash."""
    collision_count = util.status(ds).get("collisionCount")
    template = util.spec(ds).get("template") or {}
    hash_ = template_hash.compute_hash(
        template, None if collision_count is None else int(collision_count)
    )
    labels = {
        **((template.get("metadata") or {}).get("labels") or {}),
        util.REVISION_LABEL: hash_,
    }
    revision = revisions.new_revision(
        ds,
        data=revisions.template_patch(ds),
        revision=number,
        labels=labels,
        name=f"{util.name(ds)}-{hash_}",
        annotations=ds["metadata"].get("annotations") or {},
    )
    try:
        created: Obj = await dc.client.create(dc.revision_resource, revision, util.namespace(ds))
        return created
    except errors.StatusError as exc:
        if not errors.is_already_exists(exc):
            raise
        outer = exc
    existing = await dc.client.get(
        dc.revision_resource, revision["metadata"]["name"], util.namespace(ds)
    )
    if matches(ds, existing):
        return existing
    # A hash collision: count it (from the set as it is now, so a stale count is not
    # bumped twice) and try again with the new count.
    fresh = await dc.client.get(dc.ds_resource, util.name(ds), util.namespace(ds))
    if util.status(fresh).get("collisionCount") != collision_count:
        raise RuntimeError(
            f"found a stale collision count ({collision_count}, expected "
            f"{util.status(fresh).get('collisionCount')}) of DaemonSet {util.name(ds)!r} while "
            "processing; will retry until it is updated"
        )
    fresh.setdefault("status", {})["collisionCount"] = int(collision_count or 0) + 1
    await dc.client.update_status(dc.ds_resource, fresh)
    raise outer


async def dedup_current(dc: DaemonSetController, ds: Obj, current: list[Obj]) -> Obj:
    """Keep the highest-numbered of several revisions of the same template; relabel the
    pods of the others to it and delete them."""
    if len(current) == 1:
        return current[0]
    keep = current[0]
    for cur in current:
        if revisions.number(cur) >= revisions.number(keep):
            keep = cur
    keep_hash = (keep["metadata"].get("labels") or {}).get(util.REVISION_LABEL, "")
    for cur in current:
        if cur is keep:
            continue
        for pod in await dc.daemon_pods(ds):
            if (pod["metadata"].get("labels") or {}).get(util.REVISION_LABEL) != keep_hash:
                body = {"metadata": {"labels": {util.REVISION_LABEL: keep_hash}}}
                await dc.client.patch(
                    dc.pod_resource,
                    util.name(pod),
                    body,
                    util.namespace(ds),
                    patch_type=rest.STRATEGIC_PATCH,
                )
        await dc.history.delete(cur)
    return keep


async def cleanup_history(dc: DaemonSetController, ds: Obj, old: list[Obj]) -> None:
    limit = util.spec(ds).get("revisionHistoryLimit")
    if limit is None or len(old) <= int(limit):
        return
    node_to_pods = await dc.nodes_to_daemon_pods(ds, include_deleted_terminal=True)
    live = {
        str((p["metadata"].get("labels") or {}).get(util.REVISION_LABEL))
        for pods in node_to_pods.values()
        for p in pods
        if (p["metadata"].get("labels") or {}).get(util.REVISION_LABEL)
    }
    for revision in revisions.history_to_delete(
        revisions.sort_revisions(old),
        live=live,
        limit=int(limit),
        key=lambda r: str((r["metadata"].get("labels") or {}).get(util.REVISION_LABEL, "")),
        live_counts=True,
    ):
        await dc.history.delete(revision)
