"""From a pod's spec to what the runtime needs: argv, environment, resources, security.

Mirrors upstream's kubelet: the command is the image's entrypoint and cmd
overridden by ``command`` and ``args``; ``$(VAR)`` references expand from the
container's own environment; CPU requests become cgroup shares and limits
become CFS quota; memory limits become the memory cgroup limit; the QoS class
decides the OOM score and the pod's cgroup. Missing ConfigMaps or Secrets a
container refers to are a ``CreateContainerConfigError``, as upstream reports.
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.api import quantity
from pilothouse.node.runtime import protocol

Obj = dict[str, Any]

MIN_SHARES = 2
CPU_PERIOD = 100_000
MIN_QUOTA = 1000
CGROUP_ROOT = "/pilothouse"


class ConfigError(Exception):
    """A container's configuration cannot be built (CreateContainerConfigError)."""

    reason = "CreateContainerConfigError"


@dataclass
class Lookups:
    """ConfigMaps, Secrets and claims of the pod's namespace by name (None: not found), the
    PersistentVolumes those claims are bound to, and the ServiceAccount tokens of its
    projected volumes by (audience, expirationSeconds): a token, or the reason it could
    not be had."""

    configmaps: dict[str, Obj | None]
    secrets: dict[str, Obj | None]
    tokens: dict[tuple[str, int], str | Exception] = field(default_factory=dict)
    claims: dict[str, Obj | None] = field(default_factory=dict)
    volumes: dict[str, Obj | None] = field(default_factory=dict)


def milli_cpu(value: Any) -> int:
    return int(quantity.milli(quantity.parse_quantity(value)))


def bytes_of(value: Any) -> int:
    return int(quantity.to_int(quantity.parse_quantity(value)))


