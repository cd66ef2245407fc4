"""The real kubectl 1.32 driving Deployments: rollout status/history/undo/pause/
resume/restart, set image, scale, get and describe — with the controllers and a
hollow node running on the test's loop and kubectl in a subprocess."""

from __future__ import annotations

import asyncio
import re
import shutil
import types

import pytest

from pilothouse.client import rest
from pilothouse.node import hollow

pytestmark = pytest.mark.kubectl


async def run(kubectl: object, *args: str, timeout: float = 90) -> str:
    """Run kubectl without blocking the loop the controllers run on."""
    exe = shutil.which("kubectl")
    assert exe is not None
    proc = await asyncio.create_subprocess_exec(
        exe,
        *args,
        env=kubectl.env(),  # type: ignore[attr-defined]
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{out.decode()}\n{err.decode()}"
        )
    return out.decode()


def rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.strip().splitlines()]


async def test_kubectl_rollouts(
    client: rest.Client,
    ns: str,
    node: hollow.HollowCluster,
    node_name: str,
    kubectl: object,
    dh: types.ModuleType,
) -> None:
    async def k(*args: str) -> str:
        return await run(kubectl, "-n", ns, *args)

    async with dh.controllers(client), dh.binder(client, ns, node_name):
        out = await k("create", "deployment", "web", "--image=nginx:1.0", "--replicas=3")
        assert out.strip() == "deployment.apps/web created"
        out = await k("rollout", "status", "deployment/web", "--timeout=60s")
        assert 'deployment "web" successfully rolled out' in out

        table = rows(await k("get", "rs"))
        assert table[0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
        (first_rs,) = table[1:]
        assert re.fullmatch(r"web-[4-9bcdf]{6,10}", first_rs[0]) and first_rs[1:4] == [
            "3",
            "3",
            "3",
        ]
        pods = rows(await k("get", "pods"))
        assert pods[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        assert len(pods) == 4 and all(
            p[0].startswith(first_rs[0] + "-") and p[1:3] == ["1/1", "Running"] for p in pods[1:]
        )

        await k("set", "image", "deployment/web", "nginx=nginx:2.0")
        await k("annotate", "deployment/web", "kubernetes.io/change-cause=image 2.0")
        await k("rollout", "status", "deployment/web", "--timeout=60s")
        history = await k("rollout", "history", "deployment/web")
        assert rows(history)[1:] == [
            ["REVISION", "CHANGE-CAUSE"],
            ["1", "<none>"],
            ["2", "image", "2.0"],
        ]

        out = await k("rollout", "undo", "deployment/web")
        assert out.strip() == "deployment.apps/web rolled back"
        await k("rollout", "status", "deployment/web", "--timeout=60s")
        image = await k(
            "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"
        )
        assert image == "nginx:1.0"
        history = await k("rollout", "history", "deployment/web")
        assert rows(history)[2:] == [["2", "image", "2.0"], ["3", "<none>"]]
        table = rows(await k("get", "rs"))
        assert len(table) == 3 and first_rs[0] in [r[0] for r in table]  # the old set came back

        out = await k("rollout", "undo", "deployment/web", "--to-revision=2")
        assert out.strip() == "deployment.apps/web rolled back"
        await k("rollout", "status", "deployment/web", "--timeout=60s")
        image = await k(
            "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"
        )
        assert image == "nginx:2.0"

        await k("scale", "deployment/web", "--replicas=5")
        await k("rollout", "status", "deployment/web", "--timeout=60s")
        table = rows(await k("get", "deployment", "web"))
        assert table[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
        assert table[1][1:4] == ["5/5", "5", "5"]

        await k("rollout", "pause", "deployment/web")
        await k("set", "image", "deployment/web", "nginx=nginx:3.0")
        await asyncio.sleep(0.5)
        assert len(rows(await k("get", "rs"))) == 3, "no new ReplicaSet while paused"
        reason = await k(
            "get",
            "deployment",
            "web",
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Progressing")].reason}',
        )
        assert reason == "DeploymentPaused"
        await k("rollout", "resume", "deployment/web")
        await k("rollout", "status", "deployment/web", "--timeout=60s")
        assert len(rows(await k("get", "rs"))) == 4

        out = await k("rollout", "restart", "deployment/web")
        assert out.strip() == "deployment.apps/web restarted"
        await k("rollout", "status", "deployment/web", "--timeout=60s")
        assert len(rows(await k("get", "rs"))) == 5

        await asyncio.sleep(1.0)  # events are written in the background
        described = await k("describe", "deployment", "web")
        assert re.search(
            r"^Replicas:\s+5 desired \| 5 updated \| 5 total \| 5 available \| 0 unavailable$",
            described,
            re.M,
        )
        assert re.search(r"^StrategyType:\s+RollingUpdate$", described, re.M)
        assert re.search(
            r"^RollingUpdateStrategy:\s+25% max unavailable, 25% max surge$", described, re.M
        )
        assert re.search(r"^\s+Available\s+True\s+MinimumReplicasAvailable$", described, re.M)
        assert re.search(r"^\s+Progressing\s+True\s+NewReplicaSetAvailable$", described, re.M)
        new_rs = re.search(
            r"^NewReplicaSet:\s+(web-\S+) \(5/5 replicas created\)$", described, re.M
        )
        assert new_rs, described
        assert re.search(r"^OldReplicaSets:\s+web-\S+ \(0/0 replicas created\)", described, re.M)
        assert re.search(
            r"^\s+Normal\s+ScalingReplicaSet\s+\S+\s+deployment-controller\s+Scaled up replica set "
            rf"{first_rs[0]} from 0 to 3$",
            described,
            re.M,
        ), described
        # More than ten similar events in ten minutes are folded together, as upstream's recorder does.
        assert "(combined from similar events): Scaled" in described
        assert re.search(r"deployment.kubernetes.io/revision: 6", described)
