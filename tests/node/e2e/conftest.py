"""End-to-end fixtures: a real cluster per test module (``cluster``), a namespace per
test (``ns``), and the check every module ends with: nothing of ours left on the machine."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import testing

from .realcluster import Cluster

Leftovers = Callable[[Path, Iterable[str]], list[str]]

# The python client's own suite runs in a pytest of its own (test_python_client_suite.py).
collect_ignore_glob = ["python_client_suite/*"]


def leftovers(data_dir: Path, uids: Iterable[str]) -> list[str]:
    """Mounts under ``data_dir``, our network namespaces, the cgroups of the pods
    ``uids``, veths on the bridge and conmon processes of ``data_dir``."""
    out = []
    mounts = Path("/proc/self/mounts").read_text()
    out += [line.split()[1] for line in mounts.splitlines() if str(data_dir) in line]
    out += (
        [n for n in os.listdir("/run/netns") if n.startswith("pilothouse-")]
        if os.path.isdir("/run/netns")
        else []
    )
    for uid in uids:
        out += glob.glob(f"/sys/fs/cgroup/*/pilothouse/kubepods/*/pod{uid}")
        out += glob.glob(f"/sys/fs/cgroup/*/pilothouse/kubepods/pod{uid}")
    links = subprocess.run(
        ["ip", "-o", "link", "show", "master", "ph0"], capture_output=True, text=True
    ).stdout
    out += [line.split(":")[1].strip() for line in links.splitlines() if "veth" in line]
    # Cluster DNS puts its address on the node; the agent takes it away when it stops.
    addrs = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout
    out += [line.split()[1] + " " + line.split()[3] for line in addrs.splitlines()
            if "pilothouse-dns" in line or "lo:ph-dns" in line]  # fmt: skip
    conmons = subprocess.run(
        ["pgrep", "-f", f"conmon.*{data_dir}"], capture_output=True, text=True
    ).stdout.split()
    out += [f"conmon pid {p}" for p in conmons]
    return out


@pytest.fixture(scope="session")
def machine_leftovers() -> Leftovers:
    return leftovers


@pytest.fixture(scope="module")
def cluster(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    local_registry: Any,
    machine_leftovers: Leftovers,
) -> Iterator[Cluster]:
    data = tmp_path_factory.mktemp("e2e") / "data"
    extra = list(getattr(request.module, "SERVER_ARGS", []))  # a module's own server flags
    make_args = getattr(request.module, "server_args", None)  # ... or made for this run
    if make_args is not None:
        extra += make_args(data.parent, local_registry)
    srv = testing.ServerProcess(data, agent=True, extra_args=extra).start(timeout=60)
    c = Cluster(srv, local_registry.busybox)
    try:
        c.wait(
            lambda: (
                "Ready" in c.kubectl("get", "nodes", "--no-headers", check=False).stdout.split()
            ),
            timeout=60,
            what="the node to be Ready",
        )
        c.canary()
        yield c
    finally:
        # Empty every test namespace so the agent releases what it made, then stop.
        listing = c.kubectl("get", "pods", "-A", "-o", "json", check=False).stdout
        uids = c.uids | {p["metadata"]["uid"] for p in json.loads(listing or "{}").get("items", [])}
        for ns in c.kubectl("get", "ns", "-o", "name", check=False).stdout.split():
            if ns.startswith("namespace/e2e-"):
                c.kubectl("delete", ns, "--wait=false", check=False)
        try:
            c.wait(
                lambda: (
                    not [
                        line
                        for line in c.kubectl(
                            "get", "pods", "-A", "--no-headers", check=False
                        ).stdout.splitlines()
                        if line.startswith("e2e-")
                    ]
                ),
                timeout=90,
                what="test pods to go",
            )
        finally:
            srv.stop()
        left = machine_leftovers(data, uids)
        assert not left, f"left behind on the machine: {left}"


@pytest.fixture
def ns(cluster: Cluster) -> str:
    name = "e2e-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", name)
    return name
