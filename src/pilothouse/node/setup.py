"""Putting a real node together: host checks, the image store and the crun runtime.

Used by ``pilothouse server`` (its own node) and ``pilothouse agent`` (a node
joining from elsewhere), so both run pods the same way. Layout under the
agent's data directory: ``images/``, ``runtime/`` (sandboxes and containers),
``pods/`` (volumes), ``logs/`` (container logs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pilothouse.node import host
from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.crun import CrunRuntime
from pilothouse.node.runtime.images import ImageStore
from pilothouse.node.runtime.images import registries as registriesmod


class HostNotReady(Exception):
    """The machine cannot run pods yet; the message lists what to do."""


def check_host(runtime: str = "crun") -> host.HostReport:
    """Prepare the host; raise HostNotReady with every problem and its remedy."""
    report = host.prepare_host(runtime=runtime, fix=True)
    if not report.ok:
        lines = "\n".join(
            f"  - {c.name}: {c.message}" + (f" ({c.remedy})" if c.remedy else "")
            for c in report.problems
        )
        raise HostNotReady(f"this machine cannot run pods yet:\n{lines}")
    return report


def runtime_factory(
    data_dir: Path,
    *,
    runtime: str = "crun",
    run_dir: Path = Path("/run/pilothouse"),
    bridge: str = "ph0",
    cgroup_root: str = "/pilothouse",
    cluster_cidr: str = "10.42.0.0/16",
    registries: registriesmod.RegistriesFile | None = None,
) -> Callable[[str], protocol.Runtime]:
    """A factory the agent calls with its pod CIDR once the cluster has assigned it.

    ``run_dir`` (crun's state, conmon's sockets), ``bridge`` and ``cgroup_root`` are
    what two agents on one machine must not share (see :mod:`pilothouse.devhosts`);
    ``registries`` is the registries.yaml pulls follow (mirrors, credentials, TLS).
    """

    def make(pod_cidr: str) -> protocol.Runtime:
        images = ImageStore(data_dir / "images", registries=registries)
        rt = CrunRuntime(
            data_dir / "runtime",
            images=images,
            pod_cidr=pod_cidr,
            cluster_cidr=cluster_cidr,
            runtime_binary=runtime,
            run_dir=run_dir,
            bridge=bridge,
            cgroup_root=cgroup_root,
            seccomp_dir=data_dir / "seccomp",
        )
        return rt

    return make
