"""Pod sandboxes on disk: the durable record and the files containers bind-mount.

A sandbox is a directory ``<state>/sandboxes/<id>/`` holding ``sandbox.json``
(written before anything else is made, updated as steps finish, so a restarted
agent can always find and remove what a half-finished start left) and the
pod's ``hostname``, ``hosts`` and ``resolv.conf`` files; ``uts`` and ``ipc``
pin the pod's UTS and IPC namespaces and ``shm`` is the pod's /dev/shm tmpfs.
The network namespace is pinned at /run/netns/pilothouse-<id> where
``ip netns`` finds it.

There is no pause container: the namespaces a pause process would hold are
bind-mounted files, which costs no process per pod and cannot crash. Every
container joins them by path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.node import cni
from pilothouse.node.runtime import cgroups, linux, protocol
from pilothouse.node.runtime.records import write_atomic

RECORD = "sandbox.json"
SHM_SIZE = "65536k"


@dataclass
class SandboxRecord:
    """What we keep about one sandbox; survives agent restarts."""

    id: str
    uid: str
    namespace: str
    name: str
    hostname: str
    host_network: bool
    cgroup_parent: str
    created_at: float
    state: str = "notready"  # notready until every step is done; again after stop
    ip: str = ""
    netns_path: str = ""
    uts_path: str = ""
    ipc_path: str = ""
    shm_path: str = ""
    host_interface: str = ""
    network_attached: bool = False
    labels: dict[str, str] = field(default_factory=dict)

    def to_sandbox(self) -> protocol.Sandbox:
        return protocol.Sandbox(
            id=self.id,
            uid=self.uid,
            namespace=self.namespace,
            name=self.name,
            ip=self.ip,
            netns_path=self.netns_path,
            state=self.state,
            created_at=self.created_at,
            hostname=self.hostname,
        )

    def save(self, directory: Path) -> None:
        write_atomic(directory / RECORD, json.dumps(asdict(self), indent=1).encode())

    @classmethod
    def load(cls, directory: Path) -> SandboxRecord | None:
        try:
            raw: dict[str, Any] = json.loads((directory / RECORD).read_text())
        except (OSError, ValueError):
            return None
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in raw.items() if k in known})


MANAGED_HOSTS = (
    "# Kubernetes-managed hosts file.\n"
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


def hosts_file(
    config: protocol.SandboxConfig, ip: str, *, node_hosts: Path = Path("/etc/hosts")
) -> str:
    """/etc/hosts as kubelet writes it: localhost lines, the pod itself (by its FQDN too when
    it has a subdomain), then hostAliases."""
    if config.host_network:
        try:
            base = node_hosts.read_text()
        except OSError:
            base = ""
        text = "# Kubernetes-managed hosts file (host network).\n" + base
    else:
        text = MANAGED_HOSTS
        if ip and config.domain:
            text += f"{ip}\t{config.hostname}.{config.domain}\t{config.hostname}\n"
        elif ip:
            text += f"{ip}\t{config.hostname}\n"
    if config.host_aliases:
        if not text.endswith("\n"):
            text += "\n"
        text += "\n# Entries added by HostAliases.\n"
        for alias_ip, names in config.host_aliases:
            text += f"{alias_ip}\t" + "\t".join(names) + "\n"
    return text


def resolv_conf(dns: protocol.DNSConfig, *, node_resolv: Path = Path("/etc/resolv.conf")) -> str:
    """/etc/resolv.conf from the pod's DNS settings; the node's own when there are none."""
    if not (dns.servers or dns.searches or dns.options):
        try:
            return node_resolv.read_text()
        except OSError:
            return ""
    lines = []
    if dns.searches:
        lines.append("search " + " ".join(dns.searches))
    lines.extend(f"nameserver {s}" for s in dns.servers)
    if dns.options:
        lines.append("options " + " ".join(dns.options))
    return "\n".join(lines) + "\n"


def write_static_files(directory: Path, config: protocol.SandboxConfig) -> None:
    """The files that do not depend on the pod's address."""
    hostname = kernel_hostname(config)
    write_atomic(directory / "hostname", (hostname + "\n").encode())
    write_atomic(directory / "resolv.conf", resolv_conf(config.dns).encode())


