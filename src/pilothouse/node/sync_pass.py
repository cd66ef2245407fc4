"""One sync pass of a pod worker: what it does for a pod that should be running.

A pass (upstream's SyncPod) prepares the pod's volumes, admits the pod once, ensures
its sandbox, then walks the init containers in order and the app containers, starting
what the restart policy and the crash-loop back-off allow, and reports the pod's status
from what the runtime has. A pod the node refuses to admit is reported Failed at once.

:class:`SyncPass` holds these methods for :class:`~pilothouse.node.pod_workers.PodWorker`,
which owns the state machine around them (syncing → terminating → terminated). A pass
runs only inside its pod's worker, so passes never overlap for one pod; different pods'
passes run concurrently on the event loop. Volume preparation blocks (files, mounts,
fsGroup ownership), so it runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from pilothouse.client import events
from pilothouse.node import claim_volumes, containergc
from pilothouse.node import containers as containerconf
from pilothouse.node import status as node_status
from pilothouse.node.podsync import PodState, PodSyncer, container_state_from
from pilothouse.node.runtime import protocol

Obj = dict[str, Any]


def _latest_by_name(
    statuses: list[protocol.ContainerStatus],
) -> dict[str, list[protocol.ContainerStatus]]:
    out: dict[str, list[protocol.ContainerStatus]] = {}
    for s in sorted(statuses, key=lambda s: (s.name, s.attempt)):
        out.setdefault(s.name, []).append(s)
    return out


def _go_duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    m, s = divmod(seconds, 60)
    return f"{m}m{s}s"


class SyncPass:
    """The syncing state of a :class:`~pilothouse.node.pod_workers.PodWorker`: the pass
    itself and the per-container steps it takes (start, back-off, probes, status)."""

    # Set by the worker (see PodWorker.__init__); read and written only by its own task.
    pod: Obj
    uid: str
    syncer: PodSyncer
    report: Callable[[Obj, Obj], None]
    started: str
    admitted: bool
    evicted_status: Obj | None
    _announced: dict[str, str]

    async def sync_pass(self) -> PodState:
        pod = self.pod
        syncer = self.syncer
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy", "Always")
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            # A finished pod never runs again; release its network and cgroup.
            await self._stop_sandbox()
            return PodState(None)
        lookups = await syncer.lookups(pod)
        try:
            # Files, mounts and fsGroup ownership block: off the event loop.
            prepared = await asyncio.to_thread(syncer.volumes.prepare, pod, lookups)
        except claim_volumes.VolumeNotReady as exc:
            syncer.recorder.event(pod, events.WARNING, "FailedMount", str(exc))
            return self._report_waiting("", "ContainerCreating", None, retry_in=2.0)
        except containerconf.ConfigError as exc:
            return self._report_waiting(str(exc), "CreateContainerConfigError", None)
        if not self.admitted and self.uid not in syncer.sandboxes and syncer.admit is not None:
            admitted, reason, message = syncer.admit(pod)
            if not admitted:
                self.evicted_status = self._rejected(reason, message)
                self.report(pod, self.evicted_status)
                return PodState(None)
        self.admitted = True
        sandbox = await syncer.ensure_sandbox(pod)
        service_env = syncer.service_env(pod)
        statuses = _latest_by_name(await syncer.runtime.list_containers(sandbox.id))
        wall = time.time()
        retry: list[float] = []

        init_states: list[node_status.ContainerState] = []
        init_done = True
        failed_for_good = False
        for ic in spec.get("initContainers") or []:
            history = statuses.get(ic["name"], [])
            latest = history[-1] if history else None
            prev = history[-2] if len(history) > 1 else None
            if latest is not None and latest.state == "exited" and latest.exit_code == 0:
                init_states.append(container_state_from(latest, ic, prev))
                continue
            init_done = False
            if latest is not None and latest.state in ("running", "created"):
                init_states.append(container_state_from(latest, ic, prev))
                break
            if latest is not None and latest.state == "exited":
                if policy == "Never":
                    init_states.append(container_state_from(latest, ic, prev))
                    failed_for_good = True
                    break
                wait = self._backoff_wait(ic["name"], latest, wall)
                if wait > 0:
                    retry.append(wait)
                    init_states.append(
                        container_state_from(
                            latest,
                            ic,
                            prev,
                            waiting_reason="CrashLoopBackOff",
                            waiting_message=self._backoff_message(ic["name"]),
                        )
                    )
                    break
            started = await self._start(
                ic, sandbox, latest, prepared, lookups, service_env, init=True
            )
            init_states.append(
                started if started is not None else container_state_from(None, ic, latest)
            )
            break
        app_states: list[node_status.ContainerState] = []
        for c in spec.get("containers") or []:
            history = statuses.get(c["name"], [])
            latest = history[-1] if history else None
            prev = history[-2] if len(history) > 1 else None
            if not init_done:
                app_states.append(
                    container_state_from(None, c, None, waiting_reason="PodInitializing")
                )
                continue
            if latest is None:
                started = await self._start(
                    c, sandbox, None, prepared, lookups, service_env, init=False
                )
                app_states.append(started or container_state_from(None, c, None))
                continue
            if latest.state == "running":
                app_states.append(self._observed(c, latest, prev, sandbox))
                continue
            if latest.state == "created":
                with contextlib.suppress(protocol.RuntimeError_):
                    await syncer.runtime.start_container(latest.id)
                app_states.append(container_state_from(latest, c, prev))
                continue
            restart = policy == "Always" or (policy == "OnFailure" and latest.exit_code != 0)
            if not restart:
                message = syncer.termination_message(pod, c, latest)
                app_states.append(container_state_from(latest, c, prev, message=message))
                continue
            wait = self._backoff_wait(c["name"], latest, wall)
            if wait > 0:
                retry.append(wait)
                if self._should_announce_backoff(c["name"], latest):
                    syncer.recorder.event(
                        pod,
                        events.WARNING,
                        "BackOff",
                        f"Back-off restarting failed container {c['name']} in pod "
                        f"{pod['metadata']['name']}_{pod['metadata'].get('namespace')}({self.uid})",
                        field_path=f"spec.containers{{{c['name']}}}",
                    )
                app_states.append(
                    container_state_from(
                        latest,
                        c,
                        prev,
                        waiting_reason="CrashLoopBackOff",
                        waiting_message=self._backoff_message(c["name"]),
                    )
                )
                continue
            started = await self._start(
                c, sandbox, latest, prepared, lookups, service_env, init=False
            )
            app_states.append(started or container_state_from(latest, c, prev))
        self._status(sandbox, app_states, init_states, failed_for_good)
        return PodState(sandbox, app_states, init_states, retry_in=min(retry) if retry else None)

    def _ready(self, container: Obj, status: protocol.ContainerStatus) -> bool:
        if status.state != "running":
            return False
        prober = self.syncer.prober
        return prober.ready(self.uid, container, status.id) if prober is not None else True

    def _should_announce_backoff(self, name: str, latest: protocol.ContainerStatus) -> bool:
        if self._announced.get(name) == latest.id:
            return False
        self._announced[name] = latest.id
        return True

    def _backoff_key(self, name: str) -> str:
        return f"{self.uid}/{name}"

    def _backoff_wait(self, name: str, latest: protocol.ContainerStatus, wall: float) -> float:
        return self.syncer.restart_backoff.remaining(
            self._backoff_key(name), latest.finished_at or wall, wall
        )

    def _backoff_message(self, name: str) -> str:
        delay = int(self.syncer.restart_backoff.delay(self._backoff_key(name)))
        md = self.pod["metadata"]
        return f"back-off {_go_duration(delay)} restarting failed container={name} pod={md['name']}_{md.get('namespace')}({self.uid})"

    async def _start(
        self,
        container: Obj,
        sandbox: protocol.Sandbox,
        latest: protocol.ContainerStatus | None,
        prepared: dict[str, Any],
        lookups: containerconf.Lookups,
        service_env: dict[str, str],
        *,
        init: bool,
    ) -> node_status.ContainerState | None:
        attempt = latest.attempt + 1 if latest is not None else 0
        if latest is not None:
            self.syncer.restart_backoff.next(self._backoff_key(container["name"]), time.time())
            await self._prune(container["name"], keep=latest.id)
        try:
            cid = await self.syncer.start_container(
                self.pod, container, sandbox, attempt, prepared, lookups, service_env, init=init
            )
        except containerconf.ConfigError as exc:
            return container_state_from(
                None, container, latest, waiting_reason=exc.reason, waiting_message=str(exc)
            )
        except protocol.RuntimeError_ as exc:
            return container_state_from(
                None, container, latest, waiting_reason=exc.reason, waiting_message=exc.message
            )
        # Report the container as it is now, in this pass: otherwise the status says
        # ContainerCreating and Running follows a status write and a watch event later.
        try:
            started = await self.syncer.runtime.container_status(cid)
        except protocol.RuntimeError_:
            return None
        if init:
            return container_state_from(started, container, latest)
        return self._observed(container, started, latest, sandbox)

    def _observed(
        self,
        container: Obj,
        status: protocol.ContainerStatus,
        previous: protocol.ContainerStatus | None,
        sandbox: protocol.Sandbox,
    ) -> node_status.ContainerState:
        """The state of an app container the runtime has, with its probes' verdicts."""
        prober = self.syncer.prober
        if prober is not None and status.state == "running":
            prober.ensure(self.pod, container, status, sandbox.ip or self.syncer.node.address)
        state = container_state_from(
            status, container, previous, ready=self._ready(container, status)
        )
        if prober is not None:
            state.started = prober.started(self.uid, container, status.id)
        return state

    async def _prune(self, name: str, *, keep: str) -> None:
        """Remove older attempts of a container and their logs, keeping the latest for
        --previous logs (upstream's MaxPerPodContainer of 1)."""
        sandbox = self.syncer.sandboxes.get(self.uid)
        if sandbox is None:
            return
        for s in await self.syncer.runtime.list_containers(sandbox.id):
            if s.name == name and s.id != keep and s.state == "exited":
                with contextlib.suppress(protocol.RuntimeError_):
                    await containergc.remove_container(self.syncer.runtime, s)

    def _report_waiting(
        self,
        message: str,
        reason: str,
        sandbox: protocol.Sandbox | None,
        *,
        retry_in: float = 5.0,
    ) -> PodState:
        spec = self.pod.get("spec") or {}
        states = [
            container_state_from(None, c, None, waiting_reason=reason, waiting_message=message)
            for c in spec.get("containers") or []
        ]
        self._status(sandbox, states, [], False)
        return PodState(sandbox, states, retry_in=retry_in, config_error=message)

    def _status(
        self,
        sandbox: protocol.Sandbox | None,
        app: list[node_status.ContainerState],
        init: list[node_status.ContainerState],
        failed: bool,
    ) -> None:
        node = self.syncer.node
        status = node_status.pod_status(
            self.pod,
            containers=app,
            init_containers=init,
            host_ip=node.address,
            pod_ip=(sandbox.ip or node.address) if sandbox is not None else "",
            sandbox_ready=sandbox is not None and sandbox.state == "ready",
            start_time=self.started,
        )
        if failed:
            status["phase"] = "Failed"
        self.report(self.pod, status)

    # --- rejected or finished -----------------------------------------------------------
    def _rejected(self, reason: str, message: str) -> Obj:
        """The status of a pod the node refused to run (upstream's rejectPod)."""
        node = self.syncer.node
        spec = self.pod.get("spec") or {}
        states = [
            container_state_from(None, c, None, waiting_reason="ContainerCreating")
            for c in spec.get("containers") or []
        ]
        status = node_status.pod_status(
            self.pod,
            containers=states,
            host_ip=node.address,
            pod_ip="",
            sandbox_ready=False,
            start_time=self.started,
        )
        status.update(phase="Failed", reason=reason, message=message)
        return status

    async def _stop_sandbox(self) -> None:
        """Release a finished pod's network and cgroup (the worker's eviction, too)."""
        sandbox = self.syncer.sandboxes.get(self.uid)
        if sandbox is not None and sandbox.state == "ready":
            await self.syncer.runtime.stop_pod_sandbox(sandbox.id)
            self.syncer.sandboxes[self.uid] = protocol.Sandbox(
                **{**sandbox.__dict__, "state": "notready"}
            )
