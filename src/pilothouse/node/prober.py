"""Health checks: liveness, readiness and startup probes (upstream's prober).

Each probed container gets one supervised child per probe kind, on its own
schedule (``initialDelaySeconds``, ``periodSeconds``, ``timeoutSeconds``) so
hundreds of probes never wait on each other or on the agent. A result flips
only after ``successThreshold``/``failureThreshold`` consecutive outcomes.

* Until a startup probe succeeds, liveness and readiness do not run and the
  container is not ready; failing it ``failureThreshold`` times restarts it.
* Readiness decides the container's ``ready`` (and through it the pod's Ready
  condition and its Service endpoints).
* Liveness failing restarts the container: events ``Unhealthy`` then
  ``Killing``, as upstream.

Probes run from the node's network namespace against the pod's IP (exec
probes run inside the container through the runtime).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from pilothouse import supervisor as supervision
from pilothouse.client import events
from pilothouse.node import probe_lateness
from pilothouse.node.runtime import protocol

log = logging.getLogger(__name__)

Obj = dict[str, Any]
LIVENESS, READINESS, STARTUP = "liveness", "readiness", "startup"
MAX_OUTPUT = 10 * 1024


@dataclass
class ProbeResult:
    ok: bool
    message: str = ""


@dataclass
class _Worker:
    kind: str
    spec: Obj
    name: str = ""  # its child's name in the probe manager's supervisor
    successes: int = 0
    failures: int = 0
    result: bool | None = None  # None: no result yet


@dataclass
class _ContainerProbes:
    container_id: str
    started_at: float
    workers: dict[str, _Worker] = field(default_factory=dict)
    started: bool = True  # startup probe passed (or none)
    ready: bool = True


def _port(container: Obj, port: Any) -> int:
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    try:
        return int(port)
    except (TypeError, ValueError):
        raise ValueError(f"unknown port {port!r}") from None


_INSECURE = ssl.create_default_context()
_INSECURE.check_hostname = False
_INSECURE.verify_mode = ssl.CERT_NONE


async def run_probe(
    spec: Obj,
    *,
    container: Obj,
    container_id: str,
    pod_ip: str,
    runtime: protocol.Runtime,
    session: aiohttp.ClientSession,
) -> ProbeResult:
    timeout = float(spec.get("timeoutSeconds") or 1)
    try:
        if "exec" in spec:
            command = list((spec["exec"] or {}).get("command") or [])
            code, out, err = await runtime.exec_sync(container_id, command, timeout=timeout)
            text = (out + err)[:MAX_OUTPUT].decode(errors="replace").strip()
            if code == 0:
                return ProbeResult(True, text)
            return ProbeResult(False, text or f"command {command!r} exited with {code}")
        if "httpGet" in spec:
            return await _http_get(spec["httpGet"] or {}, container, pod_ip, session, timeout)
        if "tcpSocket" in spec:
            return await _tcp_socket(spec["tcpSocket"] or {}, container, pod_ip, timeout)
        if "grpc" in spec:
            return await _grpc(spec["grpc"] or {}, pod_ip, timeout)
        return ProbeResult(False, "probe has no handler")
    except TimeoutError:
        return ProbeResult(False, f"probe timed out after {timeout:g}s")
    except (OSError, aiohttp.ClientError, ValueError) as exc:
        return ProbeResult(False, str(exc) or exc.__class__.__name__)
    except protocol.RuntimeError_ as exc:
        return ProbeResult(False, exc.message)


def _dial_error(host: str, port: int, exc: BaseException) -> str:
    """An unreachable endpoint in the words upstream's probes use (Go's net errors)."""
    cause = getattr(exc, "os_error", exc)
    if isinstance(cause, OSError) and cause.errno:
        return f"dial tcp {host}:{port}: connect: {os.strerror(cause.errno).lower()}"
    return f"dial tcp {host}:{port}: {exc}"


async def _http_get(
    h: Obj, container: Obj, pod_ip: str, session: aiohttp.ClientSession, timeout: float
) -> ProbeResult:
    scheme = (h.get("scheme") or "HTTP").lower()
    host = h.get("host") or pod_ip
    port = _port(container, h.get("port"))
    path = h.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    headers = {x.get("name", ""): x.get("value", "") for x in h.get("httpHeaders") or []}
    headers.setdefault("User-Agent", "kube-probe/1.32")
    url = f"{scheme}://{host}:{port}{path}"
    try:
        async with session.get(
            url,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=True,
            ssl=_INSECURE if scheme == "https" else True,
        ) as resp:
            body = await resp.content.read(MAX_OUTPUT)
            if 200 <= resp.status < 400:
                return ProbeResult(True, body.decode(errors="replace"))
            return ProbeResult(False, f"HTTP probe failed with statuscode: {resp.status}")
    except aiohttp.ClientConnectorError as exc:
        return ProbeResult(False, f'Get "{url}": {_dial_error(host, port, exc)}')
    except TimeoutError:
        return ProbeResult(
            False,
            f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
        )


async def _tcp_socket(t: Obj, container: Obj, pod_ip: str, timeout: float) -> ProbeResult:
    port = _port(container, t.get("port"))
    host = t.get("host") or pod_ip
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return ProbeResult(False, f"dial tcp {host}:{port}: i/o timeout")
    except OSError as exc:
        return ProbeResult(False, _dial_error(host, port, exc))
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return ProbeResult(True)


async def _grpc(spec: Obj, pod_ip: str, timeout: float) -> ProbeResult:
    """The standard gRPC health check (grpc.health.v1.Health/Check)."""
    import grpc  # type: ignore[import-untyped]  # only nodes running gRPC probes pay for it
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

    target = f"{pod_ip}:{int(spec.get('port', 0))}"
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=spec.get("service") or ""), timeout=timeout
            )
        except grpc.aio.AioRpcError as exc:
            return ProbeResult(
                False,
                f'timeout: failed to connect service "{target}" within {timeout:g}s: {exc.details()}',
            )
    if reply.status == health_pb2.HealthCheckResponse.SERVING:
        return ProbeResult(True)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return ProbeResult(False, f'service unhealthy (responded with "{status}")')


class ProbeManager:
    """Runs the probes of every container on this node."""

    def __init__(
        self,
        *,
        runtime: protocol.Runtime,
        recorder: events.EventRecorder,
        supervisor: supervision.Supervisor,
        on_change: Callable[[str], None],
        restart: Callable[[Obj, Obj, str, int | None], Awaitable[None]],
        on_result: Callable[[str, Obj, Obj, bool], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.recorder = recorder
        self.supervisor = supervisor  # one child per probe of a running container
        self.on_change = on_change  # pod uid: a readiness/started result changed
        self.restart = restart  # (pod, container, container_id, grace) → kill it for a restart
        self.on_result = on_result  # (kind, pod, container, ok) of every probe run: for metrics
        self._probes: dict[tuple[str, str], _ContainerProbes] = {}
        self._session: aiohttp.ClientSession | None = None
        self.lateness = probe_lateness.Lateness()  # how late runs start vs their schedule

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, force_close=True)
            )
        return self._session

    async def close(self) -> None:
        for key in list(self._probes):
            self._stop(key)
        if self._session is not None:
            await self._session.close()

    # --- what pod workers ask ------------------------------------------------------------
    def ready(self, uid: str, container: Obj, container_id: str) -> bool:
        entry = self._probes.get((uid, container["name"]))
        if entry is None or entry.container_id != container_id:
            return not container.get("readinessProbe") and not container.get("startupProbe")
        return entry.started and entry.ready

    def started(self, uid: str, container: Obj, container_id: str) -> bool:
        entry = self._probes.get((uid, container["name"]))
        if entry is None or entry.container_id != container_id:
            return not container.get("startupProbe")
        return entry.started

    def ensure(
        self, pod: Obj, container: Obj, status: protocol.ContainerStatus, pod_ip: str
    ) -> None:
        """Start (or keep) the probes of a running container; restart them for a new container."""
        uid = pod["metadata"]["uid"]
        key = (uid, container["name"])
        entry = self._probes.get(key)
        if entry is not None and entry.container_id == status.id:
            return
        if entry is not None:
            self._stop(key)
        specs: dict[str, Obj] = {
            k: container[f"{k}Probe"]
            for k in (STARTUP, LIVENESS, READINESS)
            if container.get(f"{k}Probe")
        }
        if not specs:
            return
        entry = _ContainerProbes(
            status.id,
            status.started_at or time.time(),
            started=STARTUP not in specs,
            ready=READINESS not in specs,
        )
        self._probes[key] = entry
        for kind, spec in specs.items():
            worker = _Worker(kind, spec, name=f"probe-{kind}-{uid}-{container['name']}")
            entry.workers[kind] = worker
            self.supervisor.start(
                worker.name,
                functools.partial(self._run, pod, container, entry, worker, pod_ip),
                policy=supervision.Policy.TRANSIENT,  # a startup probe ends once passed
            )

    def forget_pod(self, uid: str) -> None:
        for key in [k for k in self._probes if k[0] == uid]:
            self._stop(key)

    def _stop(self, key: tuple[str, str]) -> None:
        entry = self._probes.pop(key, None)
        if entry is not None:
            for w in entry.workers.values():
                self.supervisor.cancel_child(w.name)

    # --- one probe's loop -----------------------------------------------------------------
    async def _run(
        self, pod: Obj, container: Obj, entry: _ContainerProbes, worker: _Worker, pod_ip: str
    ) -> None:
        spec = worker.spec
        period = max(1.0, float(spec.get("periodSeconds") or 10))
        delay = float(spec.get("initialDelaySeconds") or 0)
        success_threshold = int(spec.get("successThreshold") or 1)
        failure_threshold = int(spec.get("failureThreshold") or 3)
        wait = entry.started_at + delay - time.time()
        due = time.monotonic() + max(0.0, wait)
        if wait > 0:
            await asyncio.sleep(wait)
        field_path = f"spec.containers{{{container['name']}}}"
        while True:
            if worker.kind != STARTUP and not entry.started:
                await asyncio.sleep(min(period, 1.0))
                due = time.monotonic()
                continue
            if worker.kind == STARTUP and entry.started:
                return  # done for this container
            started = time.monotonic()
            self.lateness.observe(started - due)
            due = started + period
            result = await run_probe(
                spec,
                container=container,
                container_id=entry.container_id,
                pod_ip=pod_ip,
                runtime=self.runtime,
                session=self.session(),
            )
            if self.on_result is not None:
                self.on_result(worker.kind, pod, container, result.ok)
            if result.ok:
                worker.successes, worker.failures = worker.successes + 1, 0
                if worker.successes >= success_threshold:
                    self._set(pod, entry, worker, True)
            else:
                worker.failures, worker.successes = worker.failures + 1, 0
                self.recorder.event(
                    pod,
                    events.WARNING,
                    "Unhealthy",
                    f"{worker.kind.capitalize()} probe failed: {result.message}",
                    field_path=field_path,
                )
                if worker.failures >= failure_threshold:
                    self._set(pod, entry, worker, False)
                    if worker.kind in (LIVENESS, STARTUP):
                        why = "liveness" if worker.kind == LIVENESS else "startup"
                        self.recorder.event(
                            pod,
                            events.NORMAL,
                            "Killing",
                            f"Container {container['name']} failed {why} probe, will be restarted",
                            field_path=field_path,
                        )
                        grace = spec.get("terminationGracePeriodSeconds")
                        await self.restart(pod, container, entry.container_id, grace)
                        return
            await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))

    def _set(self, pod: Obj, entry: _ContainerProbes, worker: _Worker, value: bool) -> None:
        if worker.result == value:
            return
        worker.result = value
        if worker.kind == READINESS:
            entry.ready = value
        elif worker.kind == STARTUP and value:
            entry.started = True
        self.on_change(pod["metadata"]["uid"])


async def run_hook(
    handler: Obj,
    *,
    container: Obj,
    container_id: str,
    pod_ip: str,
    runtime: protocol.Runtime,
    session: aiohttp.ClientSession,
    timeout: float,
) -> ProbeResult:
    """A lifecycle hook (postStart/preStop): exec, httpGet or sleep, bounded by ``timeout``."""
    if "sleep" in handler:
        await asyncio.sleep(min(timeout, float((handler["sleep"] or {}).get("seconds") or 0)))
        return ProbeResult(True)
    spec = {**handler, "timeoutSeconds": max(1, int(timeout))}
    return await run_probe(
        spec,
        container=container,
        container_id=container_id,
        pod_ip=pod_ip,
        runtime=runtime,
        session=session,
    )
