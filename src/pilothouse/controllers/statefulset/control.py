"""One StatefulSet sync step (upstream's ``stateful_set_control.go``).

From the set, its pods and its history: find (or make) the current and update
revisions, then take the next step —

* **OrderedReady**: create the lowest missing ordinal and wait for it to be Running,
  Ready and available before going on; remove condemned pods (ordinals beyond
  ``replicas``) from the highest, one at a time, only when every other pod is healthy;
* **Parallel**: create and remove all at once (in slow-start batches);
* then **RollingUpdate**: delete pods not at the update revision from the highest
  ordinal down to ``partition``, at most ``maxUnavailable`` unavailable at a time — the
  next sync recreates them at the update revision; **OnDelete** waits for users to
  delete pods.

Then write the status and trim the history to ``revisionHistoryLimit``. The caller
runs one set's sync at a time; Parallel pods of one set are handled concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pilothouse.api import errors, meta, selectors
from pilothouse.api.meta import Obj
from pilothouse.api.resources import Resource
from pilothouse.client import rest
from pilothouse.client.clock import Clock
from pilothouse.controllers.history import client as history_client
from pilothouse.controllers.history import revisions
from pilothouse.controllers.statefulset import podcontrol, utils

MAX_BATCH_SIZE = 500


class StatefulSetControl:
    def __init__(
        self,
        *,
        client: rest.Client,
        sets: Resource,
        pod_control: podcontrol.StatefulPodControl,
        history: history_client.History,
        clock: Clock,
    ) -> None:
        self.client = client
        self.sets = sets
        self.pod_control = pod_control
        self.history = history
        self.clock = clock

    # --- revisions --------------------------------------------------------------------
    def list_revisions(self, sts: Obj) -> list[Obj]:
        selector = selectors.from_label_selector_dict(utils.spec(sts).get("selector"))
        return self.history.list_for(sts, selector)

    async def adopt_orphan_revisions(self, sts: Obj, orphans: list[Obj]) -> None:
        for rev in orphans:
            await self.history.adopt(sts, rev)

    async def update_stateful_set(self, sts: Obj, pods: list[Obj]) -> Obj | None:
        """Act on ``sts`` and return the status written (None when the revisions could
        not be worked out)."""
        sts = meta.deep_copy(sts)
        history = revisions.sort_revisions(self.list_revisions(sts))
        current: Obj | None = None
        update: Obj | None = None
        status: Obj | None = None
        try:
            current, update, status = await self._perform_update(sts, pods, history)
        finally:
            await self._truncate_history(sts, pods, history, current, update)
        return status

    async def _perform_update(
        self, sts: Obj, pods: list[Obj], history: list[Obj]
    ) -> tuple[Obj, Obj, Obj]:
        current, update, collision_count = await self._revisions(sts, history)
        status, error = await self._update(sts, current, update, collision_count, pods)
        try:
            await self._write_status(sts, status)
        except errors.StatusError:
            if error is None:
                raise
        if error is not None:
            raise error
        return current, update, status

    async def _revisions(self, sts: Obj, history: list[Obj]) -> tuple[Obj, Obj, int]:
        """(current, update, collision count) — ``getStatefulSetRevisions``: the update
        revision is the template now, made or renumbered when needed; the current one
        is ``status.currentRevision``, or the update revision for a new history."""
        collision_count = int(utils.status(sts).get("collisionCount") or 0)
        template_labels = ((utils.spec(sts).get("template") or {}).get("metadata") or {}).get(
            "labels"
        ) or {}
        update = revisions.new_hashed_revision(
            sts,
            revision=revisions.next_revision(history),
            collision_count=collision_count,
            template_labels=template_labels,
        )
        equal = revisions.find_equal_revisions(history, update)
        if equal and revisions.equal_revision(history[-1], equal[-1]):
            update = history[-1]  # unchanged since the latest revision
        elif equal:
            # An older template again (a rollback): that revision becomes the latest.
            update = await self.history.update_revision(equal[-1], revisions.number(update))
        else:
            update, collision_count = await self.history.create(sts, update, collision_count)
        current_name = utils.status(sts).get("currentRevision")
        current = next((r for r in history if r["metadata"]["name"] == current_name), update)
        return current, update, collision_count

    async def _truncate_history(
        self,
        sts: Obj,
        pods: list[Obj],
        history: list[Obj],
        current: Obj | None,
        update: Obj | None,
    ) -> None:
        live = {utils.pod_revision(p) for p in pods}
        live |= {r["metadata"]["name"] for r in (current, update) if r is not None}
        limit = utils.spec(sts).get("revisionHistoryLimit")
        for rev in revisions.history_to_delete(
            history, live=live, limit=None if limit is None else int(limit)
        ):
            await self.history.delete(rev)

    # --- the step -------------------------------------------------------------------
    async def _update(
        self, sts: Obj, current: Obj, update: Obj, collision_count: int, pods: list[Obj]
    ) -> tuple[Obj, BaseException | None]:
        """``updateStatefulSet``: the status to record and the error that stopped the
        step, if any."""
        current_set = revisions.apply_revision(sts, current)
        update_set = revisions.apply_revision(sts, update)
        min_ready = utils.min_ready_seconds(sts)
        now = self.clock.now()
        status: Obj = {
            "observedGeneration": int(sts["metadata"].get("generation") or 0),
            "currentRevision": current["metadata"]["name"],
            "updateRevision": update["metadata"]["name"],
            "collisionCount": collision_count,
        }
        self._count(status, min_ready, now, current, update, pods)

        count = utils.replicas(sts)
        start = utils.start_ordinal(sts)
        replicas: list[Obj | None] = [None] * count
        condemned: list[Obj] = []
        for pod in pods:
            if utils.in_ordinal_range(pod, sts):
                replicas[utils.ordinal_of(pod) - start] = pod
            elif utils.ordinal_of(pod) >= 0:
                condemned.append(pod)
        live: list[Obj] = [
            pod
            if pod is not None
            else utils.new_versioned_pod(
                current_set,
                update_set,
                current["metadata"]["name"],
                update["metadata"]["name"],
                start + i,
            )
            for i, pod in enumerate(replicas)
        ]
        condemned.sort(key=utils.ordinal_of, reverse=True)

        first_unavailable: Obj | None = None
        for pod in [*live, *reversed(condemned)]:
            if utils.is_unavailable(pod, min_ready, now):
                first_unavailable = pod
                break

        if sts["metadata"].get("deletionTimestamp"):
            return status, None
        monotonic = not utils.allows_burst(sts)

        def recount() -> None:
            self._count(status, min_ready, now, current, update, live, condemned)

        async def process_replica(i: int) -> bool:
            return await self._process_replica(sts, update_set, monotonic, live, i, min_ready)

        stop, error = await _run_for_all(len(live), process_replica, monotonic)
        if stop or error is not None:
            recount()
            return status, error

        async def fix_claims(i: int) -> bool:
            pod = condemned[i]
            if not await self.pod_control.claims_match_retention(update_set, pod):
                await self.pod_control.update_claims_for_retention(update_set, pod)
            return False

        stop, error = await _run_for_all(len(condemned), fix_claims, monotonic)
        if stop or error is not None:
            recount()
            return status, error

        async def process_condemned(i: int) -> bool:
            return await self._process_condemned(
                sts, first_unavailable, monotonic, condemned, i, min_ready
            )

        stop, error = await _run_for_all(len(condemned), process_condemned, monotonic)
        recount()
        if stop or error is not None:
            return status, error
        if utils.strategy_type(sts) == "OnDelete":
            return status, None
        error = await self._rolling_update(sts, live, update, status, min_ready, now)
        return status, error

    def _count(
        self,
        status: Obj,
        min_ready: int,
        now: float,
        current: Obj,
        update: Obj,
        *pod_lists: list[Obj],
    ) -> None:
        counts = dict.fromkeys(
            (
                "replicas",
                "readyReplicas",
                "availableReplicas",
                "currentReplicas",
                "updatedReplicas",
            ),
            0,
        )
        for pods in pod_lists:
            for pod in pods:
                created = utils.is_created(pod)
                if created:
                    counts["replicas"] += 1
                if utils.is_running_and_ready(pod):
                    counts["readyReplicas"] += 1
                    if utils.is_running_and_available(pod, min_ready, now):
                        counts["availableReplicas"] += 1
                if created and not utils.is_terminating(pod):
                    revision = utils.pod_revision(pod)
                    if revision == current["metadata"]["name"]:
                        counts["currentReplicas"] += 1
                    if revision == update["metadata"]["name"]:
                        counts["updatedReplicas"] += 1
        status.update(counts)

    async def _process_replica(
        self, sts: Obj, update_set: Obj, monotonic: bool, live: list[Obj], i: int, min_ready: int
    ) -> bool:
        """One ordinal in range: replace a finished pod, create a missing one, wait for a
        starting one (monotonic), fix identity and storage. True stops the pass."""
        pod = live[i]
        if utils.is_failed(pod) or utils.is_succeeded(pod):
            # A pod that ran to completion (evicted, node rebooted) is replaced whatever
            # its exit code; the new one is made once this one is gone.
            if not utils.is_terminating(pod):
                await self.pod_control.delete_pod(sts, pod)
            return True
        if not utils.is_created(pod):
            if self.pod_control.claim_is_stale(sts, pod):
                return True  # the garbage collector is removing the old claim first
            await self.pod_control.create_pod(sts, pod)
            if monotonic:
                return True
        elif utils.is_pending(pod):
            await self.pod_control.create_missing_claims(sts, pod)
        if utils.is_terminating(pod) and monotonic:
            return True  # wait for graceful deletion before going on
        now = self.clock.now()
        if monotonic and (
            not utils.is_running_and_ready(pod)
            or not utils.is_running_and_available(pod, min_ready, now)
        ):
            return True  # every predecessor must be running, ready and available
        if not utils.is_created(pod):
            return False
        try:
            retention_ok = await self.pod_control.claims_match_retention(update_set, pod)
        except podcontrol.VolumeClaimError:
            retention_ok = True  # expected while the pod is being updated otherwise
        if utils.identity_matches(sts, pod) and utils.storage_matches(sts, pod) and retention_ok:
            return False
        await self.pod_control.update_pod(update_set, pod)
        return False

    async def _process_condemned(
        self,
        sts: Obj,
        first_unavailable: Obj | None,
        monotonic: bool,
        condemned: list[Obj],
        i: int,
        min_ready: int,
    ) -> bool:
        pod = condemned[i]
        if utils.is_terminating(pod):
            return monotonic  # ordered scale-down waits for it to go
        if monotonic and pod is not first_unavailable:
            now = self.clock.now()
            if not utils.is_running_and_ready(pod) or not utils.is_running_and_available(
                pod, min_ready, now
            ):
                return True  # only the first unhealthy pod may go while others are unhealthy
        await self.pod_control.delete_pod(sts, pod)
        return True

    async def _rolling_update(
        self,
        sts: Obj,
        live: list[Obj],
        update: Obj,
        status: Obj,
        min_ready: int,
        now: float,
    ) -> BaseException | None:
        """Delete up to ``maxUnavailable`` (less those already unavailable) pods not at the
        update revision, from the highest ordinal down to the partition."""
        update_min = utils.partition(sts)
        max_unavailable = utils.max_unavailable(sts)
        unavailable = sum(1 for p in live if utils.is_unavailable(p, min_ready, now))
        if unavailable > max_unavailable:
            return None
        budget = max_unavailable - unavailable
        update_name = update["metadata"]["name"]
        for target in range(len(live) - 1, update_min - 1, -1):
            if budget <= 0:
                break
            pod = live[target]
            if utils.pod_revision(pod) == update_name or utils.is_terminating(pod):
                continue
            try:
                await self.pod_control.delete_pod(sts, pod)
            except errors.StatusError as exc:
                if not errors.is_not_found(exc):
                    return exc
            budget -= 1
            status["currentReplicas"] = int(status.get("currentReplicas") or 0) - 1
        return None

    # --- status -----------------------------------------------------------------------
    async def _write_status(self, sts: Obj, status: Obj) -> None:
        """``updateStatefulSetStatus``: complete a finished rolling update, and write
        only when something changed, retrying on conflicts."""
        utils.complete_rolling_update(sts, status)
        if not utils.inconsistent_status(sts, status):
            return
        target = sts
        for attempt in range(podcontrol.MAX_UPDATE_RETRIES + 1):
            updated = dict(target)
            updated["status"] = utils.status_for_api(status, utils.status(target))
            try:
                await self.client.update_status(self.sets, updated)
                return
            except errors.StatusError as exc:
                if not errors.is_conflict(exc) or attempt == podcontrol.MAX_UPDATE_RETRIES:
                    raise
            target = await self.client.get(self.sets, utils.name(sts), utils.namespace(sts))


async def _run_for_all(
    count: int, fn: Callable[[int], Awaitable[bool]], monotonic: bool
) -> tuple[bool, BaseException | None]:
    """Ordered: one at a time until one says stop. Parallel: slow-start batches of all."""
    if monotonic:
        for i in range(count):
            try:
                if await fn(i):
                    return True, None
            except (errors.StatusError, podcontrol.VolumeClaimError) as exc:
                return True, exc
        return False, None
    done = 0
    batch = min(count, 1)
    while batch > 0:
        results: list[Any] = await asyncio.gather(
            *(fn(i) for i in range(done, done + batch)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            if not isinstance(failure, errors.StatusError | podcontrol.VolumeClaimError):
                raise failure
        if failures:
            return True, failures[0]
        done += batch
        batch = min(2 * batch, count - done, MAX_BATCH_SIZE)
    return False, None
