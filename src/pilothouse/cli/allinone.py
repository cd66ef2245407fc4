"""The all-in-one cluster: the API server plus the components that run beside it.

``pilothouse server`` and the test harness both compose the cluster here, in
one explicit start-up order: the API server first (ready when it answers), then
the components, each with its own client on the server's private socket and its
own least-privilege identity, as upstream's components have: the controller
manager is ``system:kube-controller-manager`` and each of its controllers its own
``kube-system`` ServiceAccount, the scheduler ``system:kube-scheduler``, the node
agent ``system:node:<host>`` in ``system:nodes`` (each with a bearer token the
server made for it at start). Even without the controller manager the controllers
a cluster cannot do without run: the ``default`` ServiceAccount and the
``kube-root-ca.crt`` ConfigMap of every namespace (pods need both), and the
aggregation of the ``admin``, ``edit`` and ``view`` roles.
Components run as supervised tasks; ``stop`` cancels them in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilothouse.api import rbac
from pilothouse.apiserver import server as apiserver
from pilothouse.apiserver.auth import certs
from pilothouse.apiserver.authn import user as user_module
from pilothouse.client import config, rest
from pilothouse.controllers import manager

if TYPE_CHECKING:
    from pilothouse.node import agent, kubeletconfig
    from pilothouse.node import dns as node_dns
    from pilothouse.scheduler import config as scheduler_config
    from pilothouse.scheduler import scheduler

log = logging.getLogger(__name__)


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
    extra: dict[str, object] = field(default_factory=dict)


# What runs when the controller manager does not: pods need the first two, and the
# admin, edit and view roles are empty until they are aggregated.
IDENTITY_CONTROLLERS = ["serviceaccount", "root-ca-cert-publisher", "clusterrole-aggregation"]


class AllInOne:
    def __init__(
        self, server_config: apiserver.ServerConfig, options: Options | None = None
    ) -> None:
        self.options = options or Options()
        self.server = apiserver.APIServer(server_config)
        self.clients: list[rest.Client] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.controller_manager: manager.ControllerManager | None = None
        self.scheduler: scheduler.Scheduler | None = None
        self.agent: agent.Agent | None = None

    def client(self, user_agent: str, user: user_module.UserInfo | None = None) -> rest.Client:
        """A client on the server's socket, acting as ``user`` (the server itself if None)."""
        cfg = config.local_socket(self.server.socket_path).with_user_agent(user_agent)
        if user is not None:
            assert self.server.identity is not None
            cfg = cfg.with_token(self.server.identity.component_token(user))
        c = rest.Client(cfg)
        self.clients.append(c)
        return c

    async def start(self) -> None:
        await self.server.start()
        pki = self.server.pki
        assert pki is not None
        enabled = self.options.enabled_controllers
        if not self.options.controllers:
            enabled = IDENTITY_CONTROLLERS
        elif enabled is not None:
            enabled = [*enabled, *(c for c in IDENTITY_CONTROLLERS if c not in enabled)]
        self.controller_manager = manager.ControllerManager(
            self.client(
                "pilothouse-controller-manager", user_module.UserInfo(rbac.KUBE_CONTROLLER_MANAGER)
            ),
            enabled=enabled,
            leader_elect=self.options.leader_elect,
            use_service_account_credentials=self.options.use_service_account_credentials,
            root_ca=pki.ca_cert.read_bytes(),
            signing_files=(pki.ca_cert, pki.ca_key),
        )
        self._supervise("controller-manager", self.controller_manager.run())
        run_scheduler = self.options.scheduler
        if run_scheduler is None:
            run_scheduler = self.options.controllers
        if run_scheduler:
            from pilothouse.scheduler import scheduler  # numpy: only when it runs

            self.scheduler = scheduler.Scheduler(
                self.client("pilothouse-scheduler", user_module.UserInfo(rbac.KUBE_SCHEDULER)),
                configuration=self.options.scheduler_config,
                leader_elect=self.options.leader_elect,
            )
            self._supervise("scheduler", self.scheduler.run())
        if self.options.agent:
            self._supervise("agent", self._run_agent())

    async def _run_agent(self) -> None:
        """This machine's node agent, on the server's socket. A host that cannot run
        pods is reported once, clearly; the control plane keeps running."""
        from pilothouse.node import agent, servicenet, setup
        from pilothouse.node import dns as node_dns
        from pilothouse.node.runtime.images import registries

        try:
            await asyncio.to_thread(setup.check_host)
        except setup.HostNotReady as exc:
            log.error(
                "%s\nthe node agent is not running; fix the above and restart, "
                "or pass --disable-agent for a control plane only",
                exc,
            )
            return
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
            tls=agent.AgentTLS(cert, key, pki.ca_cert.read_bytes()),
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

    def _supervise(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)

        def done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and t.exception() is not None:
                log.error("%s stopped: %r", name, t.exception(), exc_info=t.exception())

        task.add_done_callback(done)
        self.tasks[name] = task

    async def stop(self) -> None:
        for name in reversed(list(self.tasks)):
            task = self.tasks.pop(name)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for c in self.clients:
            await c.close()
        self.clients.clear()
        await self.server.stop()
