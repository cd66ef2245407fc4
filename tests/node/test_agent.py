"""The node agent's control logic against a real API server and the fake runtime.

These need no root: the runtime is pilothouse's in-memory fake, so the tests
are about what the agent decides — pods started, restarted with back-off,
finished, stopped, re-adopted, reported, and their logs served.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.client import config, rest
from pilothouse.controllers import nodeipam
from pilothouse.node import agent as agent_module
from pilothouse.node.backoff import Backoff
from pilothouse.node.runtime import fake
from pilothouse.testing import eventually, running_controllers

PODS = resources.DEFAULT.by_path("", "v1", "pods")
NS = resources.DEFAULT.by_path("", "v1", "namespaces")
CM = resources.DEFAULT.by_path("", "v1", "configmaps")
SVC = resources.DEFAULT.by_path("", "v1", "services")
NODES = resources.DEFAULT.by_path("", "v1", "nodes")
assert PODS and NS and CM and NODES


@pytest.fixture
async def client(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(api_server.server.socket_path))
    yield c
    await c.close()


@pytest.fixture
async def ns(client: rest.Client) -> str:
    name = "a-" + uuid.uuid4().hex[:8]
    await client.create(NS, {"metadata": {"name": name}})
    return name


class Harness:
    def __init__(self, client: rest.Client, api_server: testing.ServerThread, tmp: Path) -> None:
        self.client = client
        self.api_server = api_server
        self.tmp = tmp
        self.name = "agent-" + uuid.uuid4().hex[:6]
        self.runtime = fake.FakeRuntime(
            fake.FakeImageService([fake.FakeImageService.make("busybox:1.36")])
        )
        self.agent: agent_module.Agent | None = None

    async def start(self) -> agent_module.Agent:
        self.agent = testing.node_agent(
            self.api_server, self.client, name=self.name, data_dir=self.tmp, runtime=self.runtime
        )
        await self.agent.start()
        assert self.agent.syncer is not None
        self.agent.syncer.restart_backoff = Backoff(initial=0.3, maximum=2.0)
        return self.agent

    async def stop(self) -> None:
        if self.agent is not None:
            await self.agent.stop()
            self.agent = None

    def pod(self, name: str, **spec: Any) -> dict[str, Any]:
        container = {"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}
        container.update(spec.pop("container", {}))
        return {
            "metadata": {"name": name},
            "spec": {"nodeName": self.name, "containers": [container], **spec},
        }


@pytest.fixture
async def harness(
    client: rest.Client, api_server: testing.ServerThread, tmp_path: Path
) -> AsyncIterator[Harness]:
    h = Harness(client, api_server, tmp_path)
    async with running_controllers(client, {"nodeipam": nodeipam.NodeIPAMController}):
        await h.start()
        yield h
        await h.stop()
    await client.delete(NODES, h.name)


async def _status(client: rest.Client, ns: str, name: str) -> dict[str, Any]:
    return (await client.get(PODS, name, ns)).get("status") or {}


async def test_node_is_registered_with_capacity_and_a_pod_cidr(
    harness: Harness, client: rest.Client
) -> None:
    node = await client.get(NODES, harness.name)
    assert node["spec"]["podCIDR"].startswith("10.42.")
    cap = node["status"]["capacity"]
    assert int(cap["pods"]) == 110 and int(cap["cpu"]) >= 1 and cap["memory"].endswith("Ki")
    conds = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conds["Ready"] == "True" and conds["MemoryPressure"] == "False"
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == harness.agent.port  # type: ignore[union-attr]
    lease = await client.get(
        resources.DEFAULT.by_path("coordination.k8s.io", "v1", "leases"),  # type: ignore[arg-type]
        harness.name,
        "kube-node-lease",
    )
    assert lease["spec"]["holderIdentity"] == harness.name


async def test_pod_runs_and_reports_status(harness: Harness, client: rest.Client, ns: str) -> None:
    await client.create(
        PODS,
        harness.pod(
            "web",
            container={
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "GREETING", "value": "hi $(POD_NAME)"},
                ]
            },
        ),
        ns,
    )

    async def running() -> dict[str, Any] | None:
        st = await _status(client, ns, "web")
        return st if st.get("phase") == "Running" and st.get("podIP") else None

    st = await eventually(running)
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
    } | ({"PodScheduled": conds["PodScheduled"]} if "PodScheduled" in conds else {})
    cs = st["containerStatuses"][0]
    assert cs["ready"] is True and "running" in cs["state"] and cs["restartCount"] == 0
    config_ = harness.runtime.containers[harness.runtime.find("main").id].config
    assert dict(config_.env)["GREETING"] == "hi web"
    assert config_.command == ("sleep", "3600")


async def test_crashing_container_restarts_with_backoff(
    harness: Harness, client: rest.Client, ns: str
) -> None:
    await client.create(PODS, harness.pod("crash"), ns)
    await eventually(lambda: _phase(client, ns, "crash", "Running"))
    sandbox = harness.runtime.find("main").sandbox_id
    for expected_restarts in (1, 2, 3):
        harness.runtime.exit(harness.runtime.find("main", sandbox_id=sandbox).id, 1)

        async def restarted(n: int = expected_restarts) -> bool:
            st = await _status(client, ns, "crash")
            cs = (st.get("containerStatuses") or [{}])[0]
            return cs.get("restartCount") == n and "running" in (cs.get("state") or {})

        await eventually(restarted)
    harness.runtime.exit(harness.runtime.find("main", sandbox_id=sandbox).id, 1)

    async def backing_off() -> dict[str, Any] | None:
        cs = ((await _status(client, ns, "crash")).get("containerStatuses") or [{}])[0]
        waiting = (cs.get("state") or {}).get("waiting") or {}
        return cs if waiting.get("reason") == "CrashLoopBackOff" else None

    cs = await eventually(backing_off)
    assert "restarting failed container=main" in cs["state"]["waiting"]["message"]
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    events_resource = resources.DEFAULT.by_path("", "v1", "events")
    assert events_resource is not None

    async def backoff_event() -> bool:
        return any(
            e["reason"] == "BackOff" for e in (await client.list(events_resource, ns))["items"]
        )

    await eventually(backoff_event)


async def _phase(client: rest.Client, ns: str, name: str, phase: str) -> bool:
    return (await _status(client, ns, name)).get("phase") == phase


async def test_restart_policy_never_finishes_the_pod(
    harness: Harness, client: rest.Client, ns: str
) -> None:
    await client.create(PODS, harness.pod("job-ok", restartPolicy="Never"), ns)
    await client.create(PODS, harness.pod("job-bad", restartPolicy="Never"), ns)
    await eventually(lambda: _phase(client, ns, "job-ok", "Running"))
    await eventually(lambda: _phase(client, ns, "job-bad", "Running"))
    ok = next(
        c
        for c in harness.runtime.containers.values()
        if c.status.state == "running"
        and harness.runtime.sandboxes[c.status.sandbox_id].name == "job-ok"
    )
    bad = next(
        c
        for c in harness.runtime.containers.values()
        if c.status.state == "running"
        and harness.runtime.sandboxes[c.status.sandbox_id].name == "job-bad"
    )
    harness.runtime.exit(ok.status.id, 0)
    harness.runtime.exit(bad.status.id, 2)
    await eventually(lambda: _phase(client, ns, "job-ok", "Succeeded"))
    await eventually(lambda: _phase(client, ns, "job-bad", "Failed"))
    term = (await _status(client, ns, "job-bad"))["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 2 and term["reason"] == "Error"


async def test_deleting_a_pod_stops_it_and_confirms(
    harness: Harness, client: rest.Client, ns: str
) -> None:
    await client.create(PODS, harness.pod("doomed"), ns)
    await eventually(lambda: _phase(client, ns, "doomed", "Running"))
    await client.delete(PODS, "doomed", ns)

    async def gone() -> bool:
        try:
            await client.get(PODS, "doomed", ns)
        except errors.StatusError as exc:
            return exc.code == 404
        return False

    await eventually(gone)
    assert harness.runtime.calls_of("stop_container")
    assert not [s for s in harness.runtime.sandboxes.values() if s.name == "doomed"]


async def test_missing_configmap_is_a_config_error_until_it_exists(
    harness: Harness, client: rest.Client, ns: str
) -> None:
    await client.create(
        PODS,
        harness.pod("cfg", container={"envFrom": [{"configMapRef": {"name": "settings"}}]}),
        ns,
    )

    async def config_error() -> bool:
        cs = ((await _status(client, ns, "cfg")).get("containerStatuses") or [{}])[0]
        return ((cs.get("state") or {}).get("waiting") or {}).get(
            "reason"
        ) == "CreateContainerConfigError"

    await eventually(config_error)
    await client.create(CM, {"metadata": {"name": "settings"}, "data": {"MODE": "fast"}}, ns)
    await eventually(lambda: _phase(client, ns, "cfg", "Running"), timeout=20)
    env = dict(harness.runtime.containers[harness.runtime.find("main").id].config.env)
    assert env["MODE"] == "fast"


async def test_containers_get_service_variables_from_the_agents_service_watch(
    harness: Harness, client: rest.Client, ns: str
) -> None:
    svc = await client.create(
        SVC,
        {
            "metadata": {"name": "backend-api"},
            "spec": {
                "selector": {"app": "backend"},
                "ports": [{"name": "http", "port": 8080, "targetPort": 80}],
            },
        },
        ns,
    )
    ip = svc["spec"]["clusterIP"]
    agent = harness.agent
    assert agent is not None

    async def watched() -> bool:
        return agent.services.indexer.get_by(ns, "backend-api") is not None

    await eventually(watched)
    await client.create(PODS, harness.pod("linked"), ns)
    await client.create(
        PODS, harness.pod("unlinked", container={"name": "other"}, enableServiceLinks=False), ns
    )
    await eventually(lambda: _phase(client, ns, "linked", "Running"), timeout=20)
    await eventually(lambda: _phase(client, ns, "unlinked", "Running"), timeout=20)
    env = dict(harness.runtime.containers[harness.runtime.find("main").id].config.env)
    assert env["BACKEND_API_SERVICE_HOST"] == ip
    assert env["BACKEND_API_SERVICE_PORT"] == "8080"
    assert env["BACKEND_API_SERVICE_PORT_HTTP"] == "8080"
    assert env["BACKEND_API_PORT"] == f"tcp://{ip}:8080"
    assert env["BACKEND_API_PORT_8080_TCP_ADDR"] == ip
    master = await client.get(SVC, "kubernetes", "default")
    assert env["KUBERNETES_SERVICE_HOST"] == master["spec"]["clusterIP"]
    # enableServiceLinks: false keeps only the API server's own variables.
    other = dict(harness.runtime.containers[harness.runtime.find("other").id].config.env)
    assert "BACKEND_API_SERVICE_HOST" not in other
    assert other["KUBERNETES_SERVICE_HOST"] == master["spec"]["clusterIP"]


async def test_logs_are_served_through_the_api(
    harness: Harness, client: rest.Client, ns: str
) -> None:
    await client.create(PODS, harness.pod("talker"), ns)
    await eventually(lambda: _phase(client, ns, "talker", "Running"))
    cid = next(
        c.status.id
        for c in harness.runtime.containers.values()
        if harness.runtime.sandboxes[c.status.sandbox_id].name == "talker"
    )
    for i in range(5):
        harness.runtime.write_log(cid, f"line {i}")
    text = await client.request(
        "GET", f"/api/v1/namespaces/{ns}/pods/talker/log", params={"tailLines": "2"}
    )
    assert text == "line 3\nline 4\n"
    stamped = await client.request(
        "GET",
        f"/api/v1/namespaces/{ns}/pods/talker/log",
        params={"timestamps": "true", "limitBytes": "40"},
    )
    assert len(stamped) == 40 and stamped[:4].isdigit()
    with pytest.raises(errors.StatusError) as exc:
        await client.request(
            "GET", f"/api/v1/namespaces/{ns}/pods/talker/log", params={"container": "nope"}
        )
    assert exc.value.code == 400


async def test_restarted_agent_adopts_running_pods(
    harness: Harness, client: rest.Client, ns: str
) -> None:
    await client.create(PODS, harness.pod("survivor"), ns)
    await eventually(lambda: _phase(client, ns, "survivor", "Running"))
    created_before = len(harness.runtime.calls_of("create_container"))
    await harness.stop()
    await harness.start()
    await eventually(lambda: _phase(client, ns, "survivor", "Running"))
    st = await _status(client, ns, "survivor")
    assert st["containerStatuses"][0]["restartCount"] == 0
    assert (
        len(harness.runtime.calls_of("create_container")) == created_before
    )  # nothing started again


async def test_liveness_probe_failure_restarts_and_readiness_flips(
    harness: Harness, client: rest.Client, ns: str
) -> None:
    verdict = {"live": 0, "ready": 0}

    def handler(_cid: str, cmd: list[str]) -> tuple[int, bytes, bytes]:
        return verdict[cmd[-1]], b"", b"probe says no" if verdict[cmd[-1]] else b""

    harness.runtime.exec_handler = handler
    probe = {"periodSeconds": 1, "failureThreshold": 1, "timeoutSeconds": 1}
    await client.create(
        PODS,
        harness.pod(
            "probed",
            container={
                "livenessProbe": {"exec": {"command": ["check", "live"]}, **probe},
                "readinessProbe": {"exec": {"command": ["check", "ready"]}, **probe},
            },
        ),
        ns,
    )

    async def ready(want: bool) -> bool:
        st = await _status(client, ns, "probed")
        conds = {c["type"]: c["status"] for c in st.get("conditions") or []}
        return conds.get("Ready") == ("True" if want else "False") and st.get("phase") == "Running"

    await eventually(lambda: ready(True))
    verdict["ready"] = 1
    await eventually(lambda: ready(False))
    verdict["ready"] = 0
    await eventually(lambda: ready(True))
    verdict["live"] = 1

    async def restarted() -> bool:
        cs = ((await _status(client, ns, "probed")).get("containerStatuses") or [{}])[0]
        return int(cs.get("restartCount") or 0) >= 1

    verdict_reset = asyncio.get_running_loop().call_later(2.5, lambda: verdict.update(live=0))
    try:
        await eventually(restarted, timeout=20)
    finally:
        verdict_reset.cancel()
    events_resource = resources.DEFAULT.by_path("", "v1", "events")
    assert events_resource is not None

    async def probe_events() -> bool:
        reasons = [
            (e["reason"], e["message"]) for e in (await client.list(events_resource, ns))["items"]
        ]
        return any(
            r == "Unhealthy" and m.startswith("Liveness probe failed") for r, m in reasons
        ) and any(
            r == "Killing" and "failed liveness probe, will be restarted" in m for r, m in reasons
        )

    await eventually(probe_events)


async def test_prestop_hook_runs_before_the_container_is_stopped(
    harness: Harness, client: rest.Client, ns: str
) -> None:
    hooks: list[list[str]] = []

    def handler(_cid: str, cmd: list[str]) -> tuple[int, bytes, bytes]:
        hooks.append(cmd)
        return 0, b"", b""

    harness.runtime.exec_handler = handler
    await client.create(
        PODS,
        harness.pod(
            "hooked",
            container={
                "lifecycle": {
                    "postStart": {"exec": {"command": ["echo", "started"]}},
                    "preStop": {"exec": {"command": ["echo", "stopping"]}},
                }
            },
        ),
        ns,
    )
    await eventually(lambda: _phase(client, ns, "hooked", "Running"))
    assert ["echo", "started"] in hooks
    await client.delete(PODS, "hooked", ns)

    async def gone() -> bool:
        try:
            await client.get(PODS, "hooked", ns)
        except errors.StatusError as exc:
            return exc.code == 404
        return False

    await eventually(gone)
    names = [c[0] for c in harness.runtime.calls]
    prestop = next(
        i
        for i, c in enumerate(harness.runtime.calls)
        if c[0] == "exec_sync" and "stopping" in str(c)
    )
    stop = names.index("stop_container")
    assert prestop < stop, "preStop must run before the container gets SIGTERM"


async def test_failing_poststart_hook_kills_the_container(
    harness: Harness, client: rest.Client, ns: str
) -> None:
    harness.runtime.exec_handler = lambda _cid, cmd: (1, b"", b"hook broke")
    await client.create(
        PODS,
        harness.pod(
            "badhook", container={"lifecycle": {"postStart": {"exec": {"command": ["false"]}}}}
        ),
        ns,
    )
    events_resource = resources.DEFAULT.by_path("", "v1", "events")
    assert events_resource is not None

    async def failed_hook() -> bool:
        items = (await client.list(events_resource, ns))["items"]
        return any(
            e["reason"] == "FailedPostStartHook" and "hook broke" in e["message"] for e in items
        )

    await eventually(failed_hook)
    assert harness.runtime.calls_of("stop_container")


async def test_graceful_node_shutdown_fails_the_pods_and_marks_the_node(
    harness: Harness, client: rest.Client, ns: str
) -> None:
    from pilothouse.node import nodeshutdown

    await client.create(PODS, harness.pod("web", terminationGracePeriodSeconds=600), ns)

    async def running() -> bool:
        return (await _status(client, ns, "web")).get("phase") == "Running"

    await eventually(running)
    agent = harness.agent
    assert agent is not None
    await agent.shut_down(grace_period=1)  # returns once the statuses are written
    st = await _status(client, ns, "web")
    assert (st["phase"], st["reason"], st["message"]) == (
        "Failed",
        "Terminated",
        "Pod was terminated in response to imminent node shutdown.",
    )
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["DisruptionTarget"]["status"] == "True"
    assert conds["DisruptionTarget"]["reason"] == "TerminationByKubelet"
    assert conds["Ready"]["status"] == "False"
    assert "terminated" in st["containerStatuses"][0]["state"]
    assert not [c for c in harness.runtime.containers.values() if c.status.state == "running"]
    node = await client.get(NODES, harness.name)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "KubeletNotReady",
        nodeshutdown.NODE_MESSAGE,
    )
