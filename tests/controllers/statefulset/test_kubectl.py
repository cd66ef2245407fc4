"""The real kubectl 1.32 driving StatefulSets on hollow nodes: pods made in order, scaled
down from the highest ordinal and back up onto the same claims, rolled 2 → 1 → 0, a
partition that stops the update, rollout status/history/undo/restart, and bad input.

The API server (with the StatefulSet controller and the garbage collector) runs in a
thread of its own for this module; hollow nodes and a watcher run on the test's loop.
Pods are pinned to a hollow node in the template: hollow nodes run no volumes, and the
ordering is the controller's, not the scheduler's.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.node import hollow

pytestmark = pytest.mark.kubectl

PODS = resources.DEFAULT.by_path("", "v1", "pods")
assert PODS is not None


def manifest(node: str, *, replicas: int = 3, service: str = "web", extra: str = "") -> str:
    service_line = f"  serviceName: {service}\n" if service else ""
    return f"""
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
{service_line}  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      nodeName: {node}
      containers:
      - name: nginx
        image: nginx:1.0
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
{extra}"""


@pytest.fixture(scope="module")
def server() -> Iterator[testing.ServerThread]:
    with tempfile.TemporaryDirectory(prefix="pilothouse-sts-") as tmp:
        srv = testing.ServerThread(Path(tmp) / "data", controllers=True)
        srv.cluster.options.enabled_controllers = ["statefulset", "garbagecollector"]
        srv.cluster.options.scheduler = False
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()


@pytest.fixture
async def client(server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(server.server.socket_path))
    yield c
    await c.close()


@pytest.fixture
async def node(client: rest.Client) -> AsyncIterator[str]:
    sim = hollow.HollowCluster(client, count=1, name_prefix="sts-", heartbeat=5)
    await sim.start()
    try:
        yield next(iter(sim.nodes))
    finally:
        await sim.stop(unregister=True)


@dataclass
class Journal:
    """The namespace's pod events in order, as (event, pod, image, ready) lines."""

    client: rest.Client
    ns: str
    lines: list[tuple[str, str, str, bool]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def _run(self, rv: str) -> None:
        async for event in self.client.watch(PODS, self.ns, resource_version=rv):  # type: ignore[arg-type]
            if event["type"] in ("BOOKMARK", "ERROR"):
                continue
            obj = event["object"]
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (obj.get("status") or {}).get("conditions") or []
            )
            kind = "DELETING" if obj["metadata"].get("deletionTimestamp") else event["type"]
            image = obj["spec"]["containers"][0]["image"]
            self.lines.append((kind, obj["metadata"]["name"], image, ready))

    async def start(self) -> None:
        listing = await self.client.list(PODS, self.ns)  # type: ignore[arg-type]
        self.task = asyncio.create_task(self._run(listing["metadata"]["resourceVersion"]))

    async def stop(self) -> None:
        await asyncio.sleep(0.3)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    def first(self, kind: str, name: str, **match: Any) -> int:
        for i, (k, n, image, ready) in enumerate(self.lines):
            if (
                k == kind
                and n == name
                and all(
                    {"image": image, "ready": ready}[key] == value for key, value in match.items()
                )
            ):
                return i
        raise AssertionError(f"no {kind} of {name} {match} in {self.lines}")

    def added(self) -> list[str]:
        return [n for k, n, _i, _r in self.lines if k == "ADDED"]

    def deleted(self) -> list[str]:
        out: list[str] = []
        for k, n, _i, _r in self.lines:
            if k == "DELETING" and (not out or out[-1] != n):
                out.append(n)
        return out


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


