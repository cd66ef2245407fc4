"""`pilothouse dev cluster` as a user runs it: up in the foreground, a working cluster of
several servers and an agent host, and everything removed on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pilothouse import testing

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.kubectl, pytest.mark.slow]


def test_dev_cluster_comes_up_and_goes_away(tmp_path: Path) -> None:
    data = tmp_path / "dev"
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pilothouse.cli.main", "dev", "cluster", "--servers", "2",
             "--agents", "1", "--data-dir", str(data), "--port", str(testing.free_port())],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while "dev cluster: ready" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        kubeconfig = data / "server-0" / "kubeconfig.yaml"

        def kubectl(*args: str) -> dict:  # type: ignore[type-arg]
            out = subprocess.run(
                ["kubectl", "--kubeconfig", str(kubeconfig), *args, "-o", "json"],
                capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
            result: dict = json.loads(out.stdout)  # type: ignore[type-arg]
            return result

        nodes = kubectl("get", "nodes")["items"]
        assert [n["metadata"]["name"] for n in nodes] == ["agent-0"]
        ep = kubectl("get", "endpoints", "kubernetes")
        assert sorted(a["ip"] for s in ep["subsets"] for a in s["addresses"]) == [
            "10.99.0.201",
            "10.99.0.202",
        ]
        assert "server-1  https://10.99.0.202:" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(120)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "all removed" in text
    assert not Path("/run/netns/phhost-agent-0").exists()
    assert subprocess.run(["ip", "link", "show", "phlan0"], capture_output=True).returncode != 0
