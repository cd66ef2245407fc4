"""The OCI runtime configuration (config.json) of a container, from a ContainerConfig.

Defaults follow containerd's CRI plugin, which is what Kubernetes users expect
inside a container: its capability set, masked and read-only /proc and /sys
paths, device rules, the /proc, /dev, /dev/pts, /dev/mqueue, /sys and cgroup
mounts, and the RuntimeDefault seccomp profile (see :mod:`.seccomp`).

The pod's namespaces are joined by path: network, UTS and IPC are pinned by
the sandbox (there is no pause container), so every container of a pod sees
the same hostname, address and System V IPC; each container has its own PID
and mount namespace, as upstream does by default. /dev/shm is the sandbox's
tmpfs, shared the same way.
"""

from __future__ import annotations

import os
import resource
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilothouse.node.runtime import cgroups, protocol, seccomp

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# In kernel order: the index is the capability's number.
ALL_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip

MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

_DEFAULT_DEVICES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # null
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # zero
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},  # full
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},  # random
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},  # urandom
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},  # tty
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},  # console
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},  # ptmx
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},  # pts
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # tun
)


@dataclass(frozen=True)
class PodContext:
    """What the sandbox lends each of its containers."""

    hostname: str
    netns_path: str  # "" with host networking
    uts_path: str  # "" with host networking (the node's hostname)
    ipc_path: str
    hosts_path: str
    resolv_path: str
    hostname_path: str
    shm_path: str
    sandbox_id: str = ""


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()


def capabilities(config: protocol.ContainerConfig, last_cap: int) -> list[str]:
    """The container's capability set: the default set, then drop, then add (ALL works)."""
    known = ALL_CAPABILITIES[: last_cap + 1]
    if config.privileged:
        return list(known)

    def norm(name: str) -> str:
        name = name.upper()
        return name if name.startswith("CAP_") or name == "ALL" else "CAP_" + name

    drops = {norm(c) for c in config.drop_capabilities}
    adds = {norm(c) for c in config.add_capabilities}
    caps = [] if "ALL" in drops else [c for c in DEFAULT_CAPABILITIES if c not in drops]
    extra = known if "ALL" in adds else sorted(adds)
    for cap in extra:
        if cap not in caps and cap in known:
            caps.append(cap)
    return caps


def last_capability() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return len(ALL_CAPABILITIES) - 1


def _inside(rootfs: Path, rel: str) -> Path | None:
    """``rootfs/rel`` if it resolves inside rootfs (image symlinks must not reach the host)."""
    p = rootfs / rel
    try:
        real = p.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    root = rootfs.resolve()
    return real if real == root or root in real.parents else None


def _table(rootfs: Path, rel: str) -> list[list[str]]:
    p = _inside(rootfs, rel)
    if p is None:
        return []
    try:
        return [
            line.split(":")
            for line in p.read_text(errors="replace").splitlines()
            if line and not line.startswith("#")
        ]
    except OSError:
        return []


def resolve_user(rootfs: Path, config: protocol.ContainerConfig) -> User:
    """uid, gid and supplementary groups, as containerd resolves them against the image."""
    image_user = config.image.user
    name_part, _, group_part = image_user.partition(":")
    passwd = _table(rootfs, "etc/passwd")
    uid: int | None = config.run_as_user
    gid: int | None = None
    username = ""
    if uid is None and name_part:
        if name_part.isdigit():
            uid = int(name_part)
        else:
            for row in passwd:
                if row[0] == name_part and len(row) > 3:
                    uid, gid, username = int(row[2]), int(row[3]), row[0]
                    break
            else:
                raise ValueError(
                    f"unable to find user {name_part}: no matching entries in passwd file"
                )
    uid = uid or 0
    if not username:
        for row in passwd:
            if len(row) > 3 and row[2] == str(uid):
                username = row[0]
                if gid is None:
                    gid = int(row[3])
                break
    groups = _table(rootfs, "etc/group")
    if config.run_as_group is not None:
        gid = config.run_as_group
    elif group_part and config.run_as_user is None:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            for row in groups:
                if row[0] == group_part and len(row) > 2:
                    gid = int(row[2])
                    break
            else:
                raise ValueError(
                    f"unable to find group {group_part}: no matching entries in group file"
                )
    gid = gid or 0
    # The primary group is listed too (as containerd does), so getgroups() shows it.
    extra: list[int] = [gid]
    if username:
        for row in groups:
            if len(row) > 3 and username in row[3].split(",") and row[2].isdigit():
                extra.append(int(row[2]))
    extra.extend(config.supplemental_groups)
    return User(uid=uid, gid=gid, additional_gids=tuple(dict.fromkeys(extra)))


def _nofile() -> dict[str, Any]:
    """RLIMIT_NOFILE: the runtime's own hard limit, for soft and hard alike.

    Higher would need CAP_SYS_RESOURCE, which a node agent in a restricted
    environment may not hold (crun would refuse to start the container).
    """
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = 1 << 20
    hard = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
    return {"type": "RLIMIT_NOFILE", "hard": hard, "soft": hard}


def _mount(
    dest: str,
    source: str,
    *,
    readonly: bool,
    propagation: str = "rprivate",
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "destination": dest,
        "type": "bind",
        "source": source,
        "options": ["rbind", propagation, "ro" if readonly else "rw", *extra],
    }


