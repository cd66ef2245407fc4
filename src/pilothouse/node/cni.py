"""Pod networking: named network namespaces and the standard CNI plugins.

Every pod that does not use the host's network gets a namespace pinned at
``/run/netns/<name>`` (where ``ip netns`` looks, so operators can inspect it)
and an ``eth0`` from the ``bridge`` plugin: a veth into the node bridge
(``ph0``) with an address from ``host-local`` IPAM on the node's pod CIDR, the
bridge address (``.1``) as gateway, and hairpin mode on the bridge port so a
pod reaches itself through a Service address.

Outbound masquerading is one node-level nftables rule (traffic from the pod
CIDR to anything outside the cluster CIDR), not the bridge plugin's ``ipMasq``:
that option adds an iptables chain per pod, which costs ~12 ms of ``iptables``
runs on every pod start and stop and a rule set that grows with the pod count.

Plugins are run directly (the CNI protocol is environment variables, a JSON
config on stdin and a JSON result on stdout), concurrently for different pods;
host-local serialises its own lease file.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import json
import os
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.node.runtime import linux

NETNS_DIR = Path("/run/netns")
DEFAULT_PLUGIN_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
CNI_VERSION = "1.0.0"
REQUIRED_PLUGINS = ("bridge", "host-local", "loopback")
SIOCGIFMTU = 0x8921


class CNIError(Exception):
    """A CNI plugin failed; ``message`` is the plugin's own explanation."""

    def __init__(self, plugin: str, command: str, message: str, *, code: int = 0) -> None:
        super().__init__(f"CNI {plugin} {command} failed: {message}")
        self.plugin = plugin
        self.command = command
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Attachment:
    """The result of attaching one pod to the network."""

    ip: str
    prefix_len: int
    gateway: str
    mac: str = ""
    host_interface: str = ""  # the host end of the veth
    result: dict[str, Any] = field(default_factory=dict)


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


async def create_netns(name: str) -> Path:
    """A new network namespace pinned at /run/netns/<name>, with ``lo`` up."""
    ensure_netns_dir()
    path = netns_path(name)
    await linux.pin_new_namespaces({"net": path})
    return path


