"""One pod's containers on a node that runs nothing: when each ends and restarts.

Hollow nodes keep a :class:`PodRun` for each pod they started. Each container's end
comes from :mod:`pilothouse.node.runtime.scripted` (``sleep 5``, ``sh -c 'exit 3'``…);
a container whose end cannot be told runs until the pod is deleted. A container that
ended is restarted as upstream's kubelet restarts it — never under ``Never``, after a
failure under ``OnFailure``, always under ``Always`` — after the kubelet's crash
back-off (10 s, doubling, at most 5 min), waiting meanwhile in ``CrashLoopBackOff``.

Times are absolute (seconds since the epoch, from the caller's clock): the caller
calls :meth:`PodRun.advance` with "now" whenever it looks at the pod, and asks
:meth:`PodRun.next_change` when to look next. No I/O, no tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pilothouse.api import meta
from pilothouse.node import status as node_status
from pilothouse.node.runtime import scripted

Obj = dict[str, Any]

BACKOFF_S = 10.0
MAX_BACKOFF_S = 300.0


@dataclass
class _Container:
    name: str
    image: str
    end: scripted.Outcome | None
    started: float
    restarts: int = 0
    state: str = "running"  # running | terminated | waiting (to be restarted)
    exit_code: int = 0
    finished: float = 0.0
    restart_at: float = 0.0
    last: Obj = field(default_factory=dict)

    def terminated_status(self, container_id: str) -> Obj:
        return {
            "exitCode": self.exit_code,
            "reason": "Completed" if self.exit_code == 0 else "Error",
            "startedAt": meta.format_time(self.started),
            "finishedAt": meta.format_time(self.finished),
            "containerID": container_id,
        }


def _restarts(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


class PodRun:
    """The containers of one pod, started at ``now``."""

    def __init__(self, pod: Obj, *, now: float) -> None:
        spec = pod.get("spec") or {}
        self.uid = str((pod.get("metadata") or {}).get("uid", ""))
        self.name = str((pod.get("metadata") or {}).get("name", ""))
        self.namespace = str((pod.get("metadata") or {}).get("namespace", ""))
        self.policy = str(spec.get("restartPolicy") or "Always")
        self.containers = [
            _Container(
                name=c["name"],
                image=c.get("image", ""),
                end=scripted.outcome(scripted.container_argv(c)),
                started=now,
            )
            for c in spec.get("containers") or []
        ]
        self.advance(now)

    def advance(self, now: float) -> None:
        """Bring every container's state up to ``now``."""
        for c in self.containers:
            while True:
                if c.state == "running" and c.end is not None and c.started + c.end.seconds <= now:
                    c.finished = c.started + c.end.seconds
                    c.exit_code = c.end.exit_code
                    if _restarts(self.policy, c.exit_code):
                        backoff = min(MAX_BACKOFF_S, BACKOFF_S * 2.0**c.restarts)
                        c.state, c.restart_at = "waiting", c.finished + backoff
                    else:
                        c.state = "terminated"
                    continue
                if c.state == "waiting" and c.restart_at <= now:
                    c.last = {"terminated": c.terminated_status(self._container_id(c))}
                    c.state, c.started, c.restarts = "running", c.restart_at, c.restarts + 1
                    continue
                break

    def next_change(self) -> float | None:
        """When a container next ends or restarts (None: nothing will change by itself)."""
        times = [
            c.started + c.end.seconds
            for c in self.containers
            if c.state == "running" and c.end is not None
        ] + [c.restart_at for c in self.containers if c.state == "waiting"]
        return min(times, default=None)

    @property
    def done(self) -> bool:
        """Every container has ended for good: the pod has Succeeded or Failed."""
        return all(c.state == "terminated" for c in self.containers)

    def _container_id(self, c: _Container) -> str:
        return f"hollow://{self.uid}-{c.name}-{c.restarts}"

    def states(self) -> list[node_status.ContainerState]:
        out = []
        for c in self.containers:
            cs = node_status.ContainerState(
                name=c.name,
                image=c.image,
                image_id=f"hollow://{c.image}",
                container_id=self._container_id(c),
                restart_count=c.restarts,
                last_state=c.last,
            )
            if c.state == "running":
                cs.state, cs.started_at, cs.ready, cs.started = (
                    "running",
                    meta.format_time(c.started),
                    True,
                    True,
                )
            elif c.state == "terminated":
                cs.state, cs.exit_code = "terminated", c.exit_code
                cs.reason = "Completed" if c.exit_code == 0 else "Error"
                cs.started_at, cs.finished_at = (
                    meta.format_time(c.started),
                    meta.format_time(c.finished),
                )
            else:
                cs.state, cs.reason = "waiting", "CrashLoopBackOff"
                backoff = int(c.restart_at - c.finished)
                cs.message = (
                    f"back-off {backoff}s restarting failed container={c.name} "
                    f"pod={self.name}_{self.namespace}({self.uid})"
                )
                cs.last_state = {"terminated": c.terminated_status(self._container_id(c))}
            out.append(cs)
        return out
