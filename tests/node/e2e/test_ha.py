"""Many machines end to end: ``DevCluster`` (what ``pilothouse dev cluster`` runs) with
three servers on a three-member etcd and two agent hosts in network namespaces.

- The server the agents joined through is killed: the agents' load balancers move to
  another server, pods keep running (same containers, no restart), new pods start.
- One agent host dies (its agent killed, its link down): its node turns NotReady
  with the unreachable taint, its pods are evicted after their (short)
  tolerationSeconds and replaced on the other host, and the Service answers from
  there. When the host comes back, its agent stops the stale containers.
The module ends by checking that the cluster's tear-down left nothing behind.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import devcluster, testing

pytestmark = [
    pytest.mark.root,
    pytest.mark.containers,
    pytest.mark.netns,
    pytest.mark.kubectl,
    pytest.mark.slow,
]

HTTPD = ["sh", "-c", "touch /tmp/ready; exec httpd -f -p 8080 -h /etc"]
HTTP_GET = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], 80), timeout=3) as s:
        s.sendall(b"GET /hostname HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    print(data.split(b"\\r\\n\\r\\n", 1)[-1].decode().strip())
except OSError as exc:
    print(type(exc).__name__)
"""


@pytest.fixture(scope="module")
def dev(
    tmp_path_factory: pytest.TempPathFactory, local_registry: Any
) -> Iterator[devcluster.DevCluster]:
    tmp = tmp_path_factory.mktemp("ha-e2e")
    cluster = devcluster.DevCluster(
        tmp / "c", servers=3, agents=2, port=testing.free_port(),
        agent_args=("--config", str(testing.node_config_file(tmp))),
    )  # fmt: skip
    try:
        cluster.up(preload=[local_registry.busybox])
        cluster.wait_nodes_ready()
        yield cluster
    finally:
        left = cluster.down()
        assert not left, f"left behind: {left}"


def kubectl_json(dev: devcluster.DevCluster, *args: str, server: int = 1) -> Any:
    return json.loads(dev.kubectl(*args, "-o", "json", server=server).stdout)


def wait(check: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: last {last!r}")


def apply(dev: devcluster.DevCluster, manifest: dict[str, Any], server: int = 1) -> None:
    subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(dev.server_processes[server].kubeconfig),
            "apply",
            "-f",
            "-",
        ],
        input=json.dumps(manifest),
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )


def pod(name: str, image: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"test": "ha"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "main", "image": image, "command": HTTPD}],
        },
    }


def running(dev: devcluster.DevCluster, name: str, timeout: float = 90) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        p = kubectl_json(dev, "get", "pod", name, server=1)
        return p if (p.get("status") or {}).get("phase") == "Running" else None

    result: dict[str, Any] = wait(check, timeout=timeout, what=f"pod {name} Running")
    return result


def test_agents_fail_over_when_their_server_dies(
    dev: devcluster.DevCluster, local_registry: Any
) -> None:
    node = dev.hosts[0].name
    apply(dev, pod("before", local_registry.busybox, node))
    before = running(dev, "before")
    container = before["status"]["containerStatuses"][0]
    dev.server_processes[0].kill()  # the server both agents joined through
    try:
        for host in dev.hosts:
            apply(dev, pod(f"after-{host.name}", local_registry.busybox, host.name), server=2)
        for host in dev.hosts:
            running(dev, f"after-{host.name}")
        again = kubectl_json(dev, "get", "pod", "before", server=2)
        status = again["status"]["containerStatuses"][0]
        assert again["metadata"]["uid"] == before["metadata"]["uid"]
        assert status["containerID"] == container["containerID"]
        assert status["restartCount"] == 0
        assert "not answering; using" in dev.hosts[0].log_tail(200_000)
        # Both nodes stay Ready through it (their leases are renewed via other servers).
        nodes = kubectl_json(dev, "get", "nodes", server=2)["items"]
        for n in nodes:
            ready = next(c for c in n["status"]["conditions"] if c["type"] == "Ready")
            assert ready["status"] == "True", n["metadata"]["name"]
    finally:
        dev.server_processes[0].start(timeout=90)
        dev.kubectl("delete", "pod", "-l", "test=ha", "--wait=true", server=1, check=False)


