"""``kubectl describe pod`` shows why a pod is pending, as it does against Kubernetes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import pytest

from pilothouse import testing
from pilothouse.client import rest

from .conftest import create_pods, pod, running_scheduler, scheduled_condition, three_nodes


def kubectl(server: testing.ServerThread, *args: str) -> str:
    exe = shutil.which("kubectl")
    assert exe is not None
    proc = subprocess.run(
        [exe, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(server.kubeconfig)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.kubectl
async def test_describe_shows_condition_and_failed_scheduling(
    client: rest.Client, ns: str, unique: str, sched_server: testing.ServerThread
) -> None:
    name = f"sched-{unique}"
    taint = {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}
    async with (
        three_nodes(client, unique, taints={"small": [taint]}) as nodes,
        running_scheduler(client, name),
    ):
        # Half the large node is taken by a pod of the same priority: no victims there.
        await create_pods(
            client,
            ns,
            [pod("filler", name, cpu="4", nodeSelector={"kubernetes.io/hostname": nodes["large"]})],
        )
        await create_pods(client, ns, [pod("pending", name, cpu="6")])
        await scheduled_condition(client, ns, "pending")

        async def described() -> str | None:
            out = await asyncio.to_thread(
                kubectl, sched_server, "describe", "pod", "pending", "-n", ns
            )
            return out if "FailedScheduling" in out else None

        out = await testing.eventually(described, timeout=20)
    assert "PodScheduled   False" in out
    assert "Warning  FailedScheduling" in out
    assert name in out  # the From column names the scheduler
    assert (
        # Reasons sort as upstream's: by the "count reason" string.
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, 2 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
        "2 Preemption is not helpful for scheduling.."
    ) in " ".join(out.split())
