"""Ctrl-C stops `pilothouse server` however many streams are open through it.

The guarantee (issue 12): with a watch, a `logs -f`, an `exec -it` and a
`port-forward` open — the port-forward's kubectl killed while a connection
through it was still open, which once left an API server → agent stream behind
and the process unkillable but by SIGKILL — SIGINT makes the server exit with
status 0 within 10 s, and a restart on the same data directory finds every
object as it was. A second test checks that a second SIGINT ends a stuck
shutdown at once.

Real cluster: crun under conmon, the CNI bridge, busybox from the local
registry, the real kubectl. Needs root; CI runs as root.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import termios
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

NS = "e2e-shutdown"
# httpd in the background for the port-forward, a line a second for `logs -f`.
COMMAND = ["sh", "-c", "httpd -p 8080 -h /etc; while true; do echo tick; sleep 1; done"]


def _terminal(cluster: Cluster, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """kubectl with a pseudo-terminal as its controlling terminal (for exec -it)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        ["kubectl", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=cluster.env(TERM="xterm"),
        start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    os.close(slave)
    return proc, master


def _expect(fd: int, pattern: str, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern.encode(), seen):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {pattern!r} in {seen[-300:]!r}")
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                raise AssertionError(f"kubectl ended before {pattern!r}: {seen[-300:]!r}") from None
    return seen


def _line(proc: subprocess.Popen[bytes], pattern: str, timeout: float = 30) -> str:
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            seen += proc.stdout.read() or b""
            match = re.search(pattern.encode(), seen)
            if match:
                return match.group(0).decode()
    raise AssertionError(f"no {pattern!r} from kubectl: {seen[-300:]!r}")


def _objects(cluster: Cluster) -> dict[str, Any]:
    """Every object of the test namespace (and the namespace), by kind/name."""
    out = {}
    for kind in ("namespace/" + NS,):
        obj = cluster.json("get", kind)
        out[kind] = obj["metadata"]
    for kind in ("pods", "configmaps", "deployments", "replicasets"):
        for obj in cluster.json("-n", NS, "get", kind)["items"]:
            md = obj["metadata"]
            out[f"{kind}/{md['name']}"] = {
                "uid": md["uid"],
                "spec": obj.get("spec"),
                "data": obj.get("data"),
                # A pod's status is rewritten by the agent when it starts again; the rest
                # must be exactly as it was.
                "resourceVersion": md["resourceVersion"] if kind != "pods" else "",
            }
    return out


def _start(data: Path, image: str) -> Cluster:
    srv = testing.ServerProcess(data, agent=True).start(timeout=60)
    c = Cluster(srv, image)
    c.wait(
        lambda: "Ready" in c.kubectl("get", "nodes", "--no-headers", check=False).stdout.split(),
        timeout=60,
        what="the node to be Ready",
    )
    return c


def _ours(left: list[str], data: Path, sandboxes: set[str]) -> list[str]:
    """What ``leftovers`` found that is this test's: network namespaces (and their veths)
    of sandboxes made under ``data`` — other engineers' pods may share the machine."""
    links = subprocess.run(
        ["ip", "-o", "link", "show", "master", "ph0"], capture_output=True, text=True
    ).stdout
    veth_netns = {
        line.split(":")[1].strip(): (re.findall(r"link-netns (\S+)", line) or [""])[0]
        for line in links.splitlines()
    }
    out = []
    for item in left:
        netns = veth_netns.get(item, item)
        if netns.startswith("pilothouse-") and netns.removeprefix("pilothouse-") not in sandboxes:
            continue
        out.append(item)
    return out


def _clean_up(c: Cluster, data: Path, leftovers: Leftovers) -> None:
    sandboxes = {p.name for p in (data / "agent" / "runtime" / "sandboxes").glob("*")}
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
            timeout=90,
            what="the test pods to go",
        )
    finally:
        c.srv.stop()
    left = _ours(leftovers(data, uids | c.uids), data, sandboxes)
    assert not left, f"left behind on the machine: {left}"


def test_sigint_with_every_kind_of_stream_open_exits_0_within_10s_and_loses_nothing(
    tmp_path: Path, local_registry: Any, machine_leftovers: Leftovers
) -> None:
    data = tmp_path / "data"
    c = _start(data, local_registry.busybox)
    streams: list[subprocess.Popen[bytes]] = []
    master = -1
    try:
        c.kubectl("create", "namespace", NS)
        c.kubectl("-n", NS, "create", "configmap", "settings", "--from-literal=answer=42")
        c.kubectl(
            "-n", NS, "create", "deployment", "web", "--image", c.image, "--replicas=1",
            "--", "httpd", "-f", "-p", "8080", "-h", "/etc",
        )  # fmt: skip
        c.apply(NS, pod_manifest("box", c.image, COMMAND))
        c.running(NS, "box")
        c.wait(
            lambda: (
                c.json("-n", NS, "get", "deployment", "web")
                .get("status", {})
                .get("availableReplicas")
            ),
            what="the deployment to be available",
        )
        before = _objects(c)

        # A watch, a followed log, an interactive shell and a port-forward, all open.
        watch = subprocess.Popen(
            ["kubectl", "-n", NS, "get", "pods", "-w"], stdout=subprocess.PIPE, env=c.env()
        )
        streams.append(watch)
        _line(watch, r"box\s+1/1\s+Running")
        logs = subprocess.Popen(
            ["kubectl", "-n", NS, "logs", "-f", "box"], stdout=subprocess.PIPE, env=c.env()
        )
        streams.append(logs)
        _line(logs, "tick")
        shell, master = _terminal(c, "-n", NS, "exec", "-it", "box", "--", "sh")
        streams.append(shell)
        os.write(master, b"echo $((6*7))\r")
        _expect(master, r"\r\n42\r\n")
        forward = subprocess.Popen(
            ["kubectl", "-n", NS, "port-forward", "pod/box", "0:8080"],
            stdout=subprocess.PIPE,
            env=c.env(),
        )
        port = int(_line(forward, r"127\.0\.0\.1:(\d+)").rsplit(":", 1)[1])
        held = socket.create_connection(("127.0.0.1", port), timeout=10)
        held.sendall(b"GET /hostname HTTP/1.1\r\nHost: box\r\n\r\n")
        assert b"200 OK" in held.recv(1000)
        forward.kill()  # gone, with a connection through it still open
        forward.wait(10)

        assert c.srv.proc is not None
        began = time.monotonic()
        c.srv.proc.send_signal(signal.SIGINT)
        code = c.srv.proc.wait(15)
        took = time.monotonic() - began
        held.close()
        log = c.srv.log_path.read_text()
        assert code == 0, log[-3000:]
        assert took < 10, f"took {took:.1f}s to stop:\n{log[-3000:]}"
        print(f"pilothouse server stopped in {took:.2f}s")  # shown with -rA
        assert "Traceback" not in log[log.rindex("shutting down") :], log[-3000:]
        # Every client saw its stream end (none is left hanging on a dead server).
        for proc in (watch, logs, shell):
            proc.wait(10)

        c = _start(data, c.image)  # same data directory
        assert _objects(c) == before
        c.running(NS, "box")  # the container outlived the server, and is still it
    finally:
        for proc in streams:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if master >= 0:
            os.close(master)
        if c.srv.proc is not None and c.srv.proc.poll() is None:
            _clean_up(c, data, machine_leftovers)
