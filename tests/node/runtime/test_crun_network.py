"""Pod networking with real pods: addresses, pod to pod, Services' hairpin, host network, port-forward (root)."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import time

import pytest

from pilothouse.node.runtime import protocol

from .conftest import RuntimeEnv
from .pods import exists, http_get, nft, read, start

pytestmark = [
    pytest.mark.root,
    pytest.mark.containers,
    pytest.mark.netns,
    pytest.mark.usefixtures("host_ready"),
]


async def test_pod_serves_http_from_its_address(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    rt = await runtime_env.started()
    sb = await rt.run_pod_sandbox(
        runtime_env.sandbox_config(
            "web",
            dns=protocol.DNSConfig(
                servers=("10.43.0.10",), searches=("test.svc.cluster.local",), options=("ndots:5",)
            ),
            host_aliases=(("10.1.2.3", ("foo.local", "bar.local")),),
        )
    )
    assert sb.state == "ready" and sb.ip.startswith(runtime_env.pod_cidr.rsplit(".", 1)[0])
    assert exists(f"/sys/class/net/{runtime_env.bridge}")
    cid = await start(
        rt,
        sb.id,
        busybox_image,
        ("httpd", "-f", "-p", "8080", "-h", "/var/www"),
        log_path=runtime_env.log_path("web"),
    )
    assert (await rt.container_status(cid)).state == "running"
    body = await asyncio.to_thread(http_get, sb.ip, 8080)
    assert b"200 OK" in body and b"hello from busybox" in body

    code, out, _ = await rt.exec_sync(
        cid,
        ["sh", "-c", "hostname; cat /etc/resolv.conf /etc/hosts; ip -4 addr show eth0"],
        timeout=5,
    )
    text = out.decode()
    assert code == 0
    assert text.splitlines()[0] == "web"
    assert (
        "nameserver 10.43.0.10" in text
        and "search test.svc.cluster.local" in text
        and "options ndots:5" in text
    )
    assert f"{sb.ip}\tweb" in text
    assert "10.1.2.3\tfoo.local\tbar.local" in text
    assert f"inet {sb.ip}/24" in text


async def test_two_pods_reach_each_other(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    rt = await runtime_env.started()
    a, b = await asyncio.gather(
        rt.run_pod_sandbox(runtime_env.sandbox_config("a")),
        rt.run_pod_sandbox(runtime_env.sandbox_config("b")),
    )
    assert a.ip != b.ip
    await start(rt, a.id, busybox_image, ("httpd", "-f", "-p", "8080", "-h", "/var/www"))
    client = await start(rt, b.id, busybox_image, ("sleep", "300"))
    await asyncio.to_thread(http_get, a.ip, 8080)  # a is listening
    code, out, err = await rt.exec_sync(
        client, ["wget", "-q", "-O", "-", f"http://{a.ip}:8080/index.html"], timeout=10
    )
    assert (code, out) == (0, b"hello from busybox\n"), err


async def test_pod_reaches_itself_through_a_service_address(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    if read("/proc/sys/net/ipv4/ip_forward").strip() != b"1":
        pytest.skip("IPv4 forwarding is off: run prepare_host() first")
    rt = await runtime_env.started()
    sb = await rt.run_pod_sandbox(runtime_env.sandbox_config())
    cid = await start(rt, sb.id, busybox_image, ("httpd", "-f", "-p", "8080", "-h", "/var/www"))
    service_ip = f"10.43.{random.randint(1, 254)}.{random.randint(2, 254)}"
    table = "pht_svc_" + runtime_env.bridge.removeprefix("pht")
    # What the proxy does for a Service: DNAT to the endpoint, masquerade hairpin traffic.
    await nft(
        f"add table ip {table}\n"
        f"add chain ip {table} pre {{ type nat hook prerouting priority dstnat; }}\n"
        f"add rule ip {table} pre ip daddr {service_ip} tcp dport 80 dnat to {sb.ip}:8080\n"
        f"add chain ip {table} post {{ type nat hook postrouting priority srcnat; }}\n"
        f"add rule ip {table} post ip saddr {sb.ip} ip daddr {sb.ip} masquerade\n"
    )
    try:
        await asyncio.to_thread(http_get, sb.ip, 8080)
        code, out, err = await rt.exec_sync(
            cid, ["wget", "-q", "-O", "-", f"http://{service_ip}/index.html"], timeout=10
        )
        assert (code, out) == (0, b"hello from busybox\n"), err
    finally:
        await nft(f"delete table ip {table}\n")


async def test_host_network_pod(runtime_env: RuntimeEnv, busybox_image: protocol.Image) -> None:
    rt = await runtime_env.started()
    sb = await rt.run_pod_sandbox(runtime_env.sandbox_config("hostnet", host_network=True))
    assert (sb.ip, sb.netns_path) == ("", "")
    cid = await start(rt, sb.id, busybox_image, ("sleep", "300"))
    _, out, _ = await rt.exec_sync(cid, ["hostname"], timeout=5)
    assert out.decode().strip() == socket.gethostname()


async def test_port_forward_reaches_the_pod(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    rt = await runtime_env.started()
    sb = await rt.run_pod_sandbox(runtime_env.sandbox_config())
    await start(rt, sb.id, busybox_image, ("httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/var/www"))
    await asyncio.to_thread(time.sleep, 0.2)
    reader, writer = await rt.port_forward(sb.id, 8080)  # listens on the pod's loopback only
    writer.write(b"GET /index.html HTTP/1.0\r\n\r\n")
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert b"200 OK" in response and b"hello from busybox" in response
    with pytest.raises(protocol.RuntimeError_) as err:
        await rt.port_forward(sb.id, 9)
    assert err.value.reason == "PortForwardError"


@pytest.mark.parametrize("binary", ["runc"])
async def test_runc_runs_the_same_pods(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image, binary: str
) -> None:

    if shutil.which(binary) is None:
        pytest.skip(f"{binary} is not installed")
    runtime_env.runtime_binary = binary
    rt = await runtime_env.started()
    assert rt.name == "runc" and rt.version
    sb = await rt.run_pod_sandbox(runtime_env.sandbox_config())
    cid = await start(rt, sb.id, busybox_image, ("httpd", "-f", "-p", "8080", "-h", "/var/www"))
    body = await asyncio.to_thread(http_get, sb.ip, 8080)
    assert b"hello from busybox" in body
    assert (await rt.exec_sync(cid, ["hostname"], timeout=5))[1].strip() == sb.hostname.encode()
    await rt.stop_container(cid, timeout=1)
    assert (await rt.container_status(cid)).state == "exited"
    await rt.remove_pod_sandbox(sb.id)
