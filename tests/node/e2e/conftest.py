"""What an end-to-end test checks at its end: nothing of ours left on the machine."""

from __future__ import annotations

import glob
import os
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

Leftovers = Callable[[Path, Iterable[str]], list[str]]


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
    conmons = subprocess.run(
        ["pgrep", "-f", f"conmon.*{data_dir}"], capture_output=True, text=True
    ).stdout.split()
    out += [f"conmon pid {p}" for p in conmons]
    return out


@pytest.fixture(scope="session")
def machine_leftovers() -> Leftovers:
    return leftovers