def test_a_dead_hosts_pods_are_replaced_and_the_service_keeps_answering(
    dev: devcluster.DevCluster, local_registry: Any
) -> None:
    tolerate = [
        {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
        for key in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
    ]
    apply(
        dev,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 2,
                        "tolerations": tolerate,
                        "topologySpreadConstraints": [
                            {
                                "maxSkew": 1,
                                "topologyKey": "kubernetes.io/hostname",
                                "whenUnsatisfiable": "ScheduleAnyway",
                                "labelSelector": {"matchLabels": {"app": "web"}},
                            }
                        ],
                        "containers": [
                            {
                                "name": "web",
                                "image": local_registry.busybox,
                                "command": HTTPD,
                                "ports": [{"containerPort": 8080}],
                            }
                        ],
                    },
                },
            },
        },
    )
    apply(
        dev,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )

    def web_pods() -> list[dict[str, Any]]:
        items = kubectl_json(dev, "get", "pods", "-l", "app=web")["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def placed() -> dict[str, str] | None:
        pods = web_pods()
        ok = len(pods) == 2 and all(p["status"].get("phase") == "Running" for p in pods)
        return {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods} if ok else None

    placement = wait(placed, timeout=120, what="two web pods Running")
    stale_ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in web_pods()}
    victim_name = next(iter(placement.values()))
    victim = next(h for h in dev.hosts if h.name == victim_name)
    survivor = next(h for h in dev.hosts if h is not victim)
    cluster_ip = kubectl_json(dev, "get", "svc", "web")["spec"]["clusterIP"]

    def ask() -> str:
        return survivor.exec("python3", "-c", HTTP_GET, cluster_ip).stdout.strip()

    wait(lambda: ask().startswith("web-"), timeout=60, what="the Service to answer")
    stale = [n for n, node in placement.items() if node == victim.name]

    # The host dies: its agent is killed and its link goes down (its containers run on,
    # unreachable, as on a machine cut off from the network).
    assert victim.process is not None
    victim.process.kill()
    victim.process.wait(10)
    subprocess.run(["ip", "link", "set", victim.veth, "down"], check=True)
    died = time.monotonic()

    def condition() -> tuple[str, list[str]] | None:
        n = kubectl_json(dev, "get", "node", victim.name)
        ready = next(c for c in n["status"]["conditions"] if c["type"] == "Ready")
        taints = [t["key"] for t in n["spec"].get("taints") or [] if t["effect"] == "NoExecute"]
        if ready["status"] == "Unknown" and "node.kubernetes.io/unreachable" in taints:
            return ready["status"], taints
        return None

    wait(condition, timeout=90, what=f"{victim.name} NotReady with the unreachable taint")
    not_ready_after = time.monotonic() - died

    def endpoints() -> list[tuple[str, str, bool]]:
        """(pod, address, ready) of the Service's endpoints, as its slices say."""
        slices = kubectl_json(dev, "get", "endpointslices", "-l", "kubernetes.io/service-name=web")
        return [
            ((e.get("targetRef") or {}).get("name", ""), e["addresses"][0],
             bool((e.get("conditions") or {}).get("ready")))
            for s in slices["items"] for e in s.get("endpoints") or []
        ]  # fmt: skip

    def proxied() -> str:
        """The survivor's proxy rules: the addresses its Services send traffic to."""
        return survivor.exec("nft", "list", "ruleset").stdout

    def sends_to(rules: str, ip: str) -> bool:
        # ``… map { 0 : IP . 8080, … }`` for several endpoints, ``dnat ip to IP:8080`` for one.
        return re.search(rf"(?<![\d.]){re.escape(ip)}( \. |:)8080\b", rules) is not None

    def stale_out_of_service() -> bool:
        # The node lifecycle controller marks the lost node's pods not Ready (evicted
        # or not yet), so the endpoints drop them and so does the survivor's proxy.
        ready = {ip for name, ip, ok in endpoints() if ok and name in stale}
        rules = proxied()
        return not ready and not any(sends_to(rules, stale_ips[n]) for n in stale)

    wait(stale_out_of_service, timeout=30, what=f"the pods on {victim.name} out of the Service")
    out_after = time.monotonic() - died
    if len(stale) < len(placement):  # one pod lives on: the Service answers from it alone
        answers = [ask() for _ in range(10)]
        assert all(a.startswith("web-") and a not in stale for a in answers), (
            answers, endpoints(),
        )  # fmt: skip

    def replaced() -> bool:
        pods = web_pods()
        serving = {ip for _, ip, ok in endpoints() if ok}
        rules = proxied()
        return (
            len(pods) == 2
            and all(p["spec"].get("nodeName") == survivor.name for p in pods)
            and all(p["status"].get("phase") == "Running" for p in pods)
            and serving == {p["status"]["podIP"] for p in pods}
            and all(sends_to(rules, ip) for ip in serving)
        )

    wait(replaced, timeout=60, what="the web pods replaced on the surviving host and served")
    replaced_after = time.monotonic() - died
    answers = [ask() for _ in range(10)]
    assert all(a.startswith("web-") and a not in stale for a in answers), (answers, endpoints())
    print(
        f"node NotReady after {not_ready_after:.1f}s, its pods out of the Service after"
        f" {out_after:.1f}s, replaced after {replaced_after:.1f}s"
    )

    # The host returns: its agent stops the containers of the pods that were moved away.
    subprocess.run(["ip", "link", "set", victim.veth, "up"], check=True)
    victim.start_agent(server=dev.server_processes[1].url, token=dev.token)

    def cleaned() -> bool:
        listing = subprocess.run(
            ["crun", "--root", str(victim.run_dir / "crun"), "list", "-f", "json"],
            capture_output=True,
            text=True,
        ).stdout
        running_ids = [c["id"] for c in json.loads(listing or "[]") if c.get("status") == "running"]
        gone = not [p for p in kubectl_json(dev, "get", "pods", "-l", "app=web")["items"]
                    if p["metadata"]["name"] in stale]  # fmt: skip
        return not running_ids and gone

    wait(cleaned, timeout=90, what=f"{victim.name} to stop its stale pods: {victim.log_tail()}")
    dev.kubectl("delete", "deployment", "web", server=1)
    dev.kubectl("delete", "service", "web", server=1)
    wait(lambda: not web_pods(), timeout=60, what="the web pods to go")


def test_the_kubernetes_endpoints_list_every_server(dev: devcluster.DevCluster) -> None:
    # The kubernetes Endpoints list the three servers (master leases), which is where the
    # agents' load balancers take their list from.
    ep = kubectl_json(dev, "get", "endpoints", "kubernetes")
    ips = sorted(a["ip"] for s in ep["subsets"] for a in s["addresses"])
    assert ips == sorted(dev.server_address(i) for i in range(3))
    saved = json.loads((Path(dev.hosts[0].data_dir) / "agent" / "apiservers.json").read_text())
    assert len(saved["servers"]) >= 3
