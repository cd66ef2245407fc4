"""Driving one pod toward its spec: sandbox, volumes, init containers, containers.

:class:`PodSyncer` holds what every pod needs (runtime, volumes, API client,
event recorder, back-off) and does one pass for a pod: make sure the sandbox
and volumes exist, run the init containers in order, start or restart the
app containers as the restart policy and back-off allow, and return the
containers' states for the status. It also stops a pod (grace period) and
releases everything it used. One pod worker calls it at a time per pod.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.api import errors, meta, resources
from pilothouse.client import events, lister, rest
from pilothouse.node import containers as containerconf
from pilothouse.node import dns as node_dns
from pilothouse.node import prober, tokens
from pilothouse.node import status as node_status
from pilothouse.node import volumes as volume_files
from pilothouse.node.backoff import Backoff
from pilothouse.node.runtime import protocol
from pilothouse.node.volumes import VolumeManager

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CONFIGMAPS = resources.Resource("", "v1", "ConfigMap", "configmaps", True)
SECRETS = resources.Resource("", "v1", "Secret", "secrets", True)
CLAIMS = resources.Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True)
PERSISTENT_VOLUMES = resources.Resource("", "v1", "PersistentVolume", "persistentvolumes", False)


@dataclass
class NodeInfo:
    name: str
    address: str
    allocatable: dict[str, str]
    memory_capacity: int
    log_dir: Path
    cgroup_root: str = containerconf.CGROUP_ROOT


@dataclass
class PodState:
    """What one pass found: container states for the status, and when to look again."""

    sandbox: protocol.Sandbox | None
    containers: list[node_status.ContainerState] = field(default_factory=list)
    init_containers: list[node_status.ContainerState] = field(default_factory=list)
    retry_in: float | None = None  # seconds until a back-off ends
    config_error: str = ""


def _pull_policy(container: Obj) -> str:
    return str(container.get("imagePullPolicy") or "IfNotPresent")


class PodSyncer:
    def __init__(
        self,
        *,
        runtime: protocol.Runtime,
        volumes: VolumeManager,
        client: rest.Client,
        recorder: events.EventRecorder,
        node: NodeInfo,
        services: lister.Indexer,
        dns: node_dns.Configurer,
    ) -> None:
        self.runtime = runtime
        self.dns = dns  # pods' resolv.conf and hostnames, as the kubelet's DNS configurer
        self.services = services  # every Service, kept by a watch (upstream's service lister)
        self.volumes = volumes
        self.client = client
        self.recorder = recorder
        self.node = node
        self.restart_backoff = Backoff()
        self.pull_backoff = Backoff()
        self.pull_failures: dict[str, float] = {}
        self.sandboxes: dict[str, protocol.Sandbox] = {}  # pod uid → sandbox
        self.start_times: dict[str, str] = {}
        self.prober: prober.ProbeManager | None = None
        self.tokens = tokens.TokenManager(client)
        # Whether a new pod may run here (the eviction manager's admission under pressure):
        # (admitted, reason, message).
        self.admit: Callable[[Obj], tuple[bool, str, str]] | None = None
        # Told of each image a container is made from (image GC's "last used").
        self.image_used: Callable[[str], None] | None = None

    # --- lookups ------------------------------------------------------------------------
    async def _get(self, resource: resources.Resource, name: str, namespace: str) -> Obj | None:
        try:
            return await self.client.get(resource, name, namespace)
        except errors.StatusError as exc:
            if errors.is_not_found(exc):
                return None
            raise

    async def lookups(self, pod: Obj) -> containerconf.Lookups:
        """The ConfigMaps and Secrets the pod refers to (env, envFrom, volumes)."""
        ns = pod["metadata"].get("namespace", "")
        spec = pod.get("spec") or {}
        cm_names: set[str] = set()
        secret_names: set[str] = set()
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            for src in c.get("envFrom") or []:
                if "configMapRef" in src:
                    cm_names.add(src["configMapRef"].get("name", ""))
                if "secretRef" in src:
                    secret_names.add(src["secretRef"].get("name", ""))
            for var in c.get("env") or []:
                vf = var.get("valueFrom") or {}
                if "configMapKeyRef" in vf:
                    cm_names.add(vf["configMapKeyRef"].get("name", ""))
                if "secretKeyRef" in vf:
                    secret_names.add(vf["secretKeyRef"].get("name", ""))
        for vol in spec.get("volumes") or []:
            if "configMap" in vol:
                cm_names.add(vol["configMap"].get("name", ""))
            if "secret" in vol:
                secret_names.add(vol["secret"].get("secretName", ""))
            for src in (vol.get("projected") or {}).get("sources") or []:
                if "configMap" in src:
                    cm_names.add(src["configMap"].get("name", ""))
                if "secret" in src:
                    secret_names.add(src["secret"].get("name", ""))
        cms = {n: await self._get(CONFIGMAPS, n, ns) for n in cm_names if n}
        secrets = {n: await self._get(SECRETS, n, ns) for n in secret_names if n}
        tokens: dict[tuple[str, int], str | Exception] = {}
        for vol in spec.get("volumes") or []:
            for src in (vol.get("projected") or {}).get("sources") or []:
                projection = src.get("serviceAccountToken")
                if projection is None:
                    continue
                key = volume_files.token_key(projection)
                if key in tokens:
                    continue
                try:
                    tokens[key] = await self.tokens.token(pod, projection)
                except errors.StatusError as exc:
                    tokens[key] = exc
        # Claims (and their volumes) only until the pod's volumes are set up, as the
        # kubelet reads them: not on every pass.
        claims = {n: await self._get(CLAIMS, n, ns) for n in self.volumes.claims_to_look_up(pod)}
        bound = {
            (c.get("spec") or {}).get("volumeName")
            for c in claims.values()
            if c is not None and (c.get("status") or {}).get("phase") == "Bound"
        }
        pvs = {n: await self._get(PERSISTENT_VOLUMES, n, "") for n in bound if n}
        return containerconf.Lookups(
            configmaps=cms, secrets=secrets, tokens=tokens, claims=claims, volumes=pvs
        )

    def service_env(self, pod: Obj) -> dict[str, str]:
        """Docker-link-style variables for the namespace's Services (enableServiceLinks).

        Read from the agent's Service informer, not the API: a pod start costs no
        request for them, as in upstream's kubelet."""
        spec = pod.get("spec") or {}
        ns = pod["metadata"].get("namespace", "")
        out: dict[str, str] = {}
        services = self.services.list_namespace(ns) if ns else []
        if ns != "default":
            master = self.services.get_by("default", "kubernetes")
            if master is not None:
                services.append(master)
        for svc in services:
            s = svc.get("spec") or {}
            ip = s.get("clusterIP")
            if not ip or ip == "None":
                continue
            if not spec.get("enableServiceLinks", True) and svc["metadata"]["name"] != "kubernetes":
                continue
            prefix = svc["metadata"]["name"].upper().replace("-", "_")
            ports = s.get("ports") or []
            out[f"{prefix}_SERVICE_HOST"] = ip
            if ports:
                out[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
            for p in ports:
                proto = p.get("protocol", "TCP")
                if p.get("name"):
                    out[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(
                        p["port"]
                    )
                base = f"{prefix}_PORT_{p['port']}_{proto}"
                out[base] = f"{proto.lower()}://{ip}:{p['port']}"
                out[f"{base}_PROTO"] = proto.lower()
                out[f"{base}_PORT"] = str(p["port"])
                out[f"{base}_ADDR"] = ip
            if ports:
                out[f"{prefix}_PORT"] = (
                    f"{ports[0].get('protocol', 'TCP').lower()}://{ip}:{ports[0]['port']}"
                )
        return out

    # --- images -------------------------------------------------------------------------
    async def _pull_secrets(self, pod: Obj) -> list[protocol.RegistryAuth]:
        from pilothouse.node.runtime.images import auth_from_dockerconfig

        out: list[protocol.RegistryAuth] = []
        ns = pod["metadata"].get("namespace", "")
        for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
            secret = await self._get(SECRETS, ref.get("name", ""), ns)
            if secret is not None:
                out.extend(auth_from_dockerconfig(secret.get("data") or {}))
        return out

    async def ensure_image(self, pod: Obj, container: Obj) -> protocol.Image:
        ref = container.get("image", "")
        policy = _pull_policy(container)
        present = self.runtime.images.get(ref)
        if present is not None and policy != "Always":
            self.recorder.event(
                pod,
                events.NORMAL,
                "Pulled",
                f'Container image "{ref}" already present on machine',
                field_path=f"spec.containers{{{container['name']}}}",
            )
            return present
        if present is None and policy == "Never":
            raise protocol.RuntimeError_(
                "ErrImageNeverPull",
                f'Container image "{ref}" is not present with pull policy of Never',
            )
        key = f"{pod['metadata']['uid']}/image/{ref}"
        failed_at = self.pull_failures.get(key)
        if (
            failed_at is not None
            and self.pull_backoff.remaining(key, failed_at, time.monotonic()) > 0
        ):
            raise protocol.RuntimeError_("ImagePullBackOff", f'Back-off pulling image "{ref}"')
        path = f"spec.containers{{{container['name']}}}"
        self.recorder.event(
            pod, events.NORMAL, "Pulling", f'Pulling image "{ref}"', field_path=path
        )
        started = time.monotonic()
        try:
            image = await self.runtime.images.pull(ref, auth=await self._pull_secrets(pod))
        except protocol.RuntimeError_ as exc:
            self.pull_failures[key] = time.monotonic()
            self.pull_backoff.next(key, time.monotonic())
            self.recorder.event(
                pod,
                events.WARNING,
                "Failed",
                f'Failed to pull image "{ref}": {exc.message}',
                field_path=path,
            )
            raise
        self.pull_failures.pop(key, None)
        took = time.monotonic() - started
        self.recorder.event(
            pod,
            events.NORMAL,
            "Pulled",
            f'Successfully pulled image "{ref}" in {took:.3f}s ({took:.3f}s including waiting). '
            f"Image size: {image.size} bytes.",
            field_path=path,
        )
        return image

    # --- sandbox ------------------------------------------------------------------------
    def sandbox_config(self, pod: Obj) -> protocol.SandboxConfig:
        """The sandbox ``pod`` needs; raises node_dns.DNSConfigError when its DNS settings
        cannot be made."""
        md = pod["metadata"]
        spec = pod.get("spec") or {}
        ns = md.get("namespace", "")
        host_network = bool(spec.get("hostNetwork"))
        hostname, domain = self.dns.hostname_and_domain(pod)
        kernel = self.dns.kernel_hostname(pod, hostname, domain)
        dns = self.dns.pod_dns(pod)
        shares, quota, memory = containerconf.pod_resources(pod)
        return protocol.SandboxConfig(
            uid=md["uid"],
            namespace=ns,
            name=md["name"],
            hostname=hostname,
            dns=dns,
            domain=domain,
            kernel_hostname=kernel if kernel != hostname else "",
            host_network=host_network,
            host_aliases=tuple(
                (a.get("ip", ""), tuple(a.get("hostnames") or ()))
                for a in spec.get("hostAliases") or []
            ),
            cgroup_parent=containerconf.pod_cgroup(pod, self.node.cgroup_root),
            cpu_shares=shares,
            cpu_quota=quota,
            memory_limit=memory,
            labels={"io.kubernetes.pod.uid": md["uid"]},
        )

    async def ensure_sandbox(self, pod: Obj) -> protocol.Sandbox:
        uid = pod["metadata"]["uid"]
        sandbox = self.sandboxes.get(uid)
        if sandbox is not None and sandbox.state == "ready":
            return sandbox
        if sandbox is not None:
            # A dead sandbox: upstream kills its containers and starts over.
            await self.runtime.stop_pod_sandbox(sandbox.id)
            await self.runtime.remove_pod_sandbox(sandbox.id)
            self.recorder.event(
                pod,
                events.NORMAL,
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.",
            )
        try:
            config = self.sandbox_config(pod)
        except node_dns.DNSConfigError as exc:
            self.recorder.event(
                pod,
                events.WARNING,
                "FailedCreatePodSandBox",
                f"Failed to create pod sandbox: {exc}",
            )
            raise protocol.RuntimeError_("CreatePodSandboxError", str(exc)) from exc
        sandbox = await self.runtime.run_pod_sandbox(config)
        self.sandboxes[uid] = sandbox
        return sandbox

    # --- containers ---------------------------------------------------------------------
    def log_path(self, pod: Obj, name: str, attempt: int) -> str:
        md = pod["metadata"]
        return str(
            self.node.log_dir
            / f"{md.get('namespace')}_{md['name']}_{md['uid']}"
            / name
            / f"{attempt}.log"
        )

    async def start_container(
        self,
        pod: Obj,
        container: Obj,
        sandbox: protocol.Sandbox,
        attempt: int,
        prepared: dict[str, Any],
        lookups: containerconf.Lookups,
        service_env: dict[str, str],
        *,
        init: bool,
    ) -> str:
        """Create and start one container (its image pulled if needed, its postStart
        hook run); returns its id. Raises ConfigError or RuntimeError_."""
        kind = "initContainers" if init else "containers"
        path = f"spec.{kind}{{{container['name']}}}"
        image = await self.ensure_image(pod, container)
        if self.image_used is not None:
            self.image_used(image.id)
        pod_for_env = _with_ips(pod, sandbox, self.node.address)
        env = containerconf.environment(
            pod_for_env,
            container,
            lookups,
            service_env=service_env,
            node_allocatable=self.node.allocatable,
        )
        mounts = self.volumes.mounts_for(pod, container, prepared)
        mounts += self._termination_log(pod, container)
        config = containerconf.container_config(
            pod_for_env,
            container,
            image,
            env=env,
            mounts=mounts,
            log_path=self.log_path(pod, container["name"], attempt),
            attempt=attempt,
            memory_capacity=self.node.memory_capacity,
        )
        try:
            cid = await self.runtime.create_container(sandbox.id, config)
        except protocol.RuntimeError_ as exc:
            self.recorder.event(
                pod, events.WARNING, "Failed", f"Error: {exc.message}", field_path=path
            )
            raise
        self.recorder.event(
            pod, events.NORMAL, "Created", f"Created container {container['name']}", field_path=path
        )
        try:
            await self.runtime.start_container(cid)
        except protocol.RuntimeError_ as exc:
            self.recorder.event(
                pod, events.WARNING, "Failed", f"Error: {exc.message}", field_path=path
            )
            raise
        self.recorder.event(
            pod, events.NORMAL, "Started", f"Started container {container['name']}", field_path=path
        )
        hook = (container.get("lifecycle") or {}).get("postStart")
        if hook and self.prober is not None:
            result = await prober.run_hook(
                hook,
                container=container,
                container_id=cid,
                pod_ip=sandbox.ip or self.node.address,
                runtime=self.runtime,
                session=self.prober.session(),
                timeout=30.0,
            )
            if not result.ok:
                self.recorder.event(
                    pod,
                    events.WARNING,
                    "FailedPostStartHook",
                    f"PostStartHook failed: {result.message}",
                    field_path=path,
                )
                await self.runtime.stop_container(
                    cid,
                    timeout=float((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)),
                )
        return cid

    async def stop_container(
        self,
        pod: Obj,
        container: Obj,
        container_id: str,
        sandbox: protocol.Sandbox | None,
        grace: float,
    ) -> None:
        """Stop a container as upstream does: its preStop hook first (within the grace
        period), then SIGTERM, then SIGKILL when the rest of the grace period is up."""
        started = time.monotonic()
        hook = (container.get("lifecycle") or {}).get("preStop")
        if hook and self.prober is not None and grace > 0:
            result = await prober.run_hook(
                hook,
                container=container,
                container_id=container_id,
                pod_ip=(sandbox.ip if sandbox else "") or self.node.address,
                runtime=self.runtime,
                session=self.prober.session(),
                timeout=grace,
            )
            if not result.ok:
                self.recorder.event(
                    pod,
                    events.WARNING,
                    "FailedPreStopHook",
                    f"PreStopHook failed: {result.message}",
                    field_path=f"spec.containers{{{container['name']}}}",
                )
        remaining = max(0.0, grace - (time.monotonic() - started))
        await self.runtime.stop_container(container_id, timeout=remaining)

    def _termination_log(self, pod: Obj, container: Obj) -> list[protocol.Mount]:
        target = container.get("terminationMessagePath") or "/dev/termination-log"
        host = (
            self.volumes.pod_dir(pod["metadata"]["uid"])
            / "containers"
            / container["name"]
            / "termination-log"
        )
        host.parent.mkdir(parents=True, exist_ok=True)
        host.touch(mode=0o666, exist_ok=True)
        return [protocol.Mount(container_path=target, host_path=str(host), sub_path_file=True)]

    def termination_message(
        self, pod: Obj, container: Obj, status: protocol.ContainerStatus
    ) -> str:
        host = (
            self.volumes.pod_dir(pod["metadata"]["uid"])
            / "containers"
            / str(container["name"])
            / "termination-log"
        )
        text: str
        try:
            text = host.read_bytes()[:4096].decode(errors="replace")
        except OSError:
            text = ""
        if (
            not text
            and container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
            and status.exit_code
        ):
            text = _tail_log(status.log_path, 80, 2048)
        return text


def _with_ips(pod: Obj, sandbox: protocol.Sandbox, host_ip: str) -> Obj:
    """The pod as the downward API sees it once it has addresses."""
    status = dict(pod.get("status") or {})
    ip = sandbox.ip or host_ip
    status["podIP"] = ip
    status["podIPs"] = [{"ip": ip}]
    status["hostIP"] = host_ip
    status["hostIPs"] = [{"ip": host_ip}]
    return {**pod, "status": status}


def _tail_log(path: str, lines: int, limit: int) -> str:
    try:
        raw = Path(path).read_bytes()[-limit * 4 :]
    except OSError:
        return ""
    out = []
    for line in raw.splitlines()[-lines:]:
        parts = line.split(b" ", 3)
        if len(parts) == 4:
            out.append(parts[3].decode(errors="replace"))
    return "\n".join(out)[-limit:]


def now_rfc3339(ts: float) -> str:
    return meta.format_time(ts) if ts else ""


def container_state_from(
    status: protocol.ContainerStatus | None,
    spec_container: Obj,
    previous: protocol.ContainerStatus | None,
    *,
    waiting_reason: str = "",
    waiting_message: str = "",
    ready: bool = False,
    message: str = "",
) -> node_status.ContainerState:
    """The ContainerState the status shows for one container."""
    name = spec_container["name"]
    image = spec_container.get("image", "")
    last: Obj = {}
    if previous is not None and previous.state == "exited":
        last = {
            "terminated": {
                "exitCode": previous.exit_code,
                "reason": previous.reason or ("Completed" if previous.exit_code == 0 else "Error"),
                "startedAt": now_rfc3339(previous.started_at) or None,
                "finishedAt": now_rfc3339(previous.finished_at) or None,
                "containerID": f"crun://{previous.id}",
            }
        }
    if status is None:
        return node_status.ContainerState(
            name=name,
            image=image,
            state="waiting",
            reason=waiting_reason or "ContainerCreating",
            message=waiting_message,
            last_state=last,
            restart_count=previous.attempt + 1 if previous else 0,
        )
    cs = node_status.ContainerState(
        name=name,
        image=image,
        image_id=status.image_id,
        container_id=f"crun://{status.id}",
        restart_count=status.attempt,
        last_state=last,
    )
    if waiting_reason:
        cs.state, cs.reason, cs.message = "waiting", waiting_reason, waiting_message
        if status.state == "exited":
            cs.last_state = {
                "terminated": {
                    "exitCode": status.exit_code,
                    "reason": status.reason or ("Completed" if status.exit_code == 0 else "Error"),
                    "startedAt": now_rfc3339(status.started_at) or None,
                    "finishedAt": now_rfc3339(status.finished_at) or None,
                    "containerID": f"crun://{status.id}",
                }
            }
    elif status.state == "running":
        cs.state, cs.started_at, cs.started, cs.ready = (
            "running",
            now_rfc3339(status.started_at),
            True,
            ready,
        )
    elif status.state == "exited":
        cs.state, cs.exit_code = "terminated", status.exit_code
        cs.reason = status.reason or ("Completed" if status.exit_code == 0 else "Error")
        cs.started_at, cs.finished_at = (
            now_rfc3339(status.started_at),
            now_rfc3339(status.finished_at),
        )
        cs.message = message or status.message
    else:
        cs.state, cs.reason = "waiting", "ContainerCreating"
    return cs
