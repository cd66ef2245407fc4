"""``pilothouse controller-manager`` as its own process, over HTTPS with a kubeconfig."""

from __future__ import annotations

import asyncio
import signal
import sys

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import rest
from pilothouse.testing import eventually

RS = resources.DEFAULT.by_path("apps", "v1", "replicasets")
PODS = resources.DEFAULT.by_path("", "v1", "pods")
assert RS and PODS


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pilothouse.cli.main", "controller-manager", *args]


async def test_controller_manager_process_runs_the_loops_and_stops_on_sigterm(
    client: rest.Client, ns: str, api_server: testing.ServerThread
) -> None:
    proc = await asyncio.create_subprocess_exec(
        *_cli("--kubeconfig", str(api_server.kubeconfig), "--controllers", "replicaset"),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        labels = {"app": "cli"}
        await client.create(
            RS,
            {
                "metadata": {"name": "cli"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
                    },
                },
            },
            ns,
        )

        async def two_pods() -> bool:
            return len((await client.list(PODS, ns, label_selector="app=cli"))["items"]) == 2

        await eventually(two_pods, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, stderr.decode()[-2000:]
