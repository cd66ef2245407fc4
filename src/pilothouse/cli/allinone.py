"""The all-in-one cluster: the API server plus the components that run beside it.

``pilothouse server`` and the test harness both compose the cluster here, in
one explicit start-up order: the API server first (ready when it answers), then
the components, each with its own client of the server — on its private socket, or
with ``in_process`` its in-process transport (:mod:`pilothouse.apiserver.inprocess`:
the server's whole handler chain, no socket) — and its own least-privilege identity, as upstream's components have: the controller
manager is ``system:kube-controller-manager`` and each of its controllers its own
``kube-system`` ServiceAccount, the scheduler ``system:kube-scheduler``, the node
agent ``system:node:<host>`` in ``system:nodes`` (each with a bearer token the
server made for it at start). Even without the controller manager the controllers
a cluster cannot do without run: the ``default`` ServiceAccount and the
``kube-root-ca.crt`` ConfigMap of every namespace (pods need both), and the
aggregation of the ``admin``, ``edit`` and ``view`` roles.

The controller manager and the scheduler read through one informer factory
(``shared-informers``, with the controller manager's identity, whose role may
list and watch everything), which lists and watches the API server's own watch
cache (:mod:`pilothouse.apiserver.cachesource`): each object both read is held once
in the process, the cache's, not decoded again per component as upstream's separate
processes must. Their writes keep their own identities. Cached objects are
read-only to every consumer (see :mod:`pilothouse.client.informer`).

Supervision: one root :class:`~pilothouse.supervisor.Supervisor` for the
process, with a nested supervisor per part — ``apiserver``, ``controller-manager``
(whose ``shared-informers`` the scheduler reads too), ``scheduler``, ``node-agent``. Each component's ``main`` child is its own loop
(restarted with back-off if it fails); its loops are children beside it. ``/readyz``
has one check per component. A FATAL failure anywhere (the store's writer, a
listener, the agent's server) fails :attr:`AllInOne.supervisor`, which ``pilothouse
server`` turns into a non-zero exit. A host that cannot run pods stops the start-up
itself.

``stop`` is ordered and bounded: the server stops taking outside work and ends
every stream; then each component stops (agent, scheduler, controllers) while
the server still answers them (socket and in-process transport); then the server drains
and closes the store. Each step gets what is left of one time budget.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pilothouse import supervisor as supervision
from pilothouse.api import rbac
from pilothouse.apiserver import cachesource, health, serverconfig
from pilothouse.apiserver import server as apiserver
from pilothouse.apiserver.auth import certs
from pilothouse.apiserver.authn import user as user_module
from pilothouse.client import config, informer, rest
from pilothouse.controllers import manager

if TYPE_CHECKING:
    from pilothouse.node import agent, kubeletconfig
    from pilothouse.node import dns as node_dns
    from pilothouse.scheduler import config as scheduler_config
    from pilothouse.scheduler import scheduler

log = logging.getLogger(__name__)

STOP_TIMEOUT = 8.0


class HostNotReady(Exception):
    """This machine cannot run the node agent (what is missing, and how to fix it)."""


@dataclass
class Options:
    controllers: bool = True
    enabled_controllers: list[str] | None = None
    leader_elect: bool = False
    # None: run the scheduler whenever the controllers run (test harnesses that turn
    # the control loops off get no scheduler either).
    scheduler: bool | None = None
    scheduler_config: scheduler_config.Configuration | None = None
    agent: bool = False
    agent_dns: node_dns.Settings | None = None  # None: defaults, serving cluster DNS
    # Each controller as its own ServiceAccount (upstream's --use-service-account-credentials).
    use_service_account_credentials: bool = True
    local_storage_path: Path | None = None  # default: <data dir>/agent/storage
    agent_config: kubeletconfig.KubeletConfig | None = None  # None: upstream's defaults
    agent_registries: Path | None = None  # registries.yaml (None: DATA_DIR/registries.yaml)
    agent_default_registry_endpoint: bool = True
    # The components reach the server in process (its whole handler chain, no socket):
    # 10-15 % less server CPU a pod in a rollout. Their cheaper requests would crowd
    # outside clients on the one event loop; the components' flow-control levels follow
    # the loop's lag (apiserver/adaptivelimit.py), which keeps that within the socket's
    # figures (BENCHMARKS.md, "scale: … both parts together"). Off:
    # `pilothouse server --no-in-process-components`.
    in_process: bool = True
    extra: dict[str, object] = field(default_factory=dict)


# What runs when the controller manager does not: pods need the first two, and the
# admin, edit and view roles are empty until they are aggregated.
IDENTITY_CONTROLLERS = ["serviceaccount", "root-ca-cert-publisher", "clusterrole-aggregation"]


class AllInOne:
    def __init__(
        self, server_config: serverconfig.ServerConfig, options: Options | None = None
    ) -> None:
        self.options = options or Options()
        self.supervisor = supervision.Supervisor("pilothouse")
        self.server = apiserver.APIServer(
            server_config, supervisor=self.supervisor.nest("apiserver")
        )
        self.clients: list[rest.Client] = []
        # Component name → its supervisor, in start order.
        self.components: dict[str, supervision.Supervisor] = {}
        self.controller_manager: manager.ControllerManager | None = None
        self.scheduler: scheduler.Scheduler | None = None
        self.agent: agent.Agent | None = None
        # What the controller manager and the scheduler read through (made by start).
        self.informers: informer.InformerFactory | None = None

    def client(self, user_agent: str, user: user_module.UserInfo | None = None) -> rest.Client:
        """A client of the server in this process — its in-process transport, or its
        private socket (:attr:`Options.in_process`) — acting as ``user`` (the server
        itself if None)."""
        cfg = config.local_socket(self.server.socket_path)
        if self.options.in_process:
            assert self.server.in_process is not None
            cfg = config.in_process(self.server.in_process)
        cfg = cfg.with_user_agent(user_agent)
        if user is not None:
            assert self.server.identity is not None
            cfg = cfg.with_token(self.server.identity.component_token(user))
        c = rest.Client(cfg)
        self.clients.append(c)
        return c

    def _component(self, name: str, started: Callable[[], bool]) -> supervision.Supervisor:
        sup = self.components[name] = self.supervisor.nest(name)
        self.server.component_checks.extend(health.supervised(name, sup, started=started))
        return sup

    async def start(self) -> None:
        if self.options.agent:
            await self._check_host()
        await self.server.start()
        pki = self.server.pki
        assert pki is not None
        enabled = self.options.enabled_controllers
        if not self.options.controllers:
            enabled = IDENTITY_CONTROLLERS
        elif enabled is not None:
            enabled = [*enabled, *(c for c in IDENTITY_CONTROLLERS if c not in enabled)]
        # Up once its controllers run (or, under leader election, while it stands by).
        sup = self._component(
            "controller-manager",
            lambda: (
                self.options.leader_elect
                or (self.controller_manager is not None and self.controller_manager.ready.is_set())
            ),
        )
        # The informers both components read through: in the controller manager's
        # supervisor (its health, and stopped after the scheduler, which stops first).
        informers_user = user_module.UserInfo(rbac.KUBE_CONTROLLER_MANAGER)
        informers = self.informers = informer.InformerFactory(
            self.client("pilothouse-controller-manager/shared-informers", informers_user),
            transform=informer.trim_managed_fields,
            # The watch cache's own objects, where that identity may read them.
            local=cachesource.CacheSource(
                registry=self.server.registry,
                stores=self.server.stores,
                authorizer=self.server.identity.authorizer if self.server.identity else None,
                user=informers_user,
            ),
        )
        informers.start(sup.nest("shared-informers"))
        self.controller_manager = manager.ControllerManager(
            self.client(
                "pilothouse-controller-manager", user_module.UserInfo(rbac.KUBE_CONTROLLER_MANAGER)
            ),
            supervisor=sup,
            enabled=enabled,
            leader_elect=self.options.leader_elect,
            use_service_account_credentials=self.options.use_service_account_credentials,
            root_ca=pki.ca_cert.read_bytes(),
            signing_files=(pki.ca_cert, pki.ca_key),
            informers=informers,
        )
        sup.start("main", self.controller_manager.run)
        run_scheduler = self.options.scheduler
        if run_scheduler is None:
            run_scheduler = self.options.controllers
        if run_scheduler:
            from pilothouse.scheduler import scheduler  # numpy: only when it runs

            sup = self._component(
                "scheduler",
                lambda: (
                    self.options.leader_elect
                    or (self.scheduler is not None and self.scheduler.ready.is_set())
                ),
            )
            self.scheduler = scheduler.Scheduler(
                self.client("pilothouse-scheduler", user_module.UserInfo(rbac.KUBE_SCHEDULER)),
                supervisor=sup,
                configuration=self.options.scheduler_config,
                leader_elect=self.options.leader_elect,
                informers=informers,
            )
            sup.start("main", self.scheduler.run)
        if self.options.agent:
            sup = self._component(
                "node-agent", lambda: self.agent is not None and self.agent.ready.is_set()
            )
            sup.start("main", self._run_agent)

    async def _check_host(self) -> None:
        """k3s's rule: a node that cannot run pods stops the start, with the remedy."""
        from pilothouse.node import setup

        try:
            await asyncio.to_thread(setup.check_host)
        except setup.HostNotReady as exc:
            raise HostNotReady(
                f"{exc}\nfix the above and start again, or pass --disable-agent to run "
                "a control plane only"
            ) from None

    async def _run_agent(self) -> None:
        """This machine's node agent, a client of the server in this process, until cancelled."""
        from pilothouse.node import agent, servicenet, setup
        from pilothouse.node import dns as node_dns
        from pilothouse.node import server as agent_server
        from pilothouse.node.runtime.images import registries

        pki = self.server.pki
        assert pki is not None
        name = socket.gethostname().lower()
        address = self.server.advertise_address
        cert, key = certs.issue_serving_cert(
            pki, common_name=f"system:node:{name}", hostnames=[name], ips=[address]
        )
        data_dir = self.server.config.data_dir / "agent"
        node_user = user_module.UserInfo(f"{rbac.NODE_USER_PREFIX}{name}", (rbac.NODES_GROUP,))
        options = self.options
        registries_file = registries.RegistriesFile(
            options.agent_registries or self.server.config.data_dir / "registries.yaml",
            default_endpoint=options.agent_default_registry_endpoint,
        )
        self.agent = agent.Agent(
            self.client("pilothouse-agent", node_user),
            node_name=name,
            address=address,
            data_dir=data_dir,
            runtime_factory=setup.runtime_factory(data_dir, registries=registries_file),
            supervisor=self.components["node-agent"],
            tls=agent_server.AgentTLS(cert, key, pki.ca_cert.read_bytes()),
            dns=options.agent_dns or node_dns.Settings(serve=True),
            config=options.agent_config,
            port=options.agent_config.port if options.agent_config else agent.AGENT_PORT,
            network=servicenet.ServiceNetwork.real(),
            storage_dir=options.local_storage_path,
        )
        try:
            await self.agent.start()
            await asyncio.Event().wait()  # until cancelled
        finally:
            await self.agent.stop()

    async def stop(self, *, timeout: float = STOP_TIMEOUT) -> None:
        """Stop everything within ``timeout`` seconds (see the module docstring)."""
        deadline = time.monotonic() + timeout

        def left(at_most: float) -> float:
            return max(0.1, min(at_most, deadline - time.monotonic()))

        began = time.monotonic()
        streams = len(self.server.app.long_running) if self.server.app else 0
        try:
            await asyncio.wait_for(self.server.begin_shutdown(), left(3.0))
        except TimeoutError:
            log.error("ending the API server's streams took too long; going on")
        log.info(
            "API server: stopped listening, ended %d stream(s) in %.2fs",
            streams,
            time.monotonic() - began,
        )
        for name in reversed(list(self.components)):
            began = time.monotonic()
            # "main" first: its own stop is orderly (an agent lets pod terminations
            # finish, recorders flush); then whatever of the component remains.
            await self.components[name].stop_child("main", timeout=left(5.0))
            await self.supervisor.unnest(name, timeout=left(2.0))
            log.info("%s stopped in %.2fs", name, time.monotonic() - began)
        self.components.clear()
        for c in self.clients:
            await c.close()
        self.clients.clear()
        began = time.monotonic()
        try:
            await asyncio.wait_for(self.server.stop(), left(timeout))
        except TimeoutError:
            log.error("the API server did not finish stopping in time")
        log.info("API server stopped in %.2fs", time.monotonic() - began)
        await self.supervisor.stop(timeout=left(1.0))
