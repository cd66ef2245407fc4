"""The proxy's ruleset in the real kernel: a "node" network namespace with a bridge
and two "pod" namespaces, real TCP through cluster IPs and node ports.

No containers and no API server: Services and slices are plain dicts, rendered and
applied with the real ``nft`` inside the node namespace. Each test builds its own
namespaces (names carry the test's pid) and removes them, pass or fail.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pilothouse.proxy import kernel, model, rules, state

pytestmark = [pytest.mark.root, pytest.mark.netns]

TAG = f"{os.getpid() % 100000}"
NODE, POD_A, POD_B = f"phdp-node-{TAG}", f"phdp-a-{TAG}", f"phdp-b-{TAG}"
SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16)
while True:
    c, peer = s.accept()
    c.sendall((sys.argv[2] + " " + peer[0] + "\\n").encode()); c.close()
"""
UDP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(100)
    s.sendto(b"udp " + peer[0].encode(), peer)
"""
UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(b"x", (sys.argv[1], int(sys.argv[2])))
try:
    print(s.recvfrom(100)[0].decode())
except (TimeoutError, socket.timeout):
    print("TIMEOUT")
"""
CLIENT = """
import socket, sys, time
t = time.monotonic()
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print("OK", c.recv(100).decode().strip())
except ConnectionRefusedError:
    print("REFUSED", round(time.monotonic() - t, 3))
except (TimeoutError, socket.timeout):
    print("TIMEOUT")
"""


def sh(*cmd: str, check: bool = True) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {proc.stderr}")
    return proc.stdout


def in_ns(ns: str, *cmd: str, check: bool = True) -> str:
    return sh("ip", "netns", "exec", ns, *cmd, check=check)