def _host_devices() -> list[dict[str, Any]]:
    """Every device node of the host, for privileged containers."""
    out = []
    for dirpath, dirnames, filenames in os.walk("/dev"):
        dirnames[:] = [d for d in dirnames if d not in ("pts", "shm", "mqueue", "fd")]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode):
                kind = "c"
            elif stat.S_ISBLK(st.st_mode):
                kind = "b"
            else:
                continue
            if path in ("/dev/console", "/dev/ptmx", "/dev/tty"):
                continue
            out.append({
                "path": path, "type": kind, "major": os.major(st.st_rdev),
                "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
                "uid": st.st_uid, "gid": st.st_gid,
            })  # fmt: skip
    return out


def build(
    config: protocol.ContainerConfig,
    *,
    container_id: str,
    rootfs: Path,
    cgroups_path: str,
    pod: PodContext,
    layout: cgroups.Layout,
    user: User,
    seccomp_dir: Path,
    last_cap: int | None = None,
) -> dict[str, Any]:
    """The config.json of one container."""
    caps = capabilities(config, last_capability() if last_cap is None else last_cap)
    env = [f"{k}={v}" for k, v in config.env]
    names = {k for k, _ in config.env}
    if "PATH" not in names:
        env.insert(0, f"PATH={DEFAULT_PATH}")
    if "HOSTNAME" not in names:
        env.append(f"HOSTNAME={pod.hostname}")
    if config.tty and "TERM" not in names:
        env.append("TERM=xterm")
    process: dict[str, Any] = {
        "terminal": config.tty,
        "user": {"uid": user.uid, "gid": user.gid},
        "args": list(config.command),
        "env": env,
        "cwd": config.working_dir or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": [_nofile()],
        "noNewPrivileges": config.no_new_privileges and not config.privileged,
        "oomScoreAdj": config.oom_score_adj,
    }
    if user.additional_gids:
        process["user"]["additionalGids"] = list(user.additional_gids)

    privileged = config.privileged
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "rw" if privileged else "ro"]},
    ]  # fmt: skip
    wanted = {m.container_path.rstrip("/") or "/" for m in config.mounts}
    ro = config.read_only_rootfs
    for dest, src, extra in (
        ("/dev/shm", pod.shm_path, ("nosuid", "nodev", "noexec")),
        ("/etc/hosts", pod.hosts_path, ()),
        ("/etc/resolv.conf", pod.resolv_path, ()),
        ("/etc/hostname", pod.hostname_path, ()),
    ):
        # A volume the user mounts on the same path wins (kubelet stops managing it).
        if src and dest not in wanted:
            mounts.append(_mount(dest, src, readonly=ro and dest != "/dev/shm", extra=extra))
    propagations = set()
    for m in config.mounts:
        prop = m.propagation if m.propagation in ("rslave", "rshared") else "rprivate"
        propagations.add(prop)
        mounts.append(_mount(m.container_path, m.host_path, readonly=m.readonly, propagation=prop))

    namespaces: list[dict[str, Any]] = [{"type": "pid"}, {"type": "mount"}]
    namespaces.append({"type": "ipc", "path": pod.ipc_path} if pod.ipc_path else {"type": "ipc"})
    if pod.uts_path:
        namespaces.append({"type": "uts", "path": pod.uts_path})
    if pod.netns_path:
        namespaces.append({"type": "network", "path": pod.netns_path})
    if layout.mode == "v2":
        namespaces.append({"type": "cgroup"})

    resources: dict[str, Any] = {
        "devices": [{"allow": True, "access": "rwm"}]
        if privileged
        else [dict(d) for d in _DEFAULT_DEVICES],
    }
    cpu: dict[str, Any] = {}
    if config.cpu_shares:
        cpu["shares"] = config.cpu_shares
    if config.cpu_quota > 0:
        cpu["quota"] = config.cpu_quota
        cpu["period"] = config.cpu_period or 100_000
    if cpu:
        resources["cpu"] = cpu
    if config.memory_limit > 0:
        memory: dict[str, Any] = {"limit": config.memory_limit}
        if layout.swap_accounting:
            memory["swap"] = config.memory_limit
        resources["memory"] = memory
    if config.pids_limit > 0:
        resources["pids"] = {"limit": config.pids_limit}

    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": cgroups_path,
        "resources": resources,
    }
    if privileged:
        linux["devices"] = _host_devices()
    else:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
        profile = _seccomp(config.seccomp, set(caps), seccomp_dir)
        if profile is not None:
            linux["seccomp"] = profile
    if "rshared" in propagations:
        linux["rootfsPropagation"] = "rshared"
    elif "rslave" in propagations:
        linux["rootfsPropagation"] = "rslave"

    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": str(rootfs), "readonly": ro},
        "mounts": mounts,
        "linux": linux,
        "annotations": {
            **config.labels,
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.container-name": config.name,
            "io.kubernetes.cri.sandbox-id": pod.sandbox_id,
            "io.kubernetes.cri.image-name": config.image.repo_tags[0]
            if config.image.repo_tags
            else config.image.id,
            "pilothouse.container-id": container_id,
        },
    }
    return spec


def _seccomp(kind: str, caps: set[str], seccomp_dir: Path) -> dict[str, Any] | None:
    if kind == "Unconfined":
        return None
    if kind.startswith("Localhost/"):
        rel = kind.removeprefix("Localhost/")
        path = Path(rel) if rel.startswith("/") else seccomp_dir / rel
        return seccomp.load_profile(path, caps)
    return seccomp.default_profile(caps)


def exec_process(spec: dict[str, Any], command: list[str]) -> dict[str, Any]:
    """The process.json for ``crun exec``: the container's process with another argv."""
    proc = dict(spec["process"])
    proc["args"] = list(command)
    proc["terminal"] = False
    proc.pop("oomScoreAdj", None)
    return proc