def ensure_netns_dir() -> None:
    NETNS_DIR.mkdir(parents=True, exist_ok=True)


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _link_exists(name: str) -> bool:
    """In this process's network namespace (not /sys/class/net: see default_mtu)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def remove_netns(path: Path) -> None:
    """Release a pinned namespace (idempotent)."""
    linux.unpin(path)


def default_mtu() -> int:
    """The MTU of the interface holding the default route (1500 if none is found).

    Pods get the same, so their packets fit when they leave the node (this
    kind of machine runs with 1400). Asked with an ioctl, not /sys/class/net,
    which shows the links of the namespace sysfs was mounted in — not ours when
    the agent runs in a network namespace of its own (a dev host).
    """
    try:
        with open("/proc/net/route") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if len(cols) > 2 and cols[1] == "00000000":
                    return _interface_mtu(cols[0])
    except (OSError, ValueError):
        pass
    return 1500


def _interface_mtu(name: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16si", name.encode()[:15], 0)
        reply = fcntl.ioctl(s.fileno(), SIOCGIFMTU, request)
    return int(struct.unpack("16si", reply)[1])


def find_plugin(name: str, dirs: tuple[Path, ...] = DEFAULT_PLUGIN_DIRS) -> Path | None:
    for d in dirs:
        p = d / name
        if os.access(p, os.X_OK):
            return p
    return None


class BridgeNetwork:
    """The node's pod network: one Linux bridge, host-local IPAM, node-level masquerade."""

    def __init__(
        self,
        *,
        pod_cidr: str,
        data_dir: Path,
        cluster_cidr: str | None = None,
        bridge: str = "ph0",
        name: str = "pilothouse",
        plugin_dirs: tuple[Path, ...] = DEFAULT_PLUGIN_DIRS,
        mtu: int | None = None,
        masquerade: bool = True,
    ) -> None:
        net = ipaddress.ip_network(pod_cidr, strict=False)
        if not isinstance(net, ipaddress.IPv4Network):
            raise ValueError(f"pod CIDR {pod_cidr}: only IPv4 is supported")
        self.pod_cidr = str(net)
        self.cluster_cidr = str(ipaddress.ip_network(cluster_cidr or pod_cidr, strict=False))
        self.gateway = str(net.network_address + 1)
        self.bridge = bridge
        self.name = name
        self.data_dir = data_dir
        self.plugin_dirs = plugin_dirs
        self.mtu = mtu or default_mtu()
        self.masquerade = masquerade
        self.nft_table = "pilothouse_cni_" + bridge.replace("-", "_")

    def config(self) -> dict[str, Any]:
        """The network configuration handed to the bridge plugin."""
        return {
            "cniVersion": CNI_VERSION,
            "name": self.name,
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": True,
            "ipMasq": False,
            "hairpinMode": True,
            "mtu": self.mtu,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": self.pod_cidr, "gateway": self.gateway}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": str(self.data_dir),
            },
        }

    # --- node level ------------------------------------------------------------------------
    def masquerade_rules(self) -> str:
        """One nft transaction that (re)creates our table: idempotent."""
        t = self.nft_table
        return (
            f"add table ip {t}\n"
            f"flush table ip {t}\n"
            f"add chain ip {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n"
            f"add rule ip {t} postrouting ip saddr {self.pod_cidr} ip daddr != {self.cluster_cidr} "
            f"ip daddr != 224.0.0.0/4 masquerade\n"
        )

    async def setup(self) -> None:
        """Install the node-level masquerade rule (idempotent)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.masquerade:
            await _run_nft(self.masquerade_rules())

    async def teardown(self, *, remove_bridge: bool = False) -> None:
        """Remove the node-level rule, and the bridge itself when asked (idempotent)."""
        await _run_nft(f"add table ip {self.nft_table}\ndelete table ip {self.nft_table}\n")
        if remove_bridge and _link_exists(self.bridge):
            proc = await asyncio.create_subprocess_exec(
                "ip", "link", "delete", self.bridge,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            await proc.wait()

    # --- per pod ---------------------------------------------------------------------------
    async def add(
        self,
        container_id: str,
        netns: Path,
        *,
        ifname: str = "eth0",
        args: dict[str, str] | None = None,
    ) -> Attachment:
        """Attach the namespace: a veth on the bridge and an address (CNI ADD)."""
        result = await self._invoke("ADD", container_id, netns, ifname, args)
        return _attachment(result, self.bridge)

    async def delete(
        self,
        container_id: str,
        netns: Path | None,
        *,
        ifname: str = "eth0",
        args: dict[str, str] | None = None,
    ) -> None:
        """Release the address and the veth (CNI DEL; idempotent, also when netns is gone)."""
        # The plugin refuses a path that is gone; without one it still frees the lease.
        path = netns if netns is not None and _exists(netns) else None
        await self._invoke("DEL", container_id, path, ifname, args)

    async def _invoke(
        self,
        command: str,
        container_id: str,
        netns: Path | None,
        ifname: str,
        args: dict[str, str] | None,
    ) -> dict[str, Any]:
        plugin = find_plugin("bridge", self.plugin_dirs)
        if plugin is None:
            raise CNIError(
                "bridge",
                command,
                "plugin not found in "
                + ", ".join(map(str, self.plugin_dirs))
                + " (apt-get install containernetworking-plugins, or run `make install`)",
            )
        cni_args = "IgnoreUnknown=1" + "".join(f";{k}={v}" for k, v in (args or {}).items())
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": str(netns) if netns is not None else "",
            "CNI_IFNAME": ifname,
            "CNI_PATH": ":".join(str(d) for d in self.plugin_dirs),
            "CNI_ARGS": cni_args,
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        }
        proc = await asyncio.create_subprocess_exec(
            str(plugin),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await proc.communicate(json.dumps(self.config()).encode())
        if proc.returncode != 0:
            message, code = err.decode(errors="replace").strip(), 0
            try:
                body = json.loads(out)
                message = body.get("msg", message)
                if body.get("details"):
                    message += f": {body['details']}"
                code = int(body.get("code", 0))
            except (ValueError, AttributeError):
                pass
            raise CNIError(
                "bridge", command, message or f"exit status {proc.returncode}", code=code
            )
        if command != "ADD":
            return {}
        try:
            parsed: dict[str, Any] = json.loads(out)
        except ValueError as exc:
            raise CNIError("bridge", command, f"unreadable result: {out[:200]!r}") from exc
        return parsed


def _attachment(result: dict[str, Any], bridge: str) -> Attachment:
    ips = result.get("ips") or []
    if not ips:
        raise CNIError("bridge", "ADD", "the plugin returned no address")
    first = ips[0]
    ip, _, prefix = str(first.get("address", "")).partition("/")
    interfaces = result.get("interfaces") or []
    mac = host_if = ""
    idx = first.get("interface")
    if isinstance(idx, int) and 0 <= idx < len(interfaces):
        mac = interfaces[idx].get("mac", "")
    for iface in interfaces:
        if not iface.get("sandbox") and iface.get("name") != bridge:
            host_if = iface.get("name", "")
    return Attachment(
        ip=ip,
        prefix_len=int(prefix or 32),
        gateway=str(first.get("gateway", "")),
        mac=mac,
        host_interface=host_if,
        result=result,
    )


async def _run_nft(script: str) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            "nft", "-f", "-",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise CNIError(
            "nft", "masquerade", "nft not found (apt-get install nftables, or run `make install`)"
        ) from exc
    _, err = await proc.communicate(script.encode())
    if proc.returncode != 0:
        raise CNIError("nft", "masquerade", err.decode(errors="replace").strip())
