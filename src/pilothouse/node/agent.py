"""The node agent: registers this machine as a Node and runs the pods bound to it.

Start-up order: register the Node (capacity, addresses, info), wait for the
pod CIDR the cluster assigns it, start the runtime on that CIDR, adopt the
sandboxes and containers that survived a restart, then watch this node's pods
and hand each to its :mod:`pod worker <pilothouse.node.pod_workers>`.
Concurrently, as children of the agent's supervisor: Lease heartbeats every
``heartbeat`` seconds, a Node status refresh every minute (both, and the
registration, in :mod:`~pilothouse.node.heartbeats`), a PLEG relist every
second (container state changes wake the pod's worker), log rotation, stats,
the status writers, the informers, one worker per pod (nested ``pod-workers``)
and one per probe (nested ``probes``) — each restarted with back-off if it
fails — and the HTTPS server the API server reads logs from and streams
through (FATAL: an agent nobody can reach is no agent).

With a :class:`~pilothouse.node.servicenet.ServiceNetwork` the agent also runs, under its supervisor, the
node's service proxy (:mod:`pilothouse.proxy`) and the routes to the other
nodes' pods (:mod:`pilothouse.node.routes`); both are removed when it stops.
Everything the agent reads from the API comes from one informer factory
(``self.informers``), so the proxy and the cluster DNS share the Service and
EndpointSlice caches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilothouse import supervisor as supervision
from pilothouse.api import resources
from pilothouse.client import events, informer, rest
from pilothouse.dns import nodelocal
from pilothouse.node import dns as node_dns
from pilothouse.node import (
    housekeeping,
    kubeletconfig,
    nodeshutdown,
    probe_lateness,
    prober,
    servicenet,
    streaming,
)
from pilothouse.node import metrics as node_metrics
from pilothouse.node.heartbeats import NODES, NodeHeartbeats, machine_capacity
from pilothouse.node.localpath import provisioner as localpath
from pilothouse.node.pod_workers import PodWorkers, confirm_deletion
from pilothouse.node.podsync import NodeInfo, PodSyncer
from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import registries as registriesmod
from pilothouse.node.server import AgentServer, AgentTLS, is_apiserver
from pilothouse.node.status_manager import StatusManager
from pilothouse.node.volumes import VolumeManager

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = resources.Resource("", "v1", "Pod", "pods", True)
SERVICES = resources.Resource("", "v1", "Service", "services", True)
ENDPOINTSLICES = resources.Resource(
    "discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True
)
AGENT_PORT = 10250


class Agent(NodeHeartbeats):
    def __init__(
        self,
        client: rest.Client,
        *,
        node_name: str,
        address: str,
        data_dir: Path,
        runtime_factory: Callable[[str], protocol.Runtime],
        supervisor: supervision.Supervisor,
        tls: AgentTLS | None = None,
        port: int = AGENT_PORT,
        heartbeat: float = 10.0,
        labels: dict[str, str] | None = None,
        dns: node_dns.Settings | None = None,
        memory_backed_secrets: bool = True,
        network: servicenet.ServiceNetwork | None = None,
        cgroup_root: str = "/pilothouse",
        storage_dir: Path | None = None,
        config: kubeletconfig.KubeletConfig | None = None,
    ) -> None:
        self.client = client
        self.supervisor = supervisor
        self.config = config or kubeletconfig.KubeletConfig()
        # Secret, token and projected volumes on tmpfs, never on disk (off for in-process
        # test agents with a fake runtime, whose pods outlive the test's data dir).
        self.memory_backed_secrets = memory_backed_secrets
        self.node_name = node_name
        self.address = address
        self.data_dir = data_dir
        self.runtime_factory = runtime_factory
        self.tls = tls
        self.port = port
        self.heartbeat = heartbeat
        self.labels = labels or {}
        self.network = network
        self.cgroup_root = cgroup_root
        self.runtime: protocol.Runtime | None = None
        self.syncer: PodSyncer | None = None
        self.workers: PodWorkers | None = None
        self.status = StatusManager(client)
        self.recorder = events.EventRecorder(client, component="kubelet", host=node_name)
        # The one place the agent's informers are made: the pod workers, the proxy and
        # the cluster DNS all read these caches (one watch per resource per node).
        self.informers = informer.InformerFactory(client)
        self.pods = self.informers.informer(PODS, field_selector=f"spec.nodeName={node_name}")
        # Every Service: the containers' *_SERVICE_HOST variables (as the kubelet does),
        # the proxy's rules, the DNS's names.
        self.services = self.informers.informer(SERVICES)
        self.dns_settings = dns or node_dns.Settings()
        self.cluster_dns: nodelocal.NodeLocalDNS | None = None
        if self.dns_settings.serve:
            self.cluster_dns = nodelocal.NodeLocalDNS(
                nodelocal.Config(
                    addresses=self.dns_settings.cluster_dns,
                    domain=self.dns_settings.cluster_domain,
                    upstream_resolv_conf=self.dns_settings.upstreams,
                ),
                tasks=self.supervisor,
            )
        self.endpointslices = self.informers.informer(ENDPOINTSLICES)
        self.nodes = self.informers.informer(NODES)
        self.service_network: servicenet.NodeServices | None = None
        self.server: AgentServer | None = None
        self.metrics = node_metrics.AgentMetrics()
        self.stats: node_metrics.StatsProvider | None = None
        self._loops: list[str] = []
        self._lateness: probe_lateness.Collector | None = None
        # Local-path volumes live here (k3s: --default-local-storage-path).
        self.storage_dir = storage_dir or data_dir / "storage"
        self.provisioner = localpath.LocalPathProvisioner(
            client, node_name=node_name, storage_dir=self.storage_dir
        )
        self.pod_cidr = ""
        self.ready = asyncio.Event()
        self.housekeeping: housekeeping.Housekeeping | None = None
        self._conditions_changed = asyncio.Event()

    # --- life cycle -------------------------------------------------------------------
    async def start(self) -> None:
        (self.data_dir / "pods").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        await self._register()
        self.pod_cidr = await self._wait_pod_cidr()
        self.runtime = self.runtime_factory(self.pod_cidr)
        await self.runtime.start()
        registries = getattr(self.runtime.images, "registries", None)
        if isinstance(registries, registriesmod.RegistriesFile):
            ref = housekeeping.node_ref(self.node_name)
            registries.on_error = lambda message: self.recorder.event(
                ref, events.WARNING, "InvalidRegistryConfiguration", message
            )
            registries.current()  # read it now: a broken file is reported at start
        capacity = machine_capacity(self.data_dir, self.config.max_pods)
        allocatable = housekeeping.allocatable(capacity, self.config)
        volumes = VolumeManager(
            self.data_dir / "pods",
            node_allocatable=allocatable,
            memory_backed_secrets=self.memory_backed_secrets,
            local_ready=self._local_ready,
        )
        node = NodeInfo(
            name=self.node_name,
            address=self.address,
            allocatable=allocatable,
            memory_capacity=int(capacity["memory"].removesuffix("Ki")) * 1024,
            log_dir=self.data_dir / "logs",
            cgroup_root=self.cgroup_root,
        )
        self.syncer = PodSyncer(
            runtime=self.runtime,
            volumes=volumes,
            client=self.client,
            recorder=self.recorder,
            node=node,
            services=self.services.indexer,
            dns=node_dns.Configurer(
                self.dns_settings, recorder=self.recorder, node_name=self.node_name
            ),
        )
        self.syncer.prober = prober.ProbeManager(
            runtime=self.runtime,
            recorder=self.recorder,
            supervisor=self.supervisor.nest("probes"),
            on_change=self._probe_changed,
            restart=self._probe_restart,
            on_result=self.metrics.probe_result,
        )
        if self._lateness is None:  # registered once: start() runs again after a failure
            self._lateness = probe_lateness.Collector(self.syncer.prober.lateness)
            self.metrics.registry.register(self._lateness)
        self._lateness.lateness = self.syncer.prober.lateness
        for sandbox in await self.runtime.list_sandboxes():
            self.syncer.sandboxes[sandbox.uid] = sandbox  # adopt what survived a restart
        self.workers = PodWorkers(
            syncer=self.syncer,
            report=self.status.set,
            confirm_deleted=lambda pod: confirm_deletion(self.client, PODS, pod),
            supervisor=self.supervisor.nest("pod-workers"),
        )
        self.housekeeping = housekeeping.Housekeeping(
            config=self.config,
            runtime=self.runtime,
            syncer=self.syncer,
            workers=self.workers,
            pods=self.pods.indexer.list,
            recorder=self.recorder,
            node_name=self.node_name,
            data_dir=self.data_dir,
            on_conditions=lambda _c: self._conditions_changed.set(),
        )
        self.stats = node_metrics.StatsProvider(
            runtime=self.runtime,
            pods=self.pods.indexer.list,
            sandboxes=self.syncer.sandboxes,
            node_name=self.node_name,
        )
        sup = self.supervisor
        self.recorder.start(sup)
        self.status.start(sup)
        sup.start("local-path-provisioner", self.provisioner.run)
        self._loops.append("local-path-provisioner")
        self.pods.add_handlers(
            on_add=self._pod_changed,
            on_update=lambda _o, n: self._pod_changed(n),
            on_delete=self._pod_deleted,
        )
        if self.cluster_dns is not None:
            self.cluster_dns.attach(self.informers)
        if self.network is not None:
            self.service_network = servicenet.NodeServices(
                self.network,
                client=self.client,
                node_name=self.node_name,
                address=self.address,
                services=self.services,
                slices=self.endpointslices,
                nodes=self.nodes,
            )
            self.service_network.start(sup)
        self.informers.start(sup)
        await self.informers.wait_synced(60)
        if self.cluster_dns is not None:
            sup.start("cluster-dns", self.cluster_dns.run)
        self.syncer.dns.check_limits()
        await self._collect_orphans()
        loops = {
            "heartbeat": self._heartbeats,
            "node-status": self._node_status_loop,
            "pleg": self._pleg,
            "stats": self.stats.run,
        }
        for name, loop in loops.items():
            sup.start(name, loop)
        self._loops.extend(loops)
        # Image and container GC, log rotation, eviction.
        self._loops.extend(self.housekeeping.start(sup))
        if self.tls is not None:
            self.server = AgentServer(
                locate_log=self._locate_log,
                authorized=is_apiserver,
                stats=self.stats.summary,
                metrics=self.metrics.render,
                streams=streaming.StreamingService(
                    runtime=self.runtime,
                    pods=self.pods.indexer.list,
                    sandboxes=self.syncer.sandboxes,
                ),
            )
            await self.server.start(
                host="0.0.0.0", port=self.port, ssl_context=self.tls.server_context()
            )
            sup.start("server", self.server.serve, policy=supervision.Policy.FATAL)
            self._loops.append("server")
            if self.port == 0:
                self.port = self.server.port
                await self._register()  # advertise the real port
        self.ready.set()
        log.info(
            "node %s ready (pod CIDR %s, runtime %s)",
            self.node_name,
            self.pod_cidr,
            self.runtime.name,
        )

    async def shut_down(self, *, grace_period: float) -> None:
        """Graceful node shutdown (:mod:`nodeshutdown`), before :meth:`stop`: the node
        NotReady, then every pod stopped and reported Failed within ``grace_period``."""
        await nodeshutdown.report_node(self.client, self.node_name)
        if self.workers is not None:
            await nodeshutdown.shut_down_pods(self.workers, grace_period=grace_period)
        await self.status.flush(5.0)

    async def stop(self) -> None:
        """Stop the agent; running containers keep running (they outlive it).

        Streams through the agent's server (exec, attach, port-forward, logs -f)
        are closed first, so the API server's side of them ends too."""
        self.ready.clear()
        if self.server is not None:
            await self.supervisor.stop_child("server")  # the listener first: no new streams
            await self.server.stop()  # then every stream it serves
            self.server = None
        for name in reversed(self._loops):
            await self.supervisor.stop_child(name)
        self._loops.clear()
        if self.service_network is not None:
            for name in ("proxy", "routes"):
                await self.supervisor.stop_child(name)
            await self.service_network.stop()  # the rules and the routes go too
        await self.informers.stop()
        if self.cluster_dns is not None:
            await self.supervisor.stop_child("cluster-dns")
            await self.cluster_dns.teardown()
        if self.workers is not None:
            await self.workers.stop()
        await self.status.flush(2.0)
        await self.status.stop()
        await self.recorder.stop()
        if self.syncer is not None and self.syncer.prober is not None:
            await self.syncer.prober.close()
        await self.supervisor.unnest("probes")
        await self.supervisor.unnest("pod-workers")
        if self.runtime is not None:
            await self.runtime.close()

    # --- pods ---------------------------------------------------------------------------
    def _local_ready(self, path: Path) -> None:
        if self.provisioner.owns_path(path):
            self.provisioner.ensure_ready(path)

    def _probe_changed(self, uid: str) -> None:
        if self.workers is not None:
            self.workers.poke(uid)

    async def _probe_restart(
        self, pod: Obj, container: Obj, container_id: str, grace: int | None
    ) -> None:
        assert self.syncer is not None
        if grace is None:
            grace = int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        sandbox = self.syncer.sandboxes.get(pod["metadata"]["uid"])
        await self.syncer.stop_container(pod, container, container_id, sandbox, float(grace))
        self._probe_changed(pod["metadata"]["uid"])

    def _pod_changed(self, pod: Obj) -> None:
        assert self.workers is not None
        self.workers.update(pod)
        self.metrics.pod_updated(pod)

    def _pod_deleted(self, pod: Obj) -> None:
        assert self.workers is not None
        self.workers.remove(pod)
        self.status.forget(pod["metadata"]["uid"])
        self.metrics.pod_deleted(pod)

    async def _collect_orphans(self) -> None:
        """Sandboxes whose pods are gone (deleted while the agent was down) are removed."""
        assert self.syncer is not None and self.runtime is not None
        live = {p["metadata"]["uid"] for p in self.pods.indexer.list()}
        for uid, sandbox in list(self.syncer.sandboxes.items()):
            if uid not in live:
                log.info("removing sandbox of deleted pod %s/%s", sandbox.namespace, sandbox.name)
                with contextlib.suppress(protocol.RuntimeError_):
                    await self.runtime.stop_pod_sandbox(sandbox.id)
                    await self.runtime.remove_pod_sandbox(sandbox.id)
                self.syncer.sandboxes.pop(uid, None)
                self.syncer.volumes.cleanup(uid)

    async def _pleg(self) -> None:
        """Relist containers every second; wake the workers of pods whose containers changed."""
        assert self.runtime is not None and self.workers is not None and self.syncer is not None
        seen: dict[str, tuple[str, int]] = {}
        while True:
            await asyncio.sleep(1.0)
            started = time.monotonic()
            try:
                current = await self.runtime.list_containers()
            except protocol.RuntimeError_ as exc:
                log.debug("relist failed: %s", exc)
                continue
            self.metrics.relisted(
                time.monotonic() - started, current, self.syncer.sandboxes.values()
            )
            by_sandbox = {s.id: s.uid for s in self.syncer.sandboxes.values()}
            now = {c.id: (c.state, c.exit_code) for c in current}
            changed = {c.sandbox_id for c in current if seen.get(c.id) != now[c.id]}
            changed |= {sid for cid, _ in seen.items() if cid not in now for sid in [""]}
            for sandbox_id in changed:
                uid = by_sandbox.get(sandbox_id)
                if uid:
                    self.workers.poke(uid)
            if self.stats is not None and any(
                state == "running" and seen.get(cid, ("",))[0] != "running"
                for cid, (state, _) in now.items()
            ):
                self.stats.poke()  # a container started: its usage is wanted soon
            seen = now

    def _locate_log(self, namespace: str, pod: str, container: str, previous: bool) -> Path | None:
        from pilothouse.node import logs

        for obj in self.pods.indexer.list():
            md = obj["metadata"]
            if md.get("namespace") == namespace and md.get("name") == pod:
                base = self.data_dir / "logs" / f"{namespace}_{pod}_{md['uid']}" / container
                files = logs.log_files(base)
                if previous:
                    return files[-2] if len(files) > 1 else None
                return files[-1] if files else None
        return None