def write_hosts(directory: Path, config: protocol.SandboxConfig, ip: str) -> None:
    # In place, not replaced: a running container's bind mount follows the inode.
    path = directory / "hosts"
    with open(path, "w") as f:
        f.write(hosts_file(config, ip))


def kernel_hostname(config: protocol.SandboxConfig) -> str:
    """The pod's UTS nodename: its hostname, or the FQDN the agent chose."""
    return config.kernel_hostname or pod_hostname(config.hostname or config.name)


def pod_hostname(name: str) -> str:
    """At most 63 characters, not ending in '-' or '.' (as kubelet truncates)."""
    return name[:63].rstrip("-.") or name[:63]


def pinned(path: str) -> bool:
    """Whether a namespace file is still bind-mounted (a mount has its own device)."""
    if not path:
        return False
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except OSError:
        return False


class Sandboxes:
    """Makes and releases sandboxes: namespaces, network, pod cgroup, files.

    Steps that do not depend on each other run at once (the cgroup, the
    files and /dev/shm while the namespaces are made and the network
    attached). The record is on disk before any step and says what the
    network holds, so a release after any failure or crash knows what to undo;
    every other release step is idempotent and looks at the host itself.
    """

    def __init__(
        self,
        root: Path,
        *,
        network: cni.BridgeNetwork,
        layout: cgroups.Layout,
        cgroup_root: str,
    ) -> None:
        self.root = root
        self.network = network
        self.layout = layout
        self.cgroup_root = cgroup_root.rstrip("/") or ""
        self.records: dict[str, SandboxRecord] = {}

    def load(self) -> None:
        """Read every record on disk; directories without one are half-made: remove them."""
        self.root.mkdir(parents=True, exist_ok=True)
        for d in self.root.iterdir():
            if not d.is_dir():
                continue
            rec = SandboxRecord.load(d)
            if rec is None:
                shutil.rmtree(d, ignore_errors=True)
                continue
            if rec.state == "ready" and not rec.host_network and not pinned(rec.netns_path):
                rec.state = "notready"  # e.g. the node rebooted
            self.records[rec.id] = rec

    def dir(self, sandbox_id: str) -> Path:
        return self.root / sandbox_id

    async def create(self, config: protocol.SandboxConfig) -> SandboxRecord:
        sid = secrets.token_hex(32)
        d = self.dir(sid)
        d.mkdir(parents=True, mode=0o711)
        rec = SandboxRecord(
            id=sid,
            uid=config.uid,
            namespace=config.namespace,
            name=config.name,
            hostname=kernel_hostname(config),
            host_network=config.host_network,
            cgroup_parent=config.cgroup_parent or f"{self.cgroup_root}/pod{config.uid}",
            created_at=time.time(),
            labels=dict(config.labels),
            uts_path="" if config.host_network else str(d / "uts"),
            ipc_path=str(d / "ipc"),
            netns_path="" if config.host_network else str(cni.netns_path(f"pilothouse-{sid}")),
            shm_path=str(d / "shm"),
        )
        rec.save(d)
        self.records[sid] = rec
        steps = [
            self._namespaces_and_network(rec, config),
            asyncio.to_thread(self._cgroup, rec, config),
            asyncio.to_thread(self._files_and_shm, rec, config),
        ]
        results = await asyncio.gather(*steps, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            with contextlib.suppress(Exception):
                await self.release(rec, best_effort=True)
            exc = failed[0]
            if isinstance(exc, protocol.RuntimeError_):
                raise exc
            raise protocol.RuntimeError_(
                "CreatePodSandboxError", f"{type(exc).__name__}: {exc}"
            ) from exc
        rec.state = "ready"
        rec.save(d)
        return rec

    async def _namespaces_and_network(
        self, rec: SandboxRecord, config: protocol.SandboxConfig
    ) -> None:
        kinds = {"ipc": Path(rec.ipc_path)}
        if not rec.host_network:
            cni.ensure_netns_dir()
            kinds["uts"] = Path(rec.uts_path)
            kinds["net"] = Path(rec.netns_path)
        await linux.pin_new_namespaces(kinds, hostname=rec.hostname)
        ip = ""
        if not rec.host_network:
            # Recorded before the ADD: a crash during it must still lead to a DEL (which
            # is idempotent), or the address would leak.
            rec.network_attached = True
            rec.save(self.dir(rec.id))
            try:
                att = await self.network.add(
                    rec.id,
                    Path(rec.netns_path),
                    args={
                        "K8S_POD_NAMESPACE": rec.namespace,
                        "K8S_POD_NAME": rec.name,
                        "K8S_POD_INFRA_CONTAINER_ID": rec.id,
                        "K8S_POD_UID": rec.uid,
                    },
                )
            except cni.CNIError as exc:
                raise protocol.RuntimeError_("CreatePodSandboxError", str(exc)) from exc
            ip = att.ip
            rec.ip, rec.host_interface = att.ip, att.host_interface
            rec.save(self.dir(rec.id))
        write_hosts(self.dir(rec.id), config, ip)

    def _cgroup(self, rec: SandboxRecord, config: protocol.SandboxConfig) -> None:
        cgroups.create(self.layout, rec.cgroup_parent)
        cgroups.set_limits(
            self.layout,
            rec.cgroup_parent,
            cpu_shares=config.cpu_shares,
            cpu_quota=config.cpu_quota,
            cpu_period=config.cpu_period,
            memory_limit=config.memory_limit,
        )

    def _files_and_shm(self, rec: SandboxRecord, config: protocol.SandboxConfig) -> None:
        d = self.dir(rec.id)
        write_static_files(d, config)
        shm = Path(rec.shm_path)
        shm.mkdir(exist_ok=True)
        linux.mount(
            "shm",
            shm,
            "tmpfs",
            linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
            f"mode=1777,size={SHM_SIZE}",
        )

    async def detach_network(self, rec: SandboxRecord) -> None:
        """CNI DEL, then drop the namespace (idempotent)."""
        if rec.network_attached:
            await self.network.delete(rec.id, Path(rec.netns_path) if rec.netns_path else None)
            rec.network_attached = False
        if rec.netns_path:
            await asyncio.to_thread(linux.unpin, Path(rec.netns_path))
        rec.state = "notready"
        rec.save(self.dir(rec.id))

    async def release(self, rec: SandboxRecord, *, best_effort: bool = False) -> None:
        """Undo everything the sandbox holds (containers must be gone already).

        A failing CNI DEL stops the release (the caller retries: the lease must
        not leak) unless ``best_effort``, used to undo a sandbox that never started.
        """
        try:
            await self.detach_network(rec)
        except cni.CNIError:
            if not best_effort:
                raise
            rec.network_attached = False
            await self.detach_network(rec)
        await asyncio.to_thread(self._release_local, rec)
        self.records.pop(rec.id, None)

    def _release_local(self, rec: SandboxRecord) -> None:
        for path in (rec.uts_path, rec.ipc_path):
            if path:
                linux.unpin(Path(path))
        if rec.shm_path:
            linux.umount(rec.shm_path)
        # A pod keeps its cgroup across sandboxes (a replacement sandbox may already
        # run in it while the old one is removed): only the last one removes it.
        if any(
            other.cgroup_parent == rec.cgroup_parent
            for other in self.records.values()
            if other.id != rec.id
        ):
            shutil.rmtree(self.dir(rec.id), ignore_errors=True)
            return
        left = cgroups.remove(self.layout, rec.cgroup_parent)
        if left:
            raise protocol.RuntimeError_(
                "RemovePodSandboxError", f"cgroup {rec.cgroup_parent} still busy in {left[0]}"
            )
        shutil.rmtree(self.dir(rec.id), ignore_errors=True)