async def test_statefulset_on_a_hollow_node(
    server: testing.ServerThread, client: rest.Client, node: str
) -> None:
    ns = "sts-kubectl"

    async def k(*args: str, stdin: str | None = None, check: bool = True) -> str:
        code, out, err = await testing.run_kubectl(
            server.kubeconfig, "-n", ns, *args, stdin=stdin, check=check
        )
        return out if code == 0 else err

    async def images() -> dict[str, str]:
        out = await k(
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.spec.containers[0].image} {end}",
        )
        return dict(item.split("=") for item in out.split())

    await k("create", "namespace", ns)
    journal = Journal(client, ns)
    await journal.start()
    assert (
        await k("apply", "-f", "-", stdin=manifest(node))
    ).strip() == "statefulset.apps/web created"
    out = await k("rollout", "status", "sts/web", "--timeout=60s")
    assert "partitioned roll out complete: 3 new pods have been updated..." in out
    await journal.stop()
    # In order: each pod is made only once the one before it is Running and Ready.
    assert journal.added() == ["web-0", "web-1", "web-2"]
    assert journal.first("MODIFIED", "web-0", ready=True) < journal.first("ADDED", "web-1")
    assert journal.first("MODIFIED", "web-1", ready=True) < journal.first("ADDED", "web-2")
    table = rows(await k("get", "sts", "web", "-o", "wide"))
    assert table[0] == ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"]
    assert table[1][1] == "3/3" and table[1][3:] == ["nginx", "nginx:1.0"]
    hostnames = await k(
        "get", "pods", "-o", "jsonpath={range .items[*]}{.spec.hostname}.{.spec.subdomain} {end}"
    )
    assert hostnames.split() == ["web-0.web", "web-1.web", "web-2.web"]
    pvcs = rows(await k("get", "pvc", "-o", "custom-columns=NAME:.metadata.name,UID:.metadata.uid"))
    claims = {name: uid for name, uid in pvcs[1:]}
    assert sorted(claims) == ["data-web-0", "data-web-1", "data-web-2"]

    # Scale down from the highest ordinal; the claims stay (whenScaled: Retain).
    journal = Journal(client, ns)
    await journal.start()
    await k("scale", "sts/web", "--replicas=1")

    async def one_pod() -> bool:
        return list(await images()) == ["web-0"]

    await testing.eventually(one_pod, timeout=30)
    await k("scale", "sts/web", "--replicas=3")
    await k("rollout", "status", "sts/web", "--timeout=60s")
    await journal.stop()
    assert journal.deleted() == ["web-2", "web-1"]
    assert journal.added() == ["web-1", "web-2"]
    pvcs = rows(await k("get", "pvc", "-o", "custom-columns=NAME:.metadata.name,UID:.metadata.uid"))
    assert {name: uid for name, uid in pvcs[1:]} == claims  # the same claims, not new ones

    # A rolling update goes 2 → 1 → 0, each pod back and ready before the next goes.
    journal = Journal(client, ns)
    await journal.start()
    await k("set", "image", "sts/web", "nginx=nginx:2.0")
    await k("rollout", "status", "sts/web", "--timeout=60s")
    await journal.stop()
    assert journal.deleted() == ["web-2", "web-1", "web-0"]
    assert journal.first("MODIFIED", "web-2", image="nginx:2.0", ready=True) < journal.first(
        "DELETING", "web-1"
    )
    assert journal.first("MODIFIED", "web-1", image="nginx:2.0", ready=True) < journal.first(
        "DELETING", "web-0"
    )
    assert set((await images()).values()) == {"nginx:2.0"}

    # partition: 2 updates web-2 only.
    await k(
        "patch", "sts/web", "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}'
    )
    await k("set", "image", "sts/web", "nginx=nginx:3.0")
    out = await k("rollout", "status", "sts/web", "--timeout=60s")
    assert "partitioned roll out complete: 1 new pods have been updated..." in out
    await asyncio.sleep(0.5)
    assert await images() == {"web-0": "nginx:2.0", "web-1": "nginx:2.0", "web-2": "nginx:3.0"}
    status = await k(
        "get", "sts", "web", "-o", "jsonpath={.status.updatedReplicas}/{.status.currentReplicas}"
    )
    assert status == "1/2"
    await k(
        "patch", "sts/web", "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}'
    )
    await k("rollout", "status", "sts/web", "--timeout=60s")
    assert set((await images()).values()) == {"nginx:3.0"}

    # History, undo, restart.
    history = rows(await k("rollout", "history", "sts/web"))
    assert history[1:] == [
        ["REVISION", "CHANGE-CAUSE"],
        ["1", "<none>"],
        ["2", "<none>"],
        ["3", "<none>"],
    ]
    assert (await k("rollout", "undo", "sts/web")).strip() == "statefulset.apps/web rolled back"
    await k("rollout", "status", "sts/web", "--timeout=60s")
    assert set((await images()).values()) == {"nginx:2.0"}
    out = await k("rollout", "undo", "sts/web", "--to-revision=4")
    assert "skipped rollback (current template already matches revision 4)" in out
    assert (await k("rollout", "restart", "sts/web")).strip() == "statefulset.apps/web restarted"
    await k("rollout", "status", "sts/web", "--timeout=60s")
    assert [r[0] for r in rows(await k("rollout", "history", "sts/web"))[2:]] == [
        "1",
        "3",
        "4",
        "5",
    ]

    await asyncio.sleep(1.0)  # events are written in the background
    described = await k("describe", "sts", "web")
    assert re.search(r"^Replicas:\s+3 desired \| 3 total$", described, re.M)
    assert re.search(
        r"^Pods Status:\s+3 Running / 0 Waiting / 0 Succeeded / 0 Failed$", described, re.M
    )
    assert "create Claim data-web-0 Pod web-0 in StatefulSet web success" in described
    await k("delete", "sts", "web")


async def test_bad_input_as_upstream_answers_it(
    server: testing.ServerThread, client: rest.Client, node: str
) -> None:
    ns = "sts-bad"

    async def k(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        return await testing.run_kubectl(
            server.kubeconfig, "-n", ns, *args, stdin=stdin, check=False
        )

    await k("create", "namespace", ns)
    # No serviceName: accepted (optional, as in 1.32), served as "", pods get no subdomain.
    code, out, err = await k("create", "-f", "-", stdin=manifest(node, replicas=1, service=""))
    assert code == 0, err
    _, served, _ = await k("get", "sts", "web", "-o", "jsonpath={.spec.serviceName}|")
    assert served == "|"
    await k("rollout", "status", "sts/web", "--timeout=60s")
    _, out, _ = await k("get", "pod", "web-0", "-o", "jsonpath={.spec.hostname}/{.spec.subdomain}")
    assert out == "web-0/"

    # Fields that may not change.
    code, _, err = await k("patch", "sts/web", "-p", '{"spec":{"podManagementPolicy":"Parallel"}}')
    assert code == 1
    assert (
        'The StatefulSet "web" is invalid: spec: Forbidden: updates to statefulset spec for fields '
        "other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
        "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
    ) in err

    # A selector that does not match the template's labels.
    broken = manifest(node).replace("matchLabels: {app: web}", "matchLabels: {app: db}")
    code, _, err = await k("create", "-f", "-", stdin=broken.replace("name: web", "name: other", 1))
    assert code == 1
    assert (
        'The StatefulSet "other" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"web"}: `selector` does not match template `labels`'
    ) in err

    # A name that is not a DNS label (pod names are derived from it).
    code, _, err = await k(
        "create", "-f", "-", stdin=manifest(node).replace("name: web", "name: web.v1", 1)
    )
    assert code == 1 and 'The StatefulSet "web.v1" is invalid: metadata.name: Invalid value' in err