def cpu_shares(milli: int) -> int:
    if milli <= 0:
        return MIN_SHARES
    return max(MIN_SHARES, milli * 1024 // 1000)


def cpu_quota(milli: int, period: int = CPU_PERIOD) -> int:
    if milli <= 0:
        return 0
    return max(MIN_QUOTA, milli * period // 1000)


def pod_cgroup(pod: Obj, root: str = CGROUP_ROOT) -> str:
    """The pod's cgroup, by QoS class, as upstream lays them out, under the agent's
    cgroup ``root`` (one per agent, so two agents on one machine never share a tree)."""
    uid = pod["metadata"]["uid"]
    qos = ((pod.get("status") or {}).get("qosClass") or "BestEffort").lower()
    if qos == "guaranteed":
        return f"{root}/kubepods/pod{uid}"
    return f"{root}/kubepods/{qos}/pod{uid}"


def pod_resources(pod: Obj) -> tuple[int, int, int]:
    """(cpu shares, cpu quota, memory limit) of the pod cgroup: sums over its containers."""
    spec = pod.get("spec") or {}
    req_cpu = lim_cpu = lim_mem = 0
    all_cpu_limited = all_mem_limited = True
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        req_cpu += milli_cpu((res.get("requests") or {}).get("cpu", 0))
        if "cpu" in (res.get("limits") or {}):
            lim_cpu += milli_cpu(res["limits"]["cpu"])
        else:
            all_cpu_limited = False
        if "memory" in (res.get("limits") or {}):
            lim_mem += bytes_of(res["limits"]["memory"])
        else:
            all_mem_limited = False
    return (
        cpu_shares(req_cpu),
        cpu_quota(lim_cpu) if all_cpu_limited else 0,
        lim_mem if all_mem_limited else 0,
    )


@functools.cache
def oom_score_floor() -> int:
    """The lowest OOM score this process may give its children.

    Lowering a score below our own needs CAP_SYS_RESOURCE; without it (some
    sandboxes drop it) the kernel refuses and the container would not start,
    so scores are clamped to our own instead."""
    try:
        status = Path("/proc/self/status").read_text()
        cap_eff = int(
            next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:")), 16
        )
        if cap_eff & (1 << 24):  # CAP_SYS_RESOURCE
            return -1000
        return int(Path("/proc/self/oom_score_adj").read_text().strip())
    except (OSError, ValueError, StopIteration):
        return -1000


def oom_score_adj(pod: Obj, container: Obj, memory_capacity: int) -> int:
    qos = (pod.get("status") or {}).get("qosClass") or "BestEffort"
    if qos == "Guaranteed":
        return -997
    if qos == "BestEffort":
        return 1000
    request = bytes_of(((container.get("resources") or {}).get("requests") or {}).get("memory", 0))
    if memory_capacity <= 0:
        return 999
    score = 1000 - (1000 * request) // memory_capacity
    return int(min(999, max(2, score)))


_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(text: str, env: dict[str, str]) -> str:
    """Upstream's $(VAR) expansion: known variables expand, $$ escapes, others stay."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR_REF.sub(repl, text)


def _field_ref(pod: Obj, path: str) -> str:
    md = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((md.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": md.get("name", ""),
        "metadata.namespace": md.get("namespace", ""),
        "metadata.uid": md.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.podIP": status.get("podIP", ""),
        "status.podIPs": ",".join(i.get("ip", "") for i in status.get("podIPs") or []),
        "status.hostIPs": ",".join(i.get("ip", "") for i in status.get("hostIPs") or []),
    }
    if path not in simple:
        raise ConfigError(f"unsupported fieldRef {path!r}")
    return str(simple[path])


def _resource_ref(container: Obj, ref: Obj, node_allocatable: dict[str, str]) -> str:
    resource = ref.get("resource", "")
    divisor = quantity.parse_quantity(ref.get("divisor") or "1")
    kind, _, name = resource.partition(".")
    res = container.get("resources") or {}
    value = (res.get(kind) or {}).get(name)
    if value is None and kind == "limits":
        value = node_allocatable.get(name)  # no limit: the node's allocatable, as upstream
    if value is None:
        value = 0
    q = quantity.parse_quantity(value)
    if divisor == 0:
        raise ConfigError(f"divisor of {resource} is zero")
    result = q / divisor
    return str(int(-(-result // 1)))  # round up


def _key_from(source: Obj | None, key: str, *, secret: bool) -> str | None:
    if source is None:
        return None
    if secret:
        data = source.get("data") or {}
        return base64.b64decode(data[key]).decode(errors="replace") if key in data else None
    data = source.get("data") or {}
    if key in data:
        return str(data[key])
    binary = source.get("binaryData") or {}
    return base64.b64decode(binary[key]).decode(errors="replace") if key in binary else None


def environment(
    pod: Obj,
    container: Obj,
    lookups: Lookups,
    *,
    service_env: dict[str, str],
    node_allocatable: dict[str, str],
) -> list[tuple[str, str]]:
    """The container's environment in upstream's order: service links, envFrom, env."""
    env: dict[str, str] = dict(service_env)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref = source["configMapRef"]
            obj = lookups.configmaps.get(ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'configmap "{ref.get("name")}" not found')
            for k, v in (obj.get("data") or {}).items():
                env[prefix + k] = str(v)
        elif "secretRef" in source:
            ref = source["secretRef"]
            obj = lookups.secrets.get(ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'secret "{ref.get("name")}" not found')
            for k, v in (obj.get("data") or {}).items():
                env[prefix + k] = base64.b64decode(v).decode(errors="replace")
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var or "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[name] = _field_ref(pod, source["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in source:
            env[name] = _resource_ref(container, source["resourceFieldRef"], node_allocatable)
        elif "configMapKeyRef" in source or "secretKeyRef" in source:
            is_secret = "secretKeyRef" in source
            ref = source["secretKeyRef" if is_secret else "configMapKeyRef"]
            table = lookups.secrets if is_secret else lookups.configmaps
            what = "secret" if is_secret else "configmap"
            obj = table.get(ref.get("name", ""))
            value = _key_from(obj, ref.get("key", ""), secret=is_secret)
            if value is None:
                if ref.get("optional"):
                    continue
                if obj is None:
                    raise ConfigError(f'{what} "{ref.get("name")}" not found')
                raise ConfigError(
                    f"couldn't find key {ref.get('key')} in {what.capitalize()} "
                    f"{pod['metadata'].get('namespace')}/{ref.get('name')}"
                )
            env[name] = value
    return list(env.items())


def argv(container: Obj, image: protocol.Image, env: dict[str, str]) -> list[str]:
    command = container.get("command")
    args = container.get("args")
    if command:
        out = list(command) + list(args or [])
    elif args:
        out = list(image.entrypoint) + list(args)
    else:
        out = list(image.entrypoint) + list(image.cmd)
    if not out:
        raise ConfigError("no command specified")
    # Only the pod's own $(VAR)s expand (not the image's).
    if command or args:
        return [expand(a, env) for a in out]
    return out


def _user(container: Obj, pod: Obj) -> tuple[int | None, int | None, tuple[int, ...]]:
    sc = container.get("securityContext") or {}
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    uid = sc.get("runAsUser", psc.get("runAsUser"))
    gid = sc.get("runAsGroup", psc.get("runAsGroup"))
    groups = tuple(int(g) for g in psc.get("supplementalGroups") or [])
    if psc.get("fsGroup") is not None:
        groups = (*groups, int(psc["fsGroup"]))
    return (int(uid) if uid is not None else None, int(gid) if gid is not None else None, groups)


def container_config(
    pod: Obj,
    container: Obj,
    image: protocol.Image,
    *,
    env: list[tuple[str, str]],
    mounts: list[protocol.Mount],
    log_path: str,
    attempt: int,
    memory_capacity: int,
) -> protocol.ContainerConfig:
    res = container.get("resources") or {}
    requests = res.get("requests") or {}
    limits = res.get("limits") or {}
    env_map = dict(env)
    full_env = [tuple(e.split("=", 1)) for e in image.env if "=" in e]
    merged: dict[str, str] = {k: v for k, v in full_env}
    merged.update(env_map)
    sc = container.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    uid, gid, groups = _user(container, pod)
    seccomp = (
        sc.get("seccompProfile")
        or ((pod.get("spec") or {}).get("securityContext") or {}).get("seccompProfile")
    ) or {}
    seccomp_type = seccomp.get("type", "RuntimeDefault")
    if seccomp_type == "Localhost":
        seccomp_type = "Localhost/" + str(seccomp.get("localhostProfile", ""))
    return protocol.ContainerConfig(
        name=container["name"],
        image=image,
        command=tuple(argv(container, image, env_map)),
        env=tuple(merged.items()),
        working_dir=container.get("workingDir") or image.working_dir or "/",
        mounts=tuple(mounts),
        log_path=log_path,
        attempt=attempt,
        stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")),
        cpu_shares=cpu_shares(milli_cpu(requests.get("cpu", 0))),
        cpu_quota=cpu_quota(milli_cpu(limits["cpu"])) if "cpu" in limits else 0,
        memory_limit=bytes_of(limits["memory"]) if "memory" in limits else 0,
        oom_score_adj=max(oom_score_adj(pod, container, memory_capacity), oom_score_floor()),
        run_as_user=uid,
        run_as_group=gid,
        supplemental_groups=groups,
        privileged=bool(sc.get("privileged")),
        read_only_rootfs=bool(sc.get("readOnlyRootFilesystem")),
        add_capabilities=tuple(caps.get("add") or ()),
        drop_capabilities=tuple(caps.get("drop") or ()),
        no_new_privileges=sc.get("allowPrivilegeEscalation") is False,
        seccomp=seccomp_type,
        labels={
            "io.kubernetes.pod.uid": pod["metadata"]["uid"],
            "io.kubernetes.pod.name": pod["metadata"]["name"],
            "io.kubernetes.pod.namespace": pod["metadata"].get("namespace", ""),
            "io.kubernetes.container.name": container["name"],
        },
    )
