"""Fault tests with real containers; each test names the guarantee it checks.

* The node agent killed (kill -9 of `pilothouse server`, agent and all) and started
  again with 50 containers running: none is killed or restarted, no log line is lost
  (each container counts, and its log has every number), and the exit codes of
  containers that ended while the agent was away are reported.
* The API server restarted under a separately running agent (`pilothouse agent`): the
  pods are unaffected (same containers, no restart) and the node stays Ready.

Real cluster: crun under conmon, the CNI bridge, busybox from the local registry, the
real kubectl. Needs root; CI runs as root.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pilothouse import testing

from .conftest import Leftovers
from .realcluster import Cluster, pod_manifest

pytestmark = [
    pytest.mark.root,
    pytest.mark.containers,
    pytest.mark.netns,
    pytest.mark.kubectl,
    pytest.mark.slow,
]

NS = "e2e-faults"
COUNTING = ["sh", "-c", "i=0; while true; do echo $i; i=$((i+1)); sleep 0.2; done"]


def _start(data: Path, image: str, port: int | None = None, **kw: Any) -> Cluster:
    srv = testing.ServerProcess(data, port=port, **kw).start(timeout=60)
    c = Cluster(srv, image)
    return c


def _node_ready(c: Cluster, node: str = "") -> bool:
    nodes = c.json("get", "nodes")["items"]
    for n in nodes:
        if node and n["metadata"]["name"] != node:
            continue
        conds = {x["type"]: x["status"] for x in n["status"].get("conditions") or []}
        if conds.get("Ready") == "True":
            return True
    return False


def _containers(c: Cluster) -> dict[str, tuple[str, int, str]]:
    """pod → (containerID, restartCount, startedAt) of its one container."""
    out = {}
    for pod in c.json("-n", NS, "get", "pods")["items"]:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        if statuses:
            st = statuses[0]
            running = (st.get("state") or {}).get("running") or {}
            out[pod["metadata"]["name"]] = (
                st.get("containerID", ""),
                int(st.get("restartCount", 0)),
                running.get("startedAt", ""),
            )
    return out


def _clean_up(c: Cluster, data: Path, leftovers: Leftovers, sandboxes: set[str]) -> None:
    uids = {
        p["metadata"]["uid"]
        for p in json.loads(
            c.kubectl("-n", NS, "get", "pods", "-o", "json", check=False).stdout or "{}"
        ).get("items", [])
    }
    c.kubectl("delete", "namespace", NS, "--wait=false", check=False)
    try:
        c.wait(
            lambda: not c.kubectl("-n", NS, "get", "pods", "--no-headers", check=False).stdout,
            timeout=120,
            what="the test pods to go",
        )
    finally:
        c.srv.stop()
    left = [
        item
        for item in leftovers(data, uids)
        if not item.startswith("pilothouse-") or item.removeprefix("pilothouse-") in sandboxes
    ]
    left = [i for i in left if not i.startswith("veth")]  # other engineers' pods share ph0
    assert not left, f"left behind on the machine: {left}"


def test_the_agent_killed_and_restarted_under_50_containers_loses_nothing(
    tmp_path: Path, local_registry: Any, machine_leftovers: Leftovers
) -> None:
    data = tmp_path / "data"
    c = _start(data, local_registry.busybox, agent=True)
    sandboxes: set[str] = set()
    try:
        c.wait(lambda: _node_ready(c), timeout=60, what="the node to be Ready")
        c.kubectl("create", "namespace", NS)
        c.kubectl(
            "-n", NS, "create", "deployment", "count", "--image", c.image, "--replicas=50",
            "--", *COUNTING,
        )  # fmt: skip
        # Five that will end while the agent is away, each with its own exit code.
        for code in range(3, 8):
            pod = pod_manifest(f"ends-{code}", c.image, ["sh", "-c", f"sleep 12; exit {code}"])
            pod["spec"]["restartPolicy"] = "Never"
            c.apply(NS, pod)

        def all_running() -> bool:
            pods = c.json("-n", NS, "get", "pods")["items"]
            return len(pods) == 55 and all(
                (p.get("status") or {}).get("phase") == "Running" for p in pods
            )

        c.wait(all_running, timeout=180, what="55 pods running")
        before = _containers(c)
        sandboxes = {p.name for p in (data / "agent" / "runtime" / "sandboxes").glob("*")}

        c.srv.kill()  # the whole server, agent and all: a crash
        time.sleep(14)  # the five end meanwhile, the others keep counting
        c = _start(data, c.image, port=c.srv.port, agent=True)
        c.wait(lambda: _node_ready(c), timeout=60, what="the node to be Ready again")

        def exits_reported() -> dict[str, int] | None:
            codes = {}
            for p in c.json("-n", NS, "get", "pods")["items"]:
                name = p["metadata"]["name"]
                if name.startswith("ends-"):
                    st = (p.get("status") or {}).get("containerStatuses") or [{}]
                    term = (st[0].get("state") or {}).get("terminated")
                    if term is None:
                        return None
                    codes[name] = term["exitCode"]
            return codes

        codes = c.wait(exits_reported, timeout=60, what="the exit codes to be reported")
        assert codes == {f"ends-{n}": n for n in range(3, 8)}
        after = _containers(c)
        counting = {n: v for n, v in before.items() if n.startswith("count-")}
        assert len(counting) == 50
        for name, was in counting.items():
            assert after.get(name) == was, (name, was, after.get(name))  # same container
        # Every line each container wrote, the agent away or not: 0, 1, 2, … without a gap.
        for name in counting:
            lines = c.kubectl("-n", NS, "logs", name).stdout.split()
            assert lines == [str(i) for i in range(len(lines))], name
            assert len(lines) > 14 / 0.2 * 0.8  # it kept counting while the agent was away
    finally:
        if c.srv.proc is not None and c.srv.proc.poll() is None:
            _clean_up(c, data, machine_leftovers, sandboxes)


def test_the_api_server_restarted_under_a_running_agent_leaves_pods_and_node_alone(
    tmp_path: Path, local_registry: Any, machine_leftovers: Leftovers
) -> None:
    data = tmp_path / "server"
    c = _start(data, local_registry.busybox)  # no agent of its own
    agent_dir = tmp_path / "node"
    token = (data / "token").read_text().strip()
    log = (tmp_path / "agent.log").open("wb")
    agent = subprocess.Popen(
        [
            sys.executable, "-m", "pilothouse.cli.main", "agent",
            "--server", c.srv.url, "--token", token, "--data-dir", str(agent_dir),
            "--node-name", "steady", "--address", "127.0.0.1",
            "--config", str(testing.node_config_file(tmp_path)),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    sandboxes: set[str] = set()
    try:
        c.wait(lambda: _node_ready(c, "steady"), timeout=90, what="the agent's node Ready")
        c.kubectl("create", "namespace", NS)
        c.kubectl(
            "-n", NS, "create", "deployment", "count", "--image", c.image, "--replicas=3",
            "--", *COUNTING,
        )  # fmt: skip
        c.wait(
            lambda: len([p for p in _containers(c).values() if p[2]]) == 3,
            timeout=120,
            what="3 pods running",
        )
        before = _containers(c)
        sandboxes = {p.name for p in (agent_dir / "agent" / "runtime" / "sandboxes").glob("*")}

        c.srv.stop()  # SIGTERM: the API server goes away for a while …
        assert c.srv.proc is not None and c.srv.proc.returncode == 0
        time.sleep(5)
        assert agent.poll() is None, "the agent must ride out the API server's absence"
        c = _start(data, c.image, port=c.srv.port)  # … and comes back on the same port

        def still_ready() -> bool:
            node = c.json("get", "node", "steady")
            conds = {x["type"]: x for x in node["status"]["conditions"]}
            return conds["Ready"]["status"] == "True"

        c.wait(still_ready, timeout=30, what="the node Ready")
        time.sleep(3)  # heartbeats and pod status have gone through again
        node = c.json("get", "node", "steady")
        ready = {x["type"]: x for x in node["status"]["conditions"]}["Ready"]
        assert ready["status"] == "True"
        assert _containers(c) == before  # same containers, never restarted
        pods = c.json("-n", NS, "get", "pods")["items"]
        assert all(p["status"]["phase"] == "Running" for p in pods)
        assert "Traceback" not in (tmp_path / "agent.log").read_text()
    finally:
        try:
            if c.srv.proc is not None and c.srv.proc.poll() is None:
                c.kubectl("delete", "namespace", NS, "--wait=false", check=False)
                c.wait(
                    lambda: (
                        not c.kubectl("-n", NS, "get", "pods", "--no-headers", check=False).stdout
                    ),
                    timeout=120,
                    what="the test pods to go",
                )
        finally:
            agent.terminate()
            agent.wait(20)
            log.close()
            c.srv.stop()
        left = [
            item
            for item in machine_leftovers(agent_dir, [])
            if not item.startswith(("pilothouse-", "veth"))
            or item.removeprefix("pilothouse-") in sandboxes
        ]
        assert not left, f"left behind on the machine: {left}"
