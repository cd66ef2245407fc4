"""Services end to end: `pilothouse server` with its node agent, real containers, the
real kubectl, the nftables proxy — and a second node in a network namespace.

The server listens on every address and advertises its address on a dev-host LAN
(:mod:`pilothouse.devhosts`), so the ``kubernetes`` Service has an endpoint pods can
reach and a second node can join. Each test uses its own namespace; the module ends
by checking that nothing of ours is left on the machine.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import devhosts, testing
from pilothouse.proxy import rules

from .conftest import Leftovers
from .realcluster import Cluster, pod_manifest

pytestmark = [
    pytest.mark.root,
    pytest.mark.containers,
    pytest.mark.netns,
    pytest.mark.kubectl,
    pytest.mark.slow,
]

CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""
HTTPD = ["sh", "-c", "touch /tmp/ready; exec httpd -f -p 8080 -h /etc"]


@pytest.fixture(scope="module")
def lan() -> Iterator[devhosts.Lan]:
    net = devhosts.Lan().up()
    try:
        yield net
    finally:
        net.down()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    local_registry: Any,
    machine_leftovers: Leftovers,
    lan: devhosts.Lan,
) -> Iterator[Cluster]:
    data = tmp_path_factory.mktemp("svc-e2e") / "data"
    srv = testing.ServerProcess(
        data,
        agent=True,
        extra_args=["--bind-address", "0.0.0.0", "--advertise-address", lan.gateway],
    ).start(timeout=60)
    c = Cluster(srv, local_registry.busybox)
    try:
        c.wait(
            lambda: "Ready" in c.kubectl("get", "nodes", "--no-headers", check=False).stdout,
            timeout=60,
            what="the node to be Ready",
        )
        yield c
    finally:
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
            # The agent releases a sandbox just after the pod object is gone.
            sandboxes = data / "agent" / "runtime" / "sandboxes"
            c.wait(
                lambda: not list(sandboxes.iterdir()) if sandboxes.exists() else True,
                timeout=30,
                what="the sandboxes to be released",
            )
        finally:
            srv.stop()
        left = machine_leftovers(data, uids)
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        if rules.TABLE in tables:
            left.append(f"nftables table {rules.TABLE}")
        routes = subprocess.run(
            ["ip", "route", "show", "proto", "81"], capture_output=True, text=True
        ).stdout
        left += [f"route {r}" for r in routes.splitlines()]
        assert not left, f"left behind on the machine: {left}"


@pytest.fixture
def ns(cluster: Cluster) -> str:
    name = "e2e-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", name)
    return name


def web_deployment(image: str, replicas: int = 3, period: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "httpd",
                            "image": image,
                            "command": HTTPD,
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {
                                "exec": {"command": ["test", "-f", "/tmp/ready"]},
                                "periodSeconds": period,
                                "failureThreshold": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def service(name: str, selector: str = "web", **spec: Any) -> dict[str, Any]:
    ports = spec.pop("ports", [{"name": "http", "port": 80, "targetPort": "http"}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": selector}, "ports": ports, **spec}}  # fmt: skip


def ready_pods(cluster: Cluster, ns: str, app: str = "web") -> list[dict[str, Any]]:
    pods = cluster.json("-n", ns, "get", "pods", "-l", f"app={app}")["items"]
    out = []
    for p in pods:
        conds = {c["type"]: c["status"] for c in p.get("status", {}).get("conditions") or []}
        if conds.get("Ready") == "True" and not p["metadata"].get("deletionTimestamp"):
            cluster.uids.add(p["metadata"]["uid"])
            out.append(p)
    return out


def start_web(cluster: Cluster, ns: str, *, replicas: int = 3, **svc: Any) -> str:
    """The web Deployment and its Service; returns the cluster IP once all are ready."""
    cluster.apply(ns, web_deployment(cluster.image, replicas))
    cluster.apply(ns, service("web", **svc))
    cluster.wait(lambda: len(ready_pods(cluster, ns)) == replicas, timeout=90, what="web ready")
    cluster.run(ns, "client", ["sleep", "3600"])
    ip: str = cluster.json("-n", ns, "get", "svc", "web")["spec"]["clusterIP"]
    port = cluster.json("-n", ns, "get", "svc", "web")["spec"]["ports"][0]["port"]
    cluster.wait(
        lambda: "web-" in fetch(cluster, ns, f"http://{ip}:{port}/hostname"), what="the VIP"
    )
    return ip


def sh_in(cluster: Cluster, ns: str, pod: str, script: str, timeout: float = 120) -> str:
    return cluster.kubectl("-n", ns, "exec", pod, "--", "sh", "-c", script, timeout=timeout).stdout


def fetch(cluster: Cluster, ns: str, url: str, pod: str = "client") -> str:
    proc = cluster.kubectl(
        "-n", ns, "exec", pod, "--", "sh", "-c", f"wget -q -O - {url} 2>&1", check=False
    )
    return proc.stdout.strip()


def answers(cluster: Cluster, ns: str, url: str, count: int, pod: str = "client") -> Counter[str]:
    # `timeout 5`, not `wget -T`: busybox 1.35's -T crashes with a host name (COMPAT-NOTES).
    out = sh_in(
        cluster,
        ns,
        pod,
        f"for i in $(seq {count}); do timeout 5 wget -q -O - {url} || echo FAIL; done",
    )
    return Counter(out.split())


def test_cluster_ip_spreads_over_every_ready_replica(cluster: Cluster, ns: str) -> None:
    ip = start_web(cluster, ns)
    names = {p["metadata"]["name"] for p in ready_pods(cluster, ns)}
    got = answers(cluster, ns, f"http://{ip}/hostname", 60)
    assert set(got) == names, got  # every replica answered, nothing failed
    # By every form of its name too (the node's cluster DNS, the pod's search path).
    for host in ("web", f"web.{ns}", f"web.{ns}.svc.cluster.local"):
        got = answers(cluster, ns, f"http://{host}/hostname", 60)
        assert set(got) == names, (host, got)
    # The Endpoints and EndpointSlice behind it, as kubectl shows them.
    ep = cluster.kubectl("-n", ns, "get", "endpoints", "web").stdout.splitlines()
    assert ep[0].split() == ["NAME", "ENDPOINTS", "AGE"]
    ips = sorted(p["status"]["podIP"] for p in ready_pods(cluster, ns))
    assert ep[1].split()[1] == ",".join(f"{i}:8080" for i in ips)
    es = cluster.kubectl("-n", ns, "get", "endpointslices").stdout.splitlines()
    assert es[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert es[1].split()[1:3] == ["IPv4", "8080"]


def test_readiness_takes_a_pod_out_and_back(cluster: Cluster, ns: str) -> None:
    period = 1
    ip = start_web(cluster, ns)
    victim = ready_pods(cluster, ns)[0]["metadata"]["name"]
    sh_in(cluster, ns, victim, "rm /tmp/ready")
    started = time.monotonic()
    time.sleep(2 * period + 0.5)  # two probe periods (and the rules' half-second batch)
    got = answers(cluster, ns, f"http://{ip}/hostname", 30)
    assert victim not in got and "FAIL" not in got, (got, time.monotonic() - started)
    sh_in(cluster, ns, victim, "touch /tmp/ready")
    cluster.wait(
        lambda: victim in answers(cluster, ns, f"http://{ip}/hostname", 15),
        timeout=30,
        what="the pod back in the Service",
    )


def test_deleting_a_pod_never_fails_a_client_that_retries_once(cluster: Cluster, ns: str) -> None:
    ip = start_web(cluster, ns)
    url = f"http://{ip}/hostname"
    client = subprocess.Popen(
        ["kubectl", "-n", ns, "exec", "client", "--", "sh", "-c",
         f"for i in $(seq 150); do wget -q -O - {url} || wget -q -O - {url} || echo FAIL; "
         "usleep 20000; done"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env(),
    )  # fmt: skip
    time.sleep(1.0)
    victims = [p["metadata"]["name"] for p in ready_pods(cluster, ns)[:2]]
    cluster.kubectl("-n", ns, "delete", "pod", victims[0], "--wait=false")
    time.sleep(1.0)
    cluster.kubectl("-n", ns, "delete", "pod", victims[1], "--wait=false")
    out, err = client.communicate(timeout=120)
    lines = out.split()
    assert len(lines) == 150, (lines[-5:], err)
    assert "FAIL" not in lines, Counter(lines)


def test_node_port_on_the_node_address_and_localhost(
    cluster: Cluster, ns: str, lan: devhosts.Lan
) -> None:
    start_web(cluster, ns, type="NodePort")
    port = cluster.json("-n", ns, "get", "svc", "web")["spec"]["ports"][0]["nodePort"]
    for host in (lan.gateway, "127.0.0.1"):
        body = _http(host, port, "/hostname")
        assert body.startswith("web-"), (host, body)
    assert fetch(cluster, ns, f"http://{lan.gateway}:{port}/hostname").startswith("web-")


def test_client_ip_affinity_pins_a_client(cluster: Cluster, ns: str) -> None:
    ip = start_web(
        cluster,
        ns,
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
    )
    got = answers(cluster, ns, f"http://{ip}/hostname", 20)
    assert len(got) == 1 and "FAIL" not in got, got


def test_port_forward_to_a_service(cluster: Cluster, ns: str) -> None:
    start_web(cluster, ns)
    proc = subprocess.Popen(
        ["kubectl", "-n", ns, "port-forward", "svc/web", "0:80"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # Forwarding from 127.0.0.1:PORT -> 8080
        assert line.startswith("Forwarding from 127.0.0.1:") and line.rstrip().endswith("-> 8080")
        port = int(line.split(":")[1].split()[0])
        assert _http("127.0.0.1", port, "/hostname").startswith("web-")
    finally:
        proc.terminate()
        proc.wait(10)


def test_no_endpoints_is_refused_at_once(cluster: Cluster, ns: str) -> None:
    cluster.apply(ns, service("nobody", selector="nothing-has-this"))
    cluster.run(ns, "client", ["sleep", "3600"])
    ip = cluster.json("-n", ns, "get", "svc", "nobody")["spec"]["clusterIP"]
    cluster.wait(
        lambda: "refused" in fetch(cluster, ns, f"http://{ip}/"), what="the proxy to reject"
    )
    started = time.monotonic()
    out = sh_in(cluster, ns, "client", f"time wget -q -O - http://{ip}/ 2>&1; true")
    assert "Connection refused" in out, out
    real = [ln.split() for ln in out.splitlines() if ln.startswith("real")]
    assert real and real[0][1] == "0m" and float(real[0][2].rstrip("s")) < 0.3, out
    assert time.monotonic() - started < 10


def test_the_kubernetes_service_works_from_a_pod(cluster: Cluster, ns: str) -> None:
    cluster.run(ns, "client", ["sleep", "3600"])
    # busybox's own TLS (no openssl in the image) sends no signature_algorithms.
    out = fetch(cluster, ns, "--no-check-certificate https://10.43.0.1/version")
    assert json.loads(out)["minor"] == "32", out
    by_name = sh_in(cluster, ns, "client", "timeout 10 wget -q --no-check-certificate -O - "
                    "https://kubernetes.default.svc/version")  # fmt: skip
    assert json.loads(by_name)["minor"] == "32", by_name
    env = sh_in(cluster, ns, "client", "env")
    assert "KUBERNETES_SERVICE_HOST=10.43.0.1" in env and "KUBERNETES_SERVICE_PORT=443" in env


def test_load_balancer_serves_on_the_node_and_reports_a_taken_port(
    cluster: Cluster, ns: str, lan: devhosts.Lan
) -> None:
    start_web(cluster, ns, type="LoadBalancer", ports=[
        {"name": "http", "port": 18080, "targetPort": "http"}])  # fmt: skip

    def ingress() -> list[str]:
        svc = cluster.json("-n", ns, "get", "svc", "web")
        return [i["ip"] for i in svc["status"].get("loadBalancer", {}).get("ingress") or []]

    assert lan.gateway in cluster.wait(ingress, what="the load balancer's ingress")
    wide = cluster.kubectl("-n", ns, "get", "svc", "web").stdout.splitlines()
    assert wide[1].split()[3] == lan.gateway and wide[1].split()[4].startswith("18080:")
    cluster.wait(lambda: _http(lan.gateway, 18080, "/hostname").startswith("web-"), what="LB")
    # A port a host process holds (the API server's) is not taken over, and is reported.
    cluster.apply(ns, service("clash", ports=[{"name": "http", "port": cluster.srv.port,
                                                "targetPort": "http"}], type="LoadBalancer"))  # fmt: skip

    def reported() -> str:
        out = cluster.kubectl("-n", ns, "get", "events", "--field-selector",
                              "involvedObject.name=clash,reason=PortInUse", "-o", "json").stdout  # fmt: skip
        items = json.loads(out)["items"]
        return str(items[0]["message"]) if items else ""

    try:
        message = cluster.wait(reported, what="a PortInUse event")
        assert f"port {cluster.srv.port}/TCP is already in use on node" in message
        assert cluster.kubectl("version", "-o", "json").returncode == 0  # the server answers
    finally:
        # A node that joins later does not hold the API server's port: its ServiceLB
        # would take it for this Service, and the new agent would reach the Service
        # instead of the API server (test_a_pod_reaches_a_pod_on_a_second_node…).
        cluster.kubectl("-n", ns, "delete", "svc", "clash", "--wait=true", check=False)


def test_a_pod_reaches_a_pod_on_a_second_node_through_a_service(
    cluster: Cluster,
    ns: str,
    lan: devhosts.Lan,
    tmp_path: Path,
    local_registry: Any,
) -> None:
    host = devhosts.DevHost(lan, f"n2-{uuid.uuid4().hex[:4]}", index=1, data_dir=tmp_path / "n2")
    uids: list[str] = []
    host.create()
    try:
        # The dev host cannot reach the registry on this machine's loopback: preload.
        subprocess.run(
            [*_pilothouse(), "images", "pull", local_registry.busybox, "-q",
             "--data-dir", str(host.data_dir)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        token = (cluster.srv.data_dir / "token").read_text().strip()
        host.start_agent(
            server=f"https://{lan.gateway}:{cluster.srv.port}",
            token=token,
            extra=("--config", str(testing.node_config_file(tmp_path))),
        )
        cluster.wait(
            lambda: "Ready" in cluster.kubectl("get", "node", host.name, "--no-headers",
                                               check=False).stdout,
            timeout=90, what=f"node {host.name} Ready: {host.log_tail()}",
        )  # fmt: skip
        node2_cidr = cluster.json("get", "node", host.name)["spec"]["podCIDR"]
        node1 = next(
            n["metadata"]["name"]
            for n in cluster.json("get", "nodes")["items"]
            if n["metadata"]["name"] != host.name
        )
        cluster.apply(ns, pod_manifest("remote", cluster.image, HTTPD, nodeName=host.name,
                                       container={"ports": [{"name": "http",
                                                             "containerPort": 8080}]}))  # fmt: skip
        try:
            remote = cluster.running(ns, "remote", timeout=90)
        except AssertionError:
            print(cluster.kubectl("-n", ns, "describe", "pod", "remote", check=False).stdout)
            print(host.log_tail())
            raise
        uids.append(remote["metadata"]["uid"])
        assert remote["status"]["podIP"] in _cidr_hosts(node2_cidr)
        cluster.apply(ns, service("far", selector="remote"))
        # Two nodes now: the client and the local server are pinned to this one.
        cluster.apply(ns, pod_manifest("client", cluster.image, ["sleep", "3600"], nodeName=node1))
        cluster.running(ns, "client")
        ip = cluster.json("-n", ns, "get", "svc", "far")["spec"]["clusterIP"]
        cluster.wait(lambda: fetch(cluster, ns, f"http://{ip}/hostname") == "remote",
                     timeout=60, what="the remote pod through its Service")  # fmt: skip
        # Traffic policies Local: only this node's endpoints count, and there are none
        # here — node 1 drops, node 2 (where the pod runs) answers.
        cluster.apply(ns, service("far-local", selector="remote", type="NodePort",
                                  externalTrafficPolicy="Local", internalTrafficPolicy="Local"))  # fmt: skip
        local_svc = cluster.json("-n", ns, "get", "svc", "far-local")["spec"]
        node_port = local_svc["ports"][0]["nodePort"]
        cluster.wait(lambda: _http(host.address, node_port, "/hostname") == "remote",
                     timeout=30, what="the NodePort on node 2")  # fmt: skip
        # From outside node 1 (node 2's namespace) to node 1's NodePort: dropped. (From
        # node 1 itself it would answer: local traffic takes the cluster-wide endpoints.)
        assert host.exec("python3", "-c", CONNECT, lan.gateway, str(node_port)).stdout.strip() \
            == "TimeoutError"  # fmt: skip
        dropped = sh_in(cluster, ns, "client", "timeout 3 wget -q -O - "
                        f"http://{local_svc['clusterIP']}/hostname 2>&1; echo rc=$?")  # fmt: skip
        assert "remote" not in dropped and "refused" not in dropped, dropped  # dropped
        assert "rc=0" not in dropped, dropped
        # Directly too (host-gw routes), and from the second node's side to this one.
        assert fetch(cluster, ns, f"http://{remote['status']['podIP']}:8080/hostname") == "remote"
        local_ip = cluster.pod(ns, "client")["status"]["podIP"]
        cluster.apply(ns, pod_manifest("local-web", cluster.image, HTTPD, nodeName=node1))
        local_web = cluster.running(ns, "local-web")["status"]["podIP"]
        got = cluster.wait(
            lambda: fetch(cluster, ns, f"http://{local_web}:8080/hostname", pod="remote"),
            what="node 2 reaching node 1",
        )
        assert got == "local-web" and local_ip
        cluster.kubectl("-n", ns, "delete", "pod", "remote", "--wait=true", timeout=120)
    finally:
        cluster.kubectl("delete", "node", host.name, "--wait=false", check=False)
        host.destroy()
    assert not host.leftovers(), host.leftovers()
    routes = subprocess.run(["ip", "route", "show", "proto", "81"], capture_output=True, text=True)
    cluster.wait(lambda: not _route_via(host.address), what="the route to node 2 to go")
    assert host.address not in routes.stdout or not _route_via(host.address)


def _route_via(gateway: str) -> bool:
    out = subprocess.run(["ip", "route", "show", "proto", "81"], capture_output=True, text=True)
    return gateway in out.stdout


def _cidr_hosts(cidr: str) -> set[str]:
    import ipaddress

    return {str(h) for h in ipaddress.ip_network(cidr).hosts()}


def _pilothouse() -> list[str]:
    import sys

    return [sys.executable, "-m", "pilothouse.cli.main"]


def _http(host: str, port: int, path: str) -> str:
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError as exc:
        return f"error: {exc}"
    return data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip()
