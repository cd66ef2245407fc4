"""Runtime-test fixtures: a busybox root filesystem as an Image, and runtimes that clean up.

Each test that runs real pods gets its own bridge (``pht<hex>``), pod CIDR
(10.199.<n>.0/24), cgroup root, state and run directories, so tests never touch
what a real agent on the machine owns. The finaliser removes whatever is left
— through a fresh runtime on the same directories first (which also exercises
re-adoption), then by force — so a failing test leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pilothouse.node import cni
from pilothouse.node.runtime import cgroups, fake, linux, protocol
from pilothouse.node.runtime.crun import CrunRuntime

BUSYBOX = Path("/bin/busybox")


def make_busybox_rootfs(root: Path) -> Path:
    """A directory with /bin/busybox, its applets as symlinks, and a few /etc files."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    for name in applets.stdout.split():
        if name != "busybox":
            os.symlink("busybox", root / "bin" / name)
    for d in ("etc", "proc", "sys", "dev", "tmp", "root", "var/www", "home/app"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "app:x:1000:1000:app:/home/app:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    (root / "etc" / "group").write_text(
        "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n"
    )
    (root / "var" / "www" / "index.html").write_text("hello from busybox\n")
    return root


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BUSYBOX.exists():
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    return make_busybox_rootfs(tmp_path_factory.mktemp("rootfs") / "busybox")


@pytest.fixture(scope="session")
def busybox_image(busybox_rootfs: Path) -> protocol.Image:
    return protocol.Image(
        id="sha256:" + "b" * 64,
        repo_tags=("busybox:test",),
        repo_digests=("busybox@sha256:" + "b" * 64,),
        size=0,
        layers=(busybox_rootfs,),
        cmd=("sh",),
    )


@dataclass
class RuntimeEnv:
    """Directories and network of one test; makes runtimes on them."""

    state_dir: Path
    run_dir: Path
    bridge: str
    pod_cidr: str
    cgroup_root: str
    runtime_binary: str = "crun"
    made: list[CrunRuntime] = field(default_factory=list)

    def runtime(self, **overrides: object) -> CrunRuntime:
        kwargs: dict[str, object] = {
            "images": fake.FakeImageService(),
            "pod_cidr": self.pod_cidr,
            "run_dir": self.run_dir,
            "bridge": self.bridge,
            "cgroup_root": self.cgroup_root,
            "runtime_binary": self.runtime_binary,
        }
        kwargs.update(overrides)
        rt = CrunRuntime(self.state_dir, **kwargs)  # type: ignore[arg-type]
        self.made.append(rt)
        return rt

    async def started(self, **overrides: object) -> CrunRuntime:
        rt = self.runtime(**overrides)
        await rt.start()
        return rt

    def sandbox_config(self, name: str = "", **fields: object) -> protocol.SandboxConfig:
        uid = secrets.token_hex(8)
        name = name or f"pod-{uid[:6]}"
        kwargs: dict[str, object] = {
            "uid": uid,
            "namespace": "test",
            "name": name,
            "hostname": name,
            "cgroup_parent": f"{self.cgroup_root}/pod{uid}",
        }
        kwargs.update(fields)
        return protocol.SandboxConfig(**kwargs)  # type: ignore[arg-type]

    def log_path(self, name: str) -> str:
        return str(self.state_dir.parent / "logs" / name / "0.log")

    async def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            rt = CrunRuntime(
                self.state_dir,
                images=fake.FakeImageService(),
                pod_cidr=self.pod_cidr,
                run_dir=self.run_dir,
                bridge=self.bridge,
                cgroup_root=self.cgroup_root,
                runtime_binary=self.runtime_binary,
            )
            await asyncio.wait_for(rt.start(), 30)
            for sb in await rt.list_sandboxes():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(rt.remove_pod_sandbox(sb.id), 30)
            for c in await rt.list_containers():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(rt.remove_container(c.id), 30)
        await asyncio.to_thread(self._force_cleanup)
        network = cni.BridgeNetwork(
            pod_cidr=self.pod_cidr, data_dir=self.state_dir / "cni", bridge=self.bridge
        )
        with contextlib.suppress(Exception):
            await network.teardown(remove_bridge=True)

    def _force_cleanup(self) -> None:
        root = self.run_dir / Path(self.runtime_binary).name
        if root.is_dir():
            for cid in os.listdir(root):
                subprocess.run(
                    [self.runtime_binary, f"--root={root}", "delete", "--force", cid],
                    capture_output=True,
                    check=False,
                )
        for mnt in sorted(linux.mounted_paths(), reverse=True):
            if mnt.startswith((str(self.state_dir) + "/", str(self.run_dir) + "/")):
                linux.umount(mnt)
        sandboxes = self.state_dir / "sandboxes"
        if sandboxes.is_dir():
            for sid in os.listdir(sandboxes):
                netns = cni.netns_path(f"pilothouse-{sid}")
                if netns.exists():
                    linux.unpin(netns)
        cgroups.remove(cgroups.detect(), self.cgroup_root)
        shutil.rmtree(self.run_dir, ignore_errors=True)


@pytest.fixture
async def runtime_env(tmp_path: Path) -> AsyncIterator[RuntimeEnv]:
    token = secrets.token_hex(3)
    env = RuntimeEnv(
        state_dir=tmp_path / "state",
        # Short: conmon's attach socket path must fit in 108 bytes.
        run_dir=Path(f"/run/pht-{token}"),
        bridge=f"pht{token}",
        pod_cidr=f"10.199.{random.randint(1, 254)}.0/24",
        cgroup_root=f"/pilothouse-test-{token}",
    )
    try:
        yield env
    finally:
        await env.cleanup()


@pytest.fixture
def host_ready() -> Iterator[None]:
    """Skip unless crun, conmon and the CNI plugins are installed."""
    missing = [b for b in ("crun", "conmon", "nft") if shutil.which(b) is None]
    missing += [p for p in cni.REQUIRED_PLUGINS if cni.find_plugin(p) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (run `make install`)")
    layout = cgroups.detect()
    if cgroups.conflicting_v2_controllers(layout):
        pytest.skip("hybrid cgroups with controllers on cgroup2: run prepare_host() first")
    yield
