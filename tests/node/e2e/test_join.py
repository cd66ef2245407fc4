"""`pilothouse agent` joins a server with its token and runs a real pod there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pilothouse import testing

pytestmark = [
    pytest.mark.root,
    pytest.mark.containers,
    pytest.mark.netns,
    pytest.mark.kubectl,
    pytest.mark.slow,
]


def _kubectl(
    srv: testing.ServerProcess, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(srv.kubeconfig)}
    proc = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}")
    return proc


def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out: {what}")


def test_agent_joins_with_the_token_and_runs_pods(
    tmp_path: Path, local_registry: Any, machine_leftovers: Any
) -> None:
    srv = testing.ServerProcess(tmp_path / "server").start(timeout=60)
    agent_dir = tmp_path / "node"
    cli = [
        sys.executable,
        "-m",
        "pilothouse.cli.main",
        "agent",
        "--server",
        srv.url,
        "--data-dir",
        str(agent_dir),
        "--node-name",
        "joined-node",
        "--address",
        "127.0.0.1",
        "--config",
        str(testing.node_config_file(tmp_path)),
    ]
    uids: list[str] = []
    try:
        token = (tmp_path / "server" / "token").read_text().strip()
        bad = subprocess.run(
            [*cli, "--token", token.rsplit(":", 1)[0] + ":wrong"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode != 0 and "refused to join" in bad.stderr
        forged = "K10" + "0" * 64 + "::server:" + token.rsplit(":", 1)[1]
        bad = subprocess.run([*cli, "--token", forged], capture_output=True, text=True, timeout=60)
        assert bad.returncode != 0 and "does not match the token" in bad.stderr
        log = (tmp_path / "agent.log").open("wb")
        agent = subprocess.Popen([*cli, "--token", token], stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait(
                lambda: (
                    "Ready"
                    in _kubectl(
                        srv, "get", "node", "joined-node", "--no-headers", check=False
                    ).stdout
                ),
                60,
                "the joined node to be Ready",
            )
            node = json.loads(_kubectl(srv, "get", "node", "joined-node", "-o", "json").stdout)
            assert node["spec"]["podCIDR"].startswith("10.42.")
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "hello"},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "c",
                            "image": local_registry.busybox,
                            "command": ["sh", "-c", "echo hello from $(hostname)"],
                        }
                    ],
                },
            }
            _kubectl(srv, "create", "namespace", "joined")
            subprocess.run(
                ["kubectl", "-n", "joined", "create", "-f", "-"],
                input=json.dumps(pod),
                text=True,
                check=True,
                capture_output=True,
                env={**os.environ, "KUBECONFIG": str(srv.kubeconfig)},
            )
            _wait(
                lambda: (
                    "Succeeded"
                    in _kubectl(
                        srv,
                        "-n",
                        "joined",
                        "get",
                        "pod",
                        "hello",
                        "-o",
                        "jsonpath={.status.phase}",
                        check=False,
                    ).stdout
                ),
                90,
                "the pod",
            )
            assert (
                _kubectl(srv, "-n", "joined", "logs", "hello").stdout.strip() == "hello from hello"
            )
            uids.append(
                _kubectl(
                    srv, "-n", "joined", "get", "pod", "hello", "-o", "jsonpath={.metadata.uid}"
                ).stdout
            )
            # The node keeps its identity: the certificates, not the token, are used from now on.
            assert (agent_dir / "agent" / "pki" / "kubeconfig.yaml").exists()
            _kubectl(srv, "-n", "joined", "delete", "pod", "hello")
        finally:
            agent.terminate()
            agent.wait(30)
            log.close()
        # The pod was deleted just before the agent stopped: the agent finished releasing it.
        left = machine_leftovers(agent_dir, uids)
        assert not left, f"left behind on the machine: {left}"
    finally:
        srv.stop()
