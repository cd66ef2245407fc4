"""Development hosts: more "machines" on this one, for multi-node clusters on a laptop
or a CI runner — each a network namespace running its own ``pilothouse agent``.

A :class:`Lan` is a Linux bridge on this machine (``phlan0``, 10.99.0.1/24 by
default): the network every dev host plugs into, so all nodes share one L2
segment as host-gw routing needs, and this machine (the server's host) is on it
at the first address. A :class:`DevHost` is::

    /run/netns/phhost-<name>     its network namespace (its own routes, nftables,
                                 pod bridge, sysctls)
    phv-<name>  <->  eth0        a veth from the LAN bridge, 10.99.0.<index+1>
    <data_dir>                   its data directory (images, pods, certificates)
    /run/ph-<name>               its runtime state (crun, conmon sockets)
    /pilothouse-<name>           its cgroup root, in every hierarchy

and :meth:`DevHost.start_agent` runs ``pilothouse agent`` inside the namespace
(``nsenter --net``: the mount namespace stays the machine's, so the agent's
mounts, pinned namespaces and containers are visible and manageable from here).
What two agents on one machine would otherwise share is made per host: the
network namespace carries the per-node kernel state (nftables tables, the
``ph0`` bridge, routes, the agent's port), and the flags above the rest.
:meth:`DevHost.destroy` stops the agent, removes whatever its pods left
(:meth:`DevHost.wipe`: containers, mounts, pinned namespaces, cgroups) and the
namespace — so a test can prove nothing is left behind.

Synchronous, like :class:`pilothouse.testing.ServerProcess`: it drives ``ip``,
``nsenter`` and processes, and is used from test functions and, later, from the
``pilothouse dev cluster`` command. Needs root.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

NETNS_DIR = Path("/run/netns")
CGROUP_FS = Path("/sys/fs/cgroup")
HOST_NETNS_PREFIX = "phhost-"


class DevHostError(Exception):
    """A step of building or tearing down a dev host failed; the message says which."""


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise DevHostError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def _link_exists(name: str, netns: str = "") -> bool:
    prefix = ("ip", "netns", "exec", netns) if netns else ()
    return _run(*prefix, "ip", "link", "show", name, check=False).returncode == 0


@dataclass
class Lan:
    """The bridge dev hosts share; this machine is on it at the first address."""

    bridge: str = "phlan0"
    subnet: str = "10.99.0.0/24"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def gateway(self) -> str:
        """This machine's address on the LAN (the dev hosts' default route)."""
        return self.address(0)

    def address(self, index: int) -> str:
        return str(self.network.network_address + index + 1)

    def up(self) -> Lan:
        """Create the bridge and give this machine its address (idempotent)."""
        if not _link_exists(self.bridge):
            _run("ip", "link", "add", self.bridge, "type", "bridge")
        prefix = self.network.prefixlen
        have = _run("ip", "-j", "-4", "addr", "show", "dev", self.bridge).stdout
        addrs = {a["local"] for i in json.loads(have or "[]") for a in i.get("addr_info", [])}
        if self.gateway not in addrs:
            _run("ip", "addr", "add", f"{self.gateway}/{prefix}", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        return self

    def down(self) -> None:
        """Remove the bridge (and with it every route through it)."""
        if _link_exists(self.bridge):
            _run("ip", "link", "delete", self.bridge)


@dataclass
class DevHost:
    """One dev host on ``lan``: see the module docstring for what it is made of."""

    lan: Lan
    name: str
    index: int
    data_dir: Path
    agent_port: int = 10250
    pod_bridge: str = "ph0"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.index < self.lan.network.num_addresses - 2:
            raise DevHostError(f"host index {self.index} is outside {self.lan.subnet}")

    # --- names ----------------------------------------------------------------------------
    @property
    def netns(self) -> str:
        return f"{HOST_NETNS_PREFIX}{self.name}"

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.netns

    @property
    def address(self) -> str:
        return self.lan.address(self.index)

    @property
    def veth(self) -> str:
        return f"phv-{self.name}"[:15]

    @property
    def run_dir(self) -> Path:
        return Path(f"/run/ph-{self.name}")

    @property
    def cgroup_root(self) -> str:
        return f"/pilothouse-{self.name}"

    # --- the machine --------------------------------------------------------------------
    def create(self) -> DevHost:
        """The namespace, its link to the LAN, addresses, routes and sysctls."""
        if self.netns_path.exists():
            raise DevHostError(f"{self.netns} exists already: destroy() it first")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _run("ip", "netns", "add", self.netns)
        try:
            _run("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0",
                 "netns", self.netns)  # fmt: skip
            _run("ip", "link", "set", self.veth, "master", self.lan.bridge, "up")
            prefix = self.lan.network.prefixlen
            self.exec("ip", "link", "set", "lo", "up")
            self.exec("ip", "addr", "add", f"{self.address}/{prefix}", "dev", "eth0")
            self.exec("ip", "link", "set", "eth0", "up")
            self.exec("ip", "route", "add", "default", "via", self.lan.gateway)
            self.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
        except DevHostError:
            self.destroy()
            raise
        return self

    def exec(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the host's network namespace."""
        return _run("ip", "netns", "exec", self.netns, *cmd, check=check)

    # --- the agent ------------------------------------------------------------------------
    def agent_command(self, *, server: str, token: str, extra: tuple[str, ...] = ()) -> list[str]:
        return [
            "nsenter", f"--net={self.netns_path}", "--",
            sys.executable, "-m", "pilothouse.cli.main", "agent",
            "--server", server, "--token", token,
            "--node-name", self.name, "--address", self.address,
            "--data-dir", str(self.data_dir),
            "--port", str(self.agent_port),
            "--bridge", self.pod_bridge,
            "--cgroup-root", self.cgroup_root,
            "--run-dir", str(self.run_dir),
            *extra,
        ]  # fmt: skip

    def start_agent(
        self, *, server: str, token: str, extra: tuple[str, ...] = ()
    ) -> subprocess.Popen[bytes]:
        """Run ``pilothouse agent`` in the host; its output goes to ``<data_dir>.log``."""
        if self.process is not None and self.process.poll() is None:
            raise DevHostError(f"the agent of {self.name} is running already")
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-agent.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.agent_command(server=server, token=token, extra=extra),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self.process

    def stop_agent(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``: the agent removes its rules and routes."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    # --- tearing down -------------------------------------------------------------------
    def wipe(self) -> list[str]:
        """Remove what the host's pods left on the machine after its agent stopped:
        containers (through crun, so conmon exits), mounts under the data dir, pinned
        pod namespaces, the cgroup tree, the run dir. Returns what it removed."""
        removed: list[str] = []
        crun_root = self.run_dir / "crun"
        if crun_root.is_dir():
            listing = _run("crun", "--root", str(crun_root), "list", "-q", check=False).stdout
            for cid in listing.split():
                _run("crun", "--root", str(crun_root), "kill", cid, "KILL", check=False)
                _run("crun", "--root", str(crun_root), "delete", "-f", cid, check=False)
                removed.append(f"container {cid}")
        for record in self.data_dir.glob("agent/runtime/sandboxes/*/sandbox.json"):
            with contextlib.suppress(OSError, ValueError):
                netns = json.loads(record.read_text()).get("netns_path") or ""
                if netns and os.path.lexists(netns):
                    _run("umount", "-l", netns, check=False)
                    with contextlib.suppress(OSError):
                        os.unlink(netns)
                    removed.append(netns)
        mounts = Path("/proc/self/mounts").read_text().splitlines()
        ours = [m.split()[1] for m in mounts if m.split()[1].startswith(str(self.data_dir))]
        for target in sorted(ours, key=len, reverse=True):
            _run("umount", "-l", target, check=False)
            removed.append(target)
        for hierarchy in CGROUP_FS.iterdir() if CGROUP_FS.is_dir() else ():
            root = hierarchy / self.cgroup_root.lstrip("/")
            if root.is_dir():
                for d in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                    if d.is_dir():
                        with contextlib.suppress(OSError):
                            d.rmdir()
                with contextlib.suppress(OSError):
                    root.rmdir()
                    removed.append(str(root))
        if self.run_dir.exists():
            subprocess.run(["rm", "-rf", str(self.run_dir)], check=False)
        return removed

    def destroy(self) -> None:
        """Stop the agent, wipe what it left, remove the namespace and the veth."""
        self.stop_agent()
        self.wipe()
        if self.netns_path.exists():
            _run("ip", "netns", "delete", self.netns, check=False)
        deadline = time.monotonic() + 5
        while _link_exists(self.veth) and time.monotonic() < deadline:
            time.sleep(0.05)  # the veth goes with the namespace, asynchronously
        if _link_exists(self.veth):
            _run("ip", "link", "delete", self.veth, check=False)

    def leftovers(self) -> list[str]:
        """What of this host is still on the machine (empty after :meth:`destroy`)."""
        out = []
        if self.netns_path.exists():
            out.append(str(self.netns_path))
        if _link_exists(self.veth):
            out.append(f"link {self.veth}")
        out += [str(h / self.cgroup_root.lstrip("/")) for h in CGROUP_FS.iterdir()
                if (h / self.cgroup_root.lstrip("/")).exists()]  # fmt: skip
        mounts = Path("/proc/self/mounts").read_text()
        out += [line.split()[1] for line in mounts.splitlines() if str(self.data_dir) in line]
        if self.run_dir.exists():
            out.append(str(self.run_dir))
        return out
