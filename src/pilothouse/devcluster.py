"""A whole multi-machine cluster on this machine: ``pilothouse dev cluster``.

Built from the dev hosts of :mod:`pilothouse.devhosts`:

* the LAN bridge (``phlan0``, 10.99.0.0/24), this machine at 10.99.0.1;
* with more than one server, an etcd cluster of up to three members (Debian's
  ``etcd``, on loopback ports of this machine) as the datastore; one server alone
  keeps the embedded SQLite;
* ``servers`` API servers as processes of this machine, each on an address of its
  own on the LAN (10.99.0.201, .202, …) and the same port, as separate machines
  would be: the first founds the cluster, the others join with its token and
  ``--server`` — nothing copied by hand;
* ``agents`` dev hosts (network namespaces at 10.99.0.2, .3, …), each running
  ``pilothouse agent`` joined through the first server, reaching every server
  through its own load balancer.

:meth:`DevCluster.down` removes all of it (agents and what their pods left, the
namespaces, the servers, etcd, the addresses, the bridge); the data directory stays
unless asked. Synchronous, like :mod:`devhosts` (it drives processes and ``ip``);
needs root.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pilothouse import devhosts, testing

SERVER_ADDRESS_BASE = 200  # servers at 10.99.0.201 and up; agents at .2 and up


class DevClusterError(Exception):
    """The cluster could not be brought up; the message says which step failed."""


@dataclass
class DevCluster:
    root: Path
    servers: int = 1
    agents: int = 2
    port: int = 6443
    lan: devhosts.Lan = field(default_factory=devhosts.Lan)
    server_args: tuple[str, ...] = ()
    agent_args: tuple[str, ...] = ()
    etcd: object | None = None  # an EtcdCluster while up
    server_processes: list[testing.ServerProcess] = field(default_factory=list)
    hosts: list[devhosts.DevHost] = field(default_factory=list)
    _addresses: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.servers < 1:
            raise ValueError("a cluster needs at least one server (--servers 1 or more)")
        if self.agents < 0 or self.agents > SERVER_ADDRESS_BASE - 2:
            raise ValueError(f"--agents must be between 0 and {SERVER_ADDRESS_BASE - 2}")
        if self.servers > self.lan.network.num_addresses - SERVER_ADDRESS_BASE - 1:
            raise ValueError(f"too many servers for {self.lan.subnet}")

    # --- names ------------------------------------------------------------------------
    def server_address(self, i: int) -> str:
        return self.lan.address(SERVER_ADDRESS_BASE + i)

    @property
    def kubeconfig(self) -> Path:
        return self.server_processes[0].kubeconfig

    @property
    def token(self) -> str:
        return (self.root / "server-0" / "token").read_text().strip()

    # --- bringing it up ---------------------------------------------------------------
    def up(self, *, timeout: float = 90.0, preload: list[str] | None = None) -> DevCluster:
        """Everything, in order; on failure what was made is removed again. ``preload``:
        image tarballs or references for every agent's store before it starts (dev
        hosts cannot reach a registry on this machine's loopback)."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.lan.up()
            datastore: list[str] = []
            if self.servers > 1:
                from pilothouse.storage.etcd import testing as etcd_testing

                if not etcd_testing.available():
                    raise DevClusterError(
                        "several servers need etcd: apt-get install etcd-server (Debian's)"
                    )
                etcd = etcd_testing.EtcdCluster(min(3, self.servers))
                self.etcd = etcd
                etcd.start()
                datastore = ["--datastore-endpoint", etcd.endpoint]
            for i in range(self.servers):
                self._start_server(i, datastore, timeout=timeout)
            for i in range(self.agents):
                self._start_agent(i, preload or [])
        except BaseException:
            self.down()
            raise
        return self

    def _start_server(self, i: int, datastore: list[str], *, timeout: float) -> None:
        address = self.server_address(i)
        devhosts._run(
            "ip", "addr", "add", f"{address}/{self.lan.network.prefixlen}", "dev", self.lan.bridge
        )
        self._addresses.append(address)
        join = []
        if i > 0:
            first = self.server_processes[0]
            join = ["--token", self.token, "--server", first.url]
        srv = testing.ServerProcess(
            self.root / f"server-{i}",
            port=self.port,
            host=address,
            extra_args=[*datastore, *join, *self.server_args],
        )
        self.server_processes.append(srv)
        srv.start(timeout=timeout)

    def _start_agent(self, i: int, preload: list[str]) -> None:
        host = devhosts.DevHost(
            self.lan, f"agent-{i}", index=1 + i, data_dir=self.root / f"agent-{i}"
        )
        self.hosts.append(host)
        host.create()
        for image in preload:
            subprocess.run(
                [*_pilothouse(), "images", "pull", image, "-q", "--data-dir", str(host.data_dir)],
                check=True,
                capture_output=True,
                timeout=300,
            )
        host.start_agent(
            server=self.server_processes[0].url, token=self.token, extra=self.agent_args
        )

    def wait_nodes_ready(self, timeout: float = 120.0) -> None:
        names = {h.name for h in self.hosts}
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            out = self.kubectl("get", "nodes", "--no-headers", check=False).stdout
            ready = {line.split()[0] for line in out.splitlines() if " Ready " in f" {line} "}
            if names <= ready:
                return
            time.sleep(0.5)
        tails = "\n".join(f"--- {h.name}:\n{h.log_tail(1500)}" for h in self.hosts)
        raise DevClusterError(f"nodes not Ready after {timeout}s:\n{out}\n{tails}")

    def kubectl(
        self, *args: str, server: int = 0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.server_processes[server].kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise DevClusterError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    # --- tearing down -----------------------------------------------------------------
    def down(self, *, remove_data: bool = False) -> list[str]:
        """Stop and remove everything :meth:`up` made; returns what is still left (empty
        when all went)."""
        for host in reversed(self.hosts):
            with contextlib.suppress(devhosts.DevHostError):
                host.destroy()
        for srv in reversed(self.server_processes):
            srv.stop()
        if self.etcd is not None:
            self.etcd.close()  # type: ignore[attr-defined]
            self.etcd = None
        for address in self._addresses:
            devhosts._run(
                "ip", "addr", "del", f"{address}/{self.lan.network.prefixlen}", "dev",
                self.lan.bridge, check=False,
            )  # fmt: skip
        self._addresses.clear()
        self.lan.down()
        left = [item for host in self.hosts for item in host.leftovers()]
        left += [
            f"server process {s.proc.pid}"
            for s in self.server_processes
            if s.proc is not None and s.proc.poll() is None
        ]
        if remove_data:
            shutil.rmtree(self.root, ignore_errors=True)
        return left


def _pilothouse() -> list[str]:
    import sys

    return [sys.executable, "-m", "pilothouse.cli.main"]
