"""Real pods end to end: `pilothouse server` with its node agent, real containers
(crun under conmon), the CNI bridge, images pulled from a local registry, and
the real kubectl. Needs root; CI runs as root.

One server (and one node) serves the module; every test uses its own namespace.
At the end the module checks that nothing of ours is left on the machine.
"""

from __future__ import annotations

import glob
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from .realcluster import Cluster, pod_manifest

pytestmark = [
    pytest.mark.root,
    pytest.mark.containers,
    pytest.mark.netns,
    pytest.mark.kubectl,
    pytest.mark.slow,
]


def _http(ip: str, port: int, path: str = "/") -> bytes:
    import urllib.request

    with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=5) as resp:
        data: bytes = resp.read()
        return data


def test_httpd_pod_serves_on_its_ip_and_another_pod_reaches_it(cluster: Cluster, ns: str) -> None:
    cluster.apply(
        ns, pod_manifest("web", cluster.image, ["httpd", "-f", "-p", "8080", "-h", "/etc"])
    )
    pod = cluster.running(ns, "web")
    ip = pod["status"]["podIP"]
    assert ip.startswith("10.42.")
    assert (
        cluster.wait(lambda: _try(lambda: _http(ip, 8080, "/hostname")), what="httpd") == b"web\n"
    )
    cluster.apply(
        ns,
        pod_manifest(
            "client",
            cluster.image,
            ["wget", "-O-", f"http://{ip}:8080/hostname"],
            restartPolicy="Never",
        ),
    )
    cluster.wait(
        lambda: cluster.pod(ns, "client")["status"].get("phase") == "Succeeded", what="client pod"
    )
    # busybox wget reports progress on stderr; the body is its own line.
    assert "web" in cluster.kubectl("-n", ns, "logs", "client").stdout.splitlines()
    wide = cluster.kubectl("-n", ns, "get", "pod", "web", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert wide[1].split()[5] == ip


def _try(fn: Any) -> Any:
    try:
        return fn()
    except OSError:
        return None


def test_crash_loop_backs_off_and_reports(cluster: Cluster, ns: str) -> None:
    cluster.apply(ns, pod_manifest("crash", cluster.image, ["sh", "-c", "echo boom; exit 3"]))

    def looping() -> dict[str, Any] | None:
        cs = (cluster.pod(ns, "crash")["status"].get("containerStatuses") or [{}])[0]
        waiting = (cs.get("state") or {}).get("waiting") or {}
        return (
            cs
            if waiting.get("reason") == "CrashLoopBackOff" and cs.get("restartCount", 0) >= 2
            else None
        )

    cs = cluster.wait(looping, timeout=90, what="CrashLoopBackOff")
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert "back-off 20s restarting failed container=main" in cs["state"]["waiting"]["message"]
    table = cluster.kubectl("-n", ns, "get", "pod", "crash").stdout
    assert "CrashLoopBackOff" in table
    assert cluster.kubectl("-n", ns, "logs", "crash", "--previous").stdout.strip() == "boom"


def test_memory_limit_is_enforced_with_oomkilled(cluster: Cluster, ns: str) -> None:
    cluster.apply(
        ns,
        pod_manifest(
            "hog",
            cluster.image,
            ["sh", "-c", 'x="$(head -c 200m /dev/zero | tr "\\0" a)"; echo survived'],
            restartPolicy="Never",
            container={"resources": {"limits": {"memory": "32Mi", "cpu": "500m"}}},
        ),
    )

    def killed() -> dict[str, Any] | None:
        cs = (cluster.pod(ns, "hog")["status"].get("containerStatuses") or [{}])[0]
        term = (cs.get("state") or {}).get("terminated")
        return term if term else None

    term = cluster.wait(killed, timeout=60, what="OOM kill")
    assert term["reason"] == "OOMKilled", term
    assert term["exitCode"] == 137


def test_cpu_limit_throttles(cluster: Cluster, ns: str) -> None:
    cluster.apply(
        ns,
        pod_manifest(
            "spin",
            cluster.image,
            ["sh", "-c", "while true; do :; done"],
            container={"resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}},
        ),
    )
    uid = cluster.running(ns, "spin")["metadata"]["uid"]
    # Guaranteed pods sit directly under kubepods, the others under their QoS class.
    quotas = glob.glob(
        f"/sys/fs/cgroup/cpu/pilothouse/kubepods/pod{uid}/*/cpu.cfs_quota_us"
    ) + glob.glob(f"/sys/fs/cgroup/cpu/pilothouse/kubepods/*/pod{uid}/*/cpu.cfs_quota_us")
    assert quotas and {Path(q).read_text().strip() for q in quotas} == {"10000"}
    stat = Path(quotas[0]).with_name("cpu.stat")

    def throttled() -> int:
        fields = dict(line.split() for line in stat.read_text().splitlines())
        return int(fields["nr_throttled"])

    first = throttled()
    assert cluster.wait(lambda: throttled() > first + 5, timeout=10, what="throttling")


def test_logs_follow_streams(cluster: Cluster, ns: str) -> None:
    cluster.apply(
        ns,
        pod_manifest(
            "ticker",
            cluster.image,
            ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"],
        ),
    )
    cluster.running(ns, "ticker")
    env = {**os.environ, "KUBECONFIG": str(cluster.srv.kubeconfig)}
    proc = subprocess.Popen(
        ["kubectl", "-n", ns, "logs", "-f", "ticker"], stdout=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + 20
        while seen.count(b"tick") < 10 and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                seen += os.read(proc.stdout.fileno(), 4096)
        numbers = [
            int(line.split()[1]) for line in seen.decode().splitlines() if line.startswith("tick")
        ]
        assert len(numbers) >= 10 and numbers == sorted(numbers)
    finally:
        proc.kill()
        proc.wait()
    tail = cluster.kubectl(
        "-n", ns, "logs", "ticker", "--tail=2", "--timestamps"
    ).stdout.splitlines()
    assert len(tail) == 2 and all(line[:4].isdigit() and "tick" in line for line in tail)


def test_delete_stops_within_the_grace_period(cluster: Cluster, ns: str) -> None:
    polite = ["sh", "-c", "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"]
    stubborn = ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]
    cluster.apply(
        ns, pod_manifest("polite", cluster.image, polite, terminationGracePeriodSeconds=20)
    )
    cluster.apply(
        ns, pod_manifest("stubborn", cluster.image, stubborn, terminationGracePeriodSeconds=3)
    )
    cluster.running(ns, "polite")
    cluster.running(ns, "stubborn")
    started = time.monotonic()
    cluster.kubectl("-n", ns, "delete", "pod", "polite")
    assert time.monotonic() - started < 10  # SIGTERM honoured: far inside its 20 s
    started = time.monotonic()
    cluster.kubectl("-n", ns, "delete", "pod", "stubborn")
    took = time.monotonic() - started
    assert 2.5 < took < 15, took  # SIGKILL after its 3 s grace period


def test_deployment_from_kubectl_runs_real_ready_containers(cluster: Cluster, ns: str) -> None:
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,  # httpd as PID 1 ignores SIGTERM
                    "containers": [
                        {
                            "name": "web",
                            "image": cluster.image,
                            "command": ["httpd", "-f", "-p", "80", "-h", "/etc"],
                            "readinessProbe": {
                                "httpGet": {"path": "/hostname", "port": 80},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }
    cluster.apply(ns, manifest)
    cluster.kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s", timeout=100)
    pods = cluster.json("-n", ns, "get", "pods", "-l", "app=web")["items"]
    assert len(pods) == 3
    for p in pods:
        assert all(c["type"] != "Ready" or c["status"] == "True" for c in p["status"]["conditions"])
        assert (
            _http(p["status"]["podIP"], 80, "/hostname").strip() == p["metadata"]["name"].encode()
        )
    # Self-healing: a killed container comes back.
    victim = pods[0]
    cluster.kubectl("-n", ns, "delete", "pod", victim["metadata"]["name"], "--wait=false")
    cluster.wait(
        lambda: (
            len(
                [
                    p
                    for p in cluster.json("-n", ns, "get", "pods", "-l", "app=web")["items"]
                    if p["status"].get("phase") == "Running"
                    and not p["metadata"].get("deletionTimestamp")
                ]
            )
            == 3
        ),
        timeout=60,
        what="replacement pod",
    )


def test_agent_restart_keeps_containers_and_logs(cluster: Cluster, ns: str) -> None:
    for i in range(10):
        cluster.apply(
            ns,
            pod_manifest(
                f"keep-{i}",
                cluster.image,
                ["sh", "-c", "i=0; while true; do echo n $i; i=$((i+1)); sleep 0.5; done"],
            ),
        )
    pods = {f"keep-{i}": cluster.running(ns, f"keep-{i}", timeout=90) for i in range(10)}
    time.sleep(1.5)
    before = {name: cluster.kubectl("-n", ns, "logs", name).stdout for name in pods}
    cluster.srv.kill()  # the agent (with the whole server) dies without warning
    time.sleep(2)  # containers keep logging meanwhile
    cluster.srv.start(timeout=60)
    for name, old in pods.items():
        new = cluster.running(ns, name, timeout=60)
        assert new["metadata"]["uid"] == old["metadata"]["uid"]
        cs = new["status"]["containerStatuses"][0]
        assert (
            cs["restartCount"] == 0
            and cs["containerID"] == old["status"]["containerStatuses"][0]["containerID"]
        )
        # The agent comes back a moment after the API server does.
        logs = cluster.wait(
            lambda n=name: cluster.kubectl("-n", ns, "logs", n, check=False).stdout,
            timeout=30,
            what="logs after the restart",
        )
        assert logs.startswith(before[name]), "log lines from before the restart were lost"
        counts = [int(line.split()[1]) for line in logs.splitlines()]
        assert counts == list(range(len(counts))), "a log line is missing"
        assert (
            len(counts) > len(before[name].splitlines()) + 2
        )  # kept logging while the agent was down