@pytest.fixture
def topology() -> Iterator[list[subprocess.Popen[bytes]]]:
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for ns in (NODE, POD_A, POD_B):
            sh("ip", "netns", "add", ns)
            in_ns(ns, "ip", "link", "set", "lo", "up")
        in_ns(NODE, "ip", "link", "add", "br0", "type", "bridge")
        in_ns(NODE, "ip", "addr", "add", "10.42.0.1/24", "dev", "br0")
        in_ns(NODE, "ip", "link", "set", "br0", "up")
        for pod, host_if, ip in ((POD_A, "va", "10.42.0.2"), (POD_B, "vb", "10.42.0.3")):
            in_ns(NODE, "ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0",
                  "netns", pod)  # fmt: skip
            in_ns(NODE, "ip", "link", "set", host_if, "master", "br0", "up")
            in_ns(NODE, "bridge", "link", "set", "dev", host_if, "hairpin", "on")
            in_ns(pod, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            in_ns(pod, "ip", "link", "set", "eth0", "up")
            in_ns(pod, "ip", "route", "add", "default", "via", "10.42.0.1")
        # The node-local DNS address the proxy must never catch (on lo: this kind of
        # machine's kernel has no dummy interfaces).
        in_ns(NODE, "ip", "addr", "add", "10.43.0.10/32", "dev", "lo")
        # An uplink with a default route, as a real node has (so that traffic to an
        # unallocated cluster IP is forwarded, and the proxy's rules decide its fate).
        in_ns(NODE, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1")
        in_ns(NODE, "ip", "addr", "add", "192.0.2.1/24", "dev", "up0")
        for link in ("up0", "up1"):
            in_ns(NODE, "ip", "link", "set", link, "up")
        in_ns(NODE, "ip", "route", "add", "default", "via", "192.0.2.254")
        in_ns(NODE, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        in_ns(NODE, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
        for ns, port, name in ((POD_B, "8080", "b"), (NODE, "53", "dns")):
            servers.append(
                subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", SERVER, port, name])
            )
        servers.append(
            subprocess.Popen(["ip", "netns", "exec", POD_B, "python3", "-c", UDP_SERVER, "5353"])
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "OK" not in connect(POD_A, "10.42.0.3", 8080):
            time.sleep(0.1)
        yield servers
    finally:
        for p in servers:
            p.kill()
            p.wait()
        for ns in (POD_A, POD_B, NODE):
            sh("ip", "netns", "del", ns, check=False)


def connect(ns: str, ip: str, port: int, timeout: float = 2.0) -> str:
    return in_ns(ns, "python3", "-c", CLIENT, ip, str(port), str(timeout)).strip()


def service(name: str, ip: str, **spec: Any) -> dict[str, Any]:
    ports = spec.pop("ports", [{"name": "http", "port": 80, "protocol": "TCP"}])
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": ip, "ports": ports, **spec}}  # fmt: skip


def endpoints(*ips: str) -> list[dict[str, Any]]:
    return [{"addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
             "endpoints": [{"addresses": [ip], "nodeName": "node"} for ip in ips]}]  # fmt: skip


def rendered(svc: dict[str, Any], slices: list[dict[str, Any]], cfg: rules.Config) -> rules.Rules:
    out = rules.Rules()
    for sp in model.service_ports(svc):
        cat = model.categorize(sp, model.endpoints_for(sp, slices), "node")
        out.merge(rules.render(sp, cat, cfg))
    return out


async def test_cluster_ips_node_ports_hairpin_and_rejects(
    topology: list[subprocess.Popen[bytes]],
) -> None:
    k = kernel.NftKernel(prefix=("ip", "netns", "exec", NODE))
    cfg = rules.Config(node_name="node")
    web = service("web", "10.43.0.50", type="NodePort",
                  ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}])  # fmt: skip
    empty = service("empty", "10.43.0.51")
    dns = service("dns", "10.43.0.53", ports=[{"name": "http", "port": 53, "protocol": "UDP"}])
    sctp = service("sctp", "10.43.0.54", ports=[{"name": "http", "port": 80,
                                                  "protocol": "SCTP"}])  # fmt: skip
    udp_slices = [{"addressType": "IPv4",
                   "ports": [{"name": "http", "port": 5353, "protocol": "UDP"}],
                   "endpoints": [{"addresses": ["10.42.0.3"]}]}]  # fmt: skip
    sctp_slices = [{**udp_slices[0], "ports": [{"name": "http", "port": 80,
                                                "protocol": "SCTP"}]}]  # fmt: skip
    ruleset = state.Ruleset(cfg)
    plan = ruleset.full(
        {"default/web": rendered(web, endpoints("10.42.0.3"), cfg),
         "default/empty": rendered(empty, [], cfg),
         "default/dns": rendered(dns, udp_slices, cfg),
         # This kernel has no SCTP sockets to test with; nft must take the rules.
         "default/sctp": rendered(sctp, sctp_slices, cfg)}
    )  # fmt: skip
    await k.apply(plan.script)
    plan.commit()
    in_ns(NODE, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1")
    try:
        # Pod to pod through the cluster IP: the client's own address arrives.
        assert connect(POD_A, "10.43.0.50", 80) == "OK b 10.42.0.2"
        # UDP through the cluster IP, the reply un-NATed by conntrack.
        udp = in_ns(POD_A, "python3", "-c", UDP_CLIENT, "10.43.0.53", "53").strip()
        assert udp == "udp 10.42.0.2", udp
        # Hairpin: a pod reaches itself through its Service, masqueraded to the bridge.
        assert connect(POD_B, "10.43.0.50", 80) == "OK b 10.42.0.1"
        # No endpoints: refused at once, not a time-out.
        got = connect(POD_A, "10.43.0.51", 80)
        assert got.startswith("REFUSED") and float(got.split()[1]) < 0.5
        # A port the Service does not have: refused; an unallocated cluster IP: dropped.
        assert connect(POD_A, "10.43.0.50", 81).startswith("REFUSED")
        assert connect(POD_A, "10.43.9.9", 80, timeout=1.0) == "TIMEOUT"
        # The node's own address inside the service range (node-local DNS) still answers.
        assert connect(POD_A, "10.43.0.10", 53) == "OK dns 10.42.0.2"
        assert connect(NODE, "10.43.0.10", 53) == "OK dns 10.43.0.10"
        # NodePort on the node's address and on 127.0.0.1.
        assert connect(NODE, "10.42.0.1", 30080).startswith("OK b")
        assert connect(NODE, "127.0.0.1", 30080).startswith("OK b")
        assert connect(NODE, "10.43.0.50", 80).startswith("OK b")
        # An incremental sync: the endpoint goes, the Service rejects; it comes back.
        plan = ruleset.partial({"default/web": rendered(web, [], cfg)}, time.monotonic())
        await k.apply(plan.script)
        plan.commit()
        assert connect(POD_A, "10.43.0.50", 80).startswith("REFUSED")
        assert connect(NODE, "10.42.0.1", 30080).startswith("REFUSED")
        plan = ruleset.partial(
            {"default/web": rendered(web, endpoints("10.42.0.3"), cfg)}, time.monotonic() + 2
        )
        assert "delete chain" in plan.script  # the chains flushed a "second" ago
        await k.apply(plan.script)
        plan.commit()
        assert connect(POD_A, "10.43.0.50", 80) == "OK b 10.42.0.2"
        # A refused transaction changes nothing.
        with pytest.raises(kernel.NftError):
            await k.apply("flush chain ip pilothouse-proxy services\nadd rule ip nosuch x y\n")
        assert connect(POD_A, "10.43.0.50", 80) == "OK b 10.42.0.2"
    finally:
        with contextlib.suppress(kernel.NftError):
            await k.apply("add table ip pilothouse-proxy\ndelete table ip pilothouse-proxy\n")
    assert "pilothouse-proxy" not in in_ns(NODE, "nft", "list", "tables")
