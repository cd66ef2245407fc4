"""The all-in-one cluster: the API server plus the components that run beside it.

``pilothouse server`` and the test harness both compose the cluster here, in
one explicit start-up order: the API server first (ready when it answers), then
the components, each with its own client on the server's private socket.
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

from pilothouse.apiserver import server as apiserver
from pilothouse.apiserver.auth import certs
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
    agent_config: kubeletconfig.KubeletConfig | None = None  # None: upstream's defaults
    agent_registries: Path | None = None  # registries.yaml (None: DATA_DIR/registries.yaml)
    agent_default_registry_endpoint: bool = True
    extra: dict[str, object] = field(default_factory=dict)


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

    def client(self, user_agent: str) -> rest.Client:
        c = rest.Client(config.local_socket(self.server.socket_path).with_user_agent(user_agent))
        self.clients.append(c)
        return c

    async def start(self) -> None:
        await self.server.start()
        if self.options.controllers:
            self.controller_manager = manager.ControllerManager(
                self.client("pilothouse-controller-manager"),
                enabled=self.options.enabled_controllers,
                leader_elect=self.options.leader_elect,
            )
            self._supervise("controller-manager", self.controller_manager.run())
        run_scheduler = self.options.scheduler
        if run_scheduler is None:
            run_scheduler = self.options.controllers
        if run_scheduler:
            from pilothouse.scheduler import scheduler  # numpy: only when it runs

            self.scheduler = scheduler.Scheduler(
                self.client("pilothouse-scheduler"),
                configuration=self.options.scheduler_config,
                leader_elect=self.options.leader_elect,
            )
            self._supervise("scheduler", self.scheduler.run())
        if self.options.agent:
            self._supervise("agent", self._run_agent())

    async def _run_agent(self) -> None:
        """This machine's node agent, on the server's socket. A host that cannot run
        pods is reported once, clearly; the control plane keeps running."""
        from pilothouse.node import agent, setup
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
        options = self.options
        registries_file = registries.RegistriesFile(
            options.agent_registries or self.server.config.data_dir / "registries.yaml",
            default_endpoint=options.agent_default_registry_endpoint,
        )
        self.agent = agent.Agent(
            self.client("pilothouse-agent"),
            node_name=name,
            address=address,
            data_dir=data_dir,
            runtime_factory=setup.runtime_factory(data_dir, registries=registries_file),
            tls=agent.AgentTLS(cert, key, pki.ca_cert.read_bytes()),
            dns=options.agent_dns or node_dns.Settings(serve=True),
            config=options.agent_config,
            port=options.agent_config.port if options.agent_config else agent.AGENT_PORT,
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
