"""Pod workers: one task per pod, a small state machine (upstream's pod_workers.go).

``syncing`` → ``terminating`` → ``terminated``. While syncing, the worker runs
a pass (:mod:`~pilothouse.node.sync_pass`, on a
:class:`~pilothouse.node.podsync.PodSyncer`) whenever something changes — the
pod in the API, a container in the runtime (the PLEG relist) — or a back-off
ends, and reports the pod's status. When the pod is deleted (or finished for
good), it stops the containers within the grace period, releases everything
the pod used, and confirms the deletion in the API.

Each pod's worker is the only code acting on that pod, so passes never
overlap for one pod; different pods proceed concurrently. A worker is a
TRANSIENT child of the agent's ``pod-workers`` supervisor: it ends (and is
forgotten) when its pod is terminated; should it fail outside a pass, it is
restarted where its state machine stood.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pilothouse import supervisor as supervision
from pilothouse.api import errors, meta
from pilothouse.client import events, rest
from pilothouse.node import status as node_status
from pilothouse.node.eviction.manager import Eviction
from pilothouse.node.podsync import PodSyncer, container_state_from
from pilothouse.node.sync_pass import SyncPass, _latest_by_name

log = logging.getLogger(__name__)

Obj = dict[str, Any]
RESYNC_S = 10.0

SYNCING, TERMINATING, TERMINATED = "syncing", "terminating", "terminated"


class PodWorker(SyncPass):
    def __init__(
        self,
        pod: Obj,
        *,
        syncer: PodSyncer,
        report: Callable[[Obj, Obj], None],
        confirm_deleted: Callable[[Obj], Awaitable[None]],
        on_done: Callable[[str], None],
    ) -> None:
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.syncer = syncer
        self.report = report
        self.confirm_deleted = confirm_deleted
        self.on_done = on_done
        self.state = SYNCING
        self.gone = False  # the pod no longer exists in the API
        self._wake = asyncio.Event()
        self._wake.set()
        self.finished = asyncio.Event()
        self.started = syncer.start_times.setdefault(self.uid, meta.now())
        self._next_wait = RESYNC_S
        self._announced: dict[str, str] = {}  # container → the exit we announced a back-off for
        # Node-pressure eviction: what to do, and who waits for it; once done the pod's
        # containers never start again (it ends Failed/Evicted, as upstream).
        self.eviction: Eviction | None = None
        self._eviction_done: asyncio.Future[bool] | None = None
        self.evicted_status: Obj | None = None
        self.admitted = False  # admission is decided once, when the pod first arrives

    def update(self, pod: Obj | None) -> None:
        if pod is None:
            self.gone = True
        else:
            self.pod = pod
        self._wake.set()

    def poke(self) -> None:
        self._wake.set()

    def evict(self, eviction: Eviction) -> asyncio.Future[bool]:
        """Kill the pod's containers within ``eviction.grace_seconds`` and mark it Failed
        with reason Evicted; the future resolves once that is done."""
        if self._eviction_done is None or self._eviction_done.done():
            self._eviction_done = asyncio.get_running_loop().create_future()
        self.eviction = eviction
        self._wake.set()
        return self._eviction_done

    @property
    def name(self) -> str:
        return f"pod-worker-{self.uid}"

    async def run(self) -> None:
        """Drive the pod to its end (resumes where it stood after a restart)."""
        while self.state != TERMINATED:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_wait)
            self._wake.clear()
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except (rest.TransportError, errors.StatusError) as exc:
                # The API server away or refusing (a restart, an overload): expected, and
                # retried; as the kubelet's "Error syncing pod, skipping", no traceback.
                log.warning("pod %s: sync failed, retrying: %s", self._name(), exc)
                self._next_wait = 2.0
            except Exception:
                log.exception("pod %s: sync failed", self._name())
                self._next_wait = 2.0
        self.finished.set()
        self.on_done(self.uid)

    def _name(self) -> str:
        md = self.pod["metadata"]
        return f"{md.get('namespace')}/{md.get('name')}"

    def should_terminate(self) -> bool:
        """The pod is deleted (or being deleted): the worker is, or will be, releasing it."""
        return self.gone or bool(self.pod["metadata"].get("deletionTimestamp"))

    async def _step(self) -> None:
        if self.state == SYNCING:
            if self.should_terminate():
                self.state = TERMINATING
            elif self.eviction is not None and self.evicted_status is None:
                await self._evict()
                self._next_wait = RESYNC_S
                return
            elif self.evicted_status is not None:
                self.report(self.pod, self.evicted_status)  # nothing runs again
                self._next_wait = RESYNC_S
                return
            else:
                state = await self.sync_pass()
                self._next_wait = min(RESYNC_S, state.retry_in) if state.retry_in else RESYNC_S
                return
        if self.state == TERMINATING:
            await self.terminate()
            self.state = TERMINATED

    # --- evicted ------------------------------------------------------------------------
    async def _evict(self) -> None:
        """Kill every container (the grace period the eviction allows) and report the pod
        Failed/Evicted with its DisruptionTarget condition."""
        eviction = self.eviction
        assert eviction is not None
        syncer = self.syncer
        pod = self.pod
        sandbox = syncer.sandboxes.get(self.uid)
        if syncer.prober is not None:
            syncer.prober.forget_pod(self.uid)
        states: list[node_status.ContainerState] = []
        try:
            if sandbox is not None:
                running = [
                    s
                    for s in await syncer.runtime.list_containers(sandbox.id)
                    if s.state in ("running", "created")
                ]
                specs = {c["name"]: c for c in (pod.get("spec") or {}).get("containers") or []}
                await asyncio.gather(
                    *(
                        syncer.stop_container(
                            pod,
                            specs.get(s.name, {"name": s.name}),
                            s.id,
                            sandbox,
                            float(eviction.grace_seconds),
                        )
                        for s in running
                    ),
                    return_exceptions=True,
                )
                statuses = _latest_by_name(await syncer.runtime.list_containers(sandbox.id))
                for c in (pod.get("spec") or {}).get("containers") or []:
                    history = statuses.get(c["name"], [])
                    latest = history[-1] if history else None
                    prev = history[-2] if len(history) > 1 else None
                    states.append(container_state_from(latest, c, prev))
                await self._stop_sandbox()
            node = syncer.node
            status = node_status.pod_status(
                pod,
                containers=states,
                host_ip=node.address,
                pod_ip=(sandbox.ip or node.address) if sandbox is not None else "",
                sandbox_ready=False,
                start_time=self.started,
            )
            status.update(phase="Failed", reason=eviction.reason, message=eviction.message)
            if eviction.condition is not None:
                condition = {**eviction.condition, "lastProbeTime": None,
                             "lastTransitionTime": meta.now()}  # fmt: skip
                status["conditions"] = [
                    c for c in status["conditions"] if c.get("type") != condition["type"]
                ] + [condition]
            self.evicted_status = status
            self.report(pod, status)
        finally:
            if self._eviction_done is not None and not self._eviction_done.done():
                self._eviction_done.set_result(self.evicted_status is not None)

    # --- terminating --------------------------------------------------------------------
    async def terminate(self) -> None:
        pod = self.pod
        md = pod["metadata"]
        grace = md.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        grace = max(0, int(grace))
        syncer = self.syncer
        sandbox = syncer.sandboxes.get(self.uid)
        if syncer.prober is not None:
            syncer.prober.forget_pod(self.uid)
        if sandbox is not None:
            running = [
                s for s in await syncer.runtime.list_containers(sandbox.id) if s.state == "running"
            ]
            for s in running:
                syncer.recorder.event(
                    pod,
                    events.NORMAL,
                    "Killing",
                    f"Stopping container {s.name}",
                    field_path=f"spec.containers{{{s.name}}}",
                )
            specs = {c["name"]: c for c in (pod.get("spec") or {}).get("containers") or []}
            await asyncio.gather(
                *(
                    syncer.stop_container(
                        pod, specs.get(s.name, {"name": s.name}), s.id, sandbox, float(grace)
                    )
                    for s in running
                ),
                return_exceptions=True,
            )
            await syncer.runtime.stop_pod_sandbox(sandbox.id)
            await syncer.runtime.remove_pod_sandbox(sandbox.id)
            syncer.sandboxes.pop(self.uid, None)
        syncer.volumes.cleanup(self.uid)
        syncer.restart_backoff.forget_prefix(self.uid)
        syncer.tokens.forget(self.uid)
        syncer.start_times.pop(self.uid, None)
        if not self.gone:
            await self.confirm_deleted(pod)


class PodWorkers:
    """Starts, updates and forgets pod workers."""

    def __init__(
        self,
        *,
        syncer: PodSyncer,
        report: Callable[[Obj, Obj], None],
        confirm_deleted: Callable[[Obj], Awaitable[None]],
        supervisor: supervision.Supervisor,
    ) -> None:
        self.supervisor = supervisor
        self.syncer = syncer
        self.report = report
        self.confirm_deleted = confirm_deleted
        self.workers: dict[str, PodWorker] = {}

    def update(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is None:
            worker = PodWorker(
                pod,
                syncer=self.syncer,
                report=self.report,
                confirm_deleted=self.confirm_deleted,
                on_done=self._done,
            )
            self.workers[uid] = worker
            self.supervisor.start(worker.name, worker.run, policy=supervision.Policy.TRANSIENT)
        else:
            worker.update(pod)

    def remove(self, pod: Obj) -> None:
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is not None:
            worker.update(None)

    def poke(self, uid: str) -> None:
        worker = self.workers.get(uid)
        if worker is not None:
            worker.poke()

    async def evict(self, pod: Obj, eviction: Eviction) -> bool:
        """Evict a pod this node runs (the eviction manager's way to kill one)."""
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is None or worker.should_terminate():
            return False
        return await worker.evict(eviction)

    def cleaned_up(self, pod: Obj) -> bool:
        """Whether an evicted pod's containers are all stopped (or it is gone)."""
        worker = self.workers.get(pod["metadata"]["uid"])
        return worker is None or worker.evicted_status is not None

    def _done(self, uid: str) -> None:
        self.workers.pop(uid, None)

    async def stop(self, *, release_within: float = 5.0) -> None:
        """Stop every worker; running pods keep running (the next start adopts them).

        Workers already releasing a deleted pod get up to ``release_within``
        seconds to finish first: cut off half-way, they would leave the sandbox's
        mounts and cgroups behind until the agent starts again and collects
        them as orphans."""
        releasing = [
            asyncio.ensure_future(w.finished.wait())
            for w in self.workers.values()
            if not w.finished.is_set() and w.should_terminate()
        ]
        if releasing:
            log.info("stopping: letting %d pod termination(s) finish", len(releasing))
            try:
                await asyncio.wait(releasing, timeout=release_within)
            finally:
                for waiter in releasing:
                    waiter.cancel()
        for worker in list(self.workers.values()):
            await self.supervisor.stop_child(worker.name, timeout=release_within)
        self.workers.clear()


async def confirm_deletion(client: Any, pods_resource: Any, pod: Obj) -> None:
    md = pod["metadata"]
    try:
        await client.delete(
            pods_resource,
            md["name"],
            md.get("namespace", ""),
            grace_period_seconds=0,
            uid=md["uid"],
        )
    except errors.StatusError as exc:
        if not (errors.is_not_found(exc) or errors.is_conflict(exc)):
            raise
