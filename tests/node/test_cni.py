"""Pod networking: the bridge network's config, plugin protocol handling, and real netns (root)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pilothouse.node import cni


def network(tmp_path: Path, **kw: object) -> cni.BridgeNetwork:
    kwargs: dict[str, object] = {
        "pod_cidr": "10.42.3.0/24",
        "data_dir": tmp_path / "cni",
        "mtu": 1400,
    }
    kwargs.update(kw)
    return cni.BridgeNetwork(**kwargs)  # type: ignore[arg-type]


def test_bridge_config(tmp_path: Path) -> None:
    net = network(tmp_path, cluster_cidr="10.42.0.0/16")
    conf = net.config()
    assert (
        conf["type"],
        conf["bridge"],
        conf["isGateway"],
        conf["hairpinMode"],
        conf["ipMasq"],
    ) == ("bridge", "ph0", True, True, False)
    assert conf["mtu"] == 1400
    assert conf["ipam"]["ranges"] == [[{"subnet": "10.42.3.0/24", "gateway": "10.42.3.1"}]]
    assert conf["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}]
    assert conf["ipam"]["dataDir"] == str(tmp_path / "cni")
    rules = net.masquerade_rules()
    assert "ip saddr 10.42.3.0/24 ip daddr != 10.42.0.0/16" in rules and "masquerade" in rules
    assert rules.startswith("add table ip pilothouse_cni_ph0\nflush table ip pilothouse_cni_ph0\n")


def test_only_ipv4(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="IPv4"):
        network(tmp_path, pod_cidr="fd00::/64")
    assert network(tmp_path, pod_cidr="10.42.3.7/24").pod_cidr == "10.42.3.0/24"


def test_default_mtu() -> None:
    assert 576 <= cni.default_mtu() <= 65536


def fake_plugin(tmp_path: Path, stdout: dict[str, object], code: int = 0) -> Path:
    d = tmp_path / "plugins"
    d.mkdir(exist_ok=True)
    script = d / "bridge"
    script.write_text(
        "#!/bin/sh\n"
        f"cat > {d}/stdin.json\n"
        f"env | grep ^CNI_ > {d}/env.txt\n"
        f"echo '{json.dumps(stdout)}'\n"
        f"exit {code}\n"
    )
    script.chmod(0o755)
    return d


async def test_add_speaks_the_cni_protocol(tmp_path: Path) -> None:
    result = {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "ph0", "mac": "aa:aa:aa:aa:aa:aa"},
            {"name": "veth1234", "mac": "bb:bb:bb:bb:bb:bb"},
            {"name": "eth0", "mac": "cc:cc:cc:cc:cc:cc", "sandbox": "/run/netns/x"},
        ],
        "ips": [{"interface": 2, "address": "10.42.3.9/24", "gateway": "10.42.3.1"}],
    }
    plugins = fake_plugin(tmp_path, result)
    net = network(tmp_path, plugin_dirs=(plugins,))
    att = await net.add("sandbox1", Path("/run/netns/x"), args={"K8S_POD_NAME": "web"})
    assert (att.ip, att.prefix_len, att.gateway, att.mac, att.host_interface) == (
        "10.42.3.9", 24, "10.42.3.1", "cc:cc:cc:cc:cc:cc", "veth1234",
    )  # fmt: skip
    env = dict(line.split("=", 1) for line in (plugins / "env.txt").read_text().splitlines())
    assert env["CNI_COMMAND"] == "ADD" and env["CNI_CONTAINERID"] == "sandbox1"
    assert env["CNI_NETNS"] == "/run/netns/x" and env["CNI_IFNAME"] == "eth0"
    assert env["CNI_ARGS"] == "IgnoreUnknown=1;K8S_POD_NAME=web"
    assert json.loads((plugins / "stdin.json").read_text()) == net.config()


async def test_plugin_errors_are_explained(tmp_path: Path) -> None:
    plugins = fake_plugin(
        tmp_path, {"code": 11, "msg": "failed to allocate", "details": "range full"}, code=1
    )
    net = network(tmp_path, plugin_dirs=(plugins,))
    with pytest.raises(cni.CNIError) as err:
        await net.add("s", Path("/run/netns/x"))
    assert err.value.message == "failed to allocate: range full" and err.value.code == 11
    missing = network(tmp_path, plugin_dirs=(tmp_path / "nowhere",))
    with pytest.raises(cni.CNIError, match="containernetworking-plugins"):
        await missing.add("s", Path("/run/netns/x"))


async def test_del_without_namespace_passes_no_path(tmp_path: Path) -> None:
    plugins = fake_plugin(tmp_path, {})
    net = network(tmp_path, plugin_dirs=(plugins,))
    await net.delete("s", tmp_path / "gone")
    env = (plugins / "env.txt").read_text()
    assert "CNI_COMMAND=DEL" in env and "CNI_NETNS=\n" in env


# --- real namespaces ---------------------------------------------------------------------------
def exists(path: str | Path) -> bool:
    return os.path.exists(path)


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False)


@pytest.fixture
async def real_network(tmp_path: Path) -> AsyncIterator[cni.BridgeNetwork]:
    if shutil.which("nft") is None or any(cni.find_plugin(p) is None for p in cni.REQUIRED_PLUGINS):
        pytest.skip("CNI plugins or nft not installed (run `make install`)")
    net = cni.BridgeNetwork(
        pod_cidr=f"10.198.{random.randint(1, 254)}.0/24",
        data_dir=tmp_path / "cni",
        bridge="phc" + secrets.token_hex(3),
    )
    await net.setup()
    try:
        yield net
    finally:
        await net.teardown(remove_bridge=True)


@pytest.mark.root
@pytest.mark.netns
async def test_namespaces_attach_and_detach(real_network: cni.BridgeNetwork) -> None:
    names = [f"pilothouse-test-{secrets.token_hex(4)}" for _ in range(4)]
    paths = [await cni.create_netns(n) for n in names]
    try:
        atts = await asyncio.gather(
            *(real_network.add(n, p) for n, p in zip(names, paths, strict=True))
        )
        assert len({a.ip for a in atts}) == 4
        assert all(a.gateway == real_network.gateway for a in atts)
        for a in atts:
            assert read(f"/sys/class/net/{a.host_interface}/brport/hairpin_mode") == "1"
        # from inside a namespace we made, the node answers on the gateway address
        with socket.socket() as server:
            server.bind((real_network.gateway, 0))
            server.listen()
            client = (
                "import socket; s = socket.create_connection"
                f"(('{real_network.gateway}', {server.getsockname()[1]}), timeout=5); s.sendall(b'hi')"
            )
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", names[0], sys.executable, "-c", client
            )
            conn, peer = await asyncio.to_thread(server.accept)
            with conn:
                assert conn.recv(10) == b"hi"
            assert peer[0] == atts[0].ip
            assert await proc.wait() == 0
        lo = run(["ip", "netns", "exec", names[0], "ip", "-o", "link", "show", "lo"])
        assert "UP" in lo.stdout
        rules = run(["nft", "list", "table", "ip", real_network.nft_table])
        assert real_network.pod_cidr in rules.stdout
        leases = real_network.data_dir / "pilothouse"
        assert all(exists(leases / a.ip) for a in atts)

        await asyncio.gather(
            *(real_network.delete(n, p) for n, p in zip(names, paths, strict=True))
        )
        await real_network.delete(names[0], paths[0])  # idempotent
        assert not any(exists(leases / a.ip) for a in atts)
        assert not any(exists(f"/sys/class/net/{a.host_interface}") for a in atts)
    finally:
        for p in paths:
            cni.remove_netns(p)
    assert not any(exists(p) for p in paths)
    listed = run(["ip", "netns", "list"]).stdout
    assert not any(n in listed for n in names)
