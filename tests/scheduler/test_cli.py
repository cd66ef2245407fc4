"""``pilothouse scheduler`` as its own process, over HTTPS with a kubeconfig."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from pilothouse import testing
from pilothouse.client import rest

from .conftest import create_pods, pod, three_nodes, wait_bound


def test_bad_config_file_is_reported(tmp_path: Path, sched_server: testing.ServerThread) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: kubescheduler.config.k8s.io/v1\npercentageOfNodesToScore: 300\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pilothouse.cli.main",
            "scheduler",
            "--kubeconfig",
            str(sched_server.kubeconfig),
            "--config",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "percentageOfNodesToScore: Invalid value" in proc.stderr


async def test_scheduler_process_binds_pods(
    client: rest.Client, ns: str, unique: str, tmp_path: Path, sched_server: testing.ServerThread
) -> None:
    name = f"cli-{unique}"
    cfg = tmp_path / "scheduler.yaml"
    cfg.write_text(
        f"apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: {name}\n"
    )
    async with three_nodes(client, unique, run_pods=False):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pilothouse.cli.main",
            "scheduler",
            "--kubeconfig",
            str(sched_server.kubeconfig),
            "--config",
            str(cfg),
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await create_pods(client, ns, [pod("p0", name), pod("p1", name)])
            placed = await wait_bound(client, ns, ["p0", "p1"], timeout=30)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert len(placed) == 2
    assert proc.returncode == 0, stderr.decode()[-2000:]
