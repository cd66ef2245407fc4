"""kubectl exec, attach, cp and port-forward into real containers, end to end.

`pilothouse server` with its node agent, busybox from the local registry,
crun under conmon; the real kubectl (WebSocket first, as 1.32 does; one test
forces its SPDY fallback) and the ``kubernetes`` Python client. Needs root;
CI runs as root. One server serves the module; every test has its namespace.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from pilothouse import testing

from .realcluster import Cluster

pytestmark = [
    pytest.mark.root,
    pytest.mark.containers,
    pytest.mark.netns,
    pytest.mark.kubectl,
    pytest.mark.slow,
]


SLEEPER = ["sleep", "3600"]


# --- exec -------------------------------------------------------------------------------------
def test_exec_with_stdin_output_and_exit_codes(cluster: Cluster, ns: str) -> None:
    cluster.run(ns, "box", SLEEPER)
    out = cluster.kubectl_bytes("-n", ns, "exec", "-i", "box", "--", "cat", input=b"hi\n").stdout
    assert out == b"hi\n"
    both = cluster.kubectl_bytes(
        "-n", ns, "exec", "box", "--", "sh", "-c", "echo out; echo err >&2"
    )
    assert (both.stdout, both.stderr) == (b"out\n", b"err\n")
    big = os.urandom(300_000)
    copied = cluster.kubectl_bytes("-n", ns, "exec", "-i", "box", "--", "cat", input=big).stdout
    assert copied == big
    failed = cluster.kubectl_bytes("-n", ns, "exec", "box", "--", "sh", "-c", "exit 7", check=False)
    assert failed.returncode == 7
    assert b"command terminated with exit code 7" in failed.stderr
    # kubectl's SPDY fallback reaches the same containers.
    spdy = cluster.kubectl_bytes(
        "-n", ns, "exec", "-i", "box", "--", "sh", "-c", "cat; exit 3",
        input=b"via spdy\n", check=False, env={"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"},
    )  # fmt: skip
    assert (spdy.returncode, spdy.stdout) == (3, b"via spdy\n"), spdy.stderr


class Terminal:
    """kubectl in a pseudo-terminal we own: its controlling terminal, with a size we set."""

    def __init__(self, cluster: Cluster, *args: str, rows: int = 40, cols: int = 100) -> None:
        self.master, slave = pty.openpty()
        self.resize(rows, cols)
        self.proc = subprocess.Popen(
            ["kubectl", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=cluster.env(TERM="xterm"),
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.seen = b""

    def resize(self, rows: int, cols: int) -> None:
        # The kernel tells the terminal's foreground process (kubectl) with SIGWINCH.
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, pattern: str, timeout: float = 20) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern.encode())
        while True:
            match = regex.search(self.seen)
            if match:
                self.seen = self.seen[match.end() :]
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} in {self.seen[-500:]!r}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:  # EIO: kubectl exited
                    raise AssertionError(f"no {pattern!r} in {self.seen[-500:]!r}") from None

    def close(self) -> int:
        try:
            return self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.close(self.master)


def test_interactive_terminal_with_resize(cluster: Cluster, ns: str) -> None:
    cluster.run(ns, "shell", SLEEPER)
    term = Terminal(cluster, "-n", ns, "exec", "-it", "shell", "--", "sh", rows=40, cols=100)
    try:
        term.expect(r"/ # ")
        term.send("echo $((6*7))\r")
        term.expect(r"\r\n42\r\n")
        term.send("stty size\r")
        term.expect(r"40 100")
        term.resize(30, 120)
        time.sleep(0.5)  # kubectl forwards the size change asynchronously
        term.send("stty size\r")
        term.expect(r"30 120")
        term.send("exit 5\r")
        assert term.close() == 5
    finally:
        if term.proc.poll() is None:
            term.proc.kill()


# --- attach -----------------------------------------------------------------------------------
def test_attach_follows_output(cluster: Cluster, ns: str) -> None:
    cluster.run(ns, "ticker", ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"])  # fmt: skip
    proc = subprocess.Popen(
        ["kubectl", "-n", ns, "attach", "ticker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cluster.env(),
    )
    try:
        assert proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + 20
        while seen.count(b"tick") < 5 and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                seen += os.read(proc.stdout.fileno(), 4096)
        numbers = [int(line.split()[1]) for line in seen.decode().splitlines() if "tick" in line]
        assert len(numbers) >= 5
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # live, in order
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    assert cluster.pod(ns, "ticker")["status"]["phase"] == "Running"  # detaching left it running


def test_attach_with_stdin(cluster: Cluster, ns: str) -> None:
    cluster.apply(
        ns,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "echo"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "image": cluster.image,
                        "command": ["cat"],
                        "stdin": True,
                        "stdinOnce": True,
                    }
                ],
            },
        },
    )
    cluster.running(ns, "echo")
    out = cluster.kubectl_bytes(
        "-n", ns, "attach", "-i", "echo", input=b"hello attach\n", timeout=60
    )
    assert b"hello attach" in out.stdout
    # stdinOnce: closing stdin ended cat, and with it the container.
    cluster.wait(
        lambda: cluster.pod(ns, "echo")["status"].get("phase") == "Succeeded", what="cat to end"
    )


# --- cp ---------------------------------------------------------------------------------------
def test_cp_files_and_directories_both_ways(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    cluster.run(ns, "files", SLEEPER)
    local = tmp_path / "hello.txt"
    local.write_bytes(b"hello from the host\n" + os.urandom(50_000))
    cluster.kubectl_bytes("-n", ns, "cp", str(local), f"{ns}/files:/tmp/hello.txt")
    inside = cluster.kubectl_bytes("-n", ns, "exec", "files", "--", "cat", "/tmp/hello.txt").stdout
    assert inside == local.read_bytes()
    back = tmp_path / "back.txt"
    cluster.kubectl_bytes("-n", ns, "cp", f"{ns}/files:/tmp/hello.txt", str(back))
    assert back.read_bytes() == local.read_bytes()

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a\n")
    (tree / "sub" / "b.txt").write_text("b\n")
    cluster.kubectl_bytes("-n", ns, "cp", str(tree), f"{ns}/files:/tmp/tree")
    listing = cluster.kubectl_bytes(
        "-n", ns, "exec", "files", "--", "find", "/tmp/tree", "-type", "f"
    )
    assert sorted(listing.stdout.decode().split()) == ["/tmp/tree/a.txt", "/tmp/tree/sub/b.txt"]
    cluster.kubectl_bytes(
        "-n", ns, "exec", "files", "--", "sh", "-c", "echo made here > /tmp/tree/c.txt"
    )
    out = tmp_path / "out"
    cluster.kubectl_bytes("-n", ns, "cp", f"{ns}/files:/tmp/tree", str(out))
    assert (out / "sub" / "b.txt").read_text() == "b\n"
    assert (out / "c.txt").read_text() == "made here\n"


# --- port-forward -----------------------------------------------------------------------------
HTTPD = ["sh", "-c", "mkdir -p /www && echo served by $(hostname) > /www/index.html && httpd -f -p 8080 -h /www"]  # fmt: skip


def _wait_for_httpd(cluster: Cluster, ns: str, pod: str) -> None:
    def serving() -> bool:
        probe = ["wget", "-qO-", "http://127.0.0.1:8080/"]
        return (
            b"served"
            in cluster.kubectl_bytes("-n", ns, "exec", pod, "--", *probe, check=False).stdout
        )

    cluster.wait(serving, what="httpd")


class PortForward:
    def __init__(self, cluster: Cluster, ns: str, target: str, remote: int) -> None:
        self.local = testing.free_port()
        self.proc = subprocess.Popen(
            ["kubectl", "-n", ns, "port-forward", target, f"{self.local}:{remote}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cluster.env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert b"Forwarding from" in line, line + self.proc.stderr.read()  # type: ignore[union-attr]

    def stop(self) -> bytes:
        if self.proc.poll() is None:
            self.proc.terminate()
        _, err = self.proc.communicate(timeout=20)
        return err


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=20)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    sock.close()
    return b"".join(chunks)


def test_port_forward_carries_concurrent_http_requests(cluster: Cluster, ns: str) -> None:
    cluster.run(ns, "web", HTTPD)
    _wait_for_httpd(cluster, ns, "web")
    pf = PortForward(cluster, ns, "pod/web", 8080)
    try:
        # Two connections open at once through the one port-forward, each half-sent first.
        first, second = _connect(pf.local), _connect(pf.local)
        first.sendall(b"GET /index.html HTTP/1.0\r\n")
        second.sendall(b"GET /index.html HTTP/1.0\r\n")
        time.sleep(0.2)
        second.sendall(b"\r\n")
        first.sendall(b"\r\n")
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(_read_all, [first, second]))
        for answer in answers:
            assert answer.split(b"\r\n")[0].endswith(b" 200 OK"), answer
            assert answer.endswith(b"served by web\n")
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            many = list(pool.map(lambda _: _fetch(pf.local), range(16)))
        assert all(a.endswith(b"served by web\n") for a in many)
    finally:
        pf.stop()


def _fetch(port: int) -> bytes:
    sock = _connect(port)
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    return _read_all(sock)


def test_port_forward_errors_and_the_agent_carries_on(cluster: Cluster, ns: str) -> None:
    cluster.run(ns, "quiet", SLEEPER)
    pf = PortForward(cluster, ns, "pod/quiet", 81)
    try:
        assert _fetch(pf.local) == b""  # nothing listens: the connection just closes
    finally:
        err = pf.stop().decode()
    assert "error forwarding port 81 to pod" in err, err
    assert "failed to connect to localhost:81" in err, err
    # A pod that is not running: kubectl checks first, the API server too.
    cluster.apply(
        ns,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "stuck"},
            "spec": {"containers": [{"name": "main", "image": "127.0.0.1:1/none:1"}]},
        },
    )
    stuck = cluster.kubectl_bytes("-n", ns, "port-forward", "pod/stuck", "12345:80", check=False)
    assert stuck.returncode == 1 and b"pod is not running" in stuck.stderr, stuck.stderr
    stuck = cluster.kubectl_bytes("-n", ns, "exec", "stuck", "--", "ls", check=False)
    assert stuck.returncode == 1 and b'container not found ("main")' in stuck.stderr, stuck.stderr
    missing = cluster.kubectl_bytes(
        "-n", ns, "exec", "quiet", "-c", "nope", "--", "ls", check=False
    )
    assert missing.returncode == 1
    assert b"container nope is not valid for pod quiet" in missing.stderr, missing.stderr
    gone = cluster.kubectl_bytes("-n", ns, "exec", "nobody", "--", "ls", check=False)
    assert gone.returncode == 1 and b'pods "nobody" not found' in gone.stderr
    # Nothing of that hurt the agent.
    ok = cluster.kubectl_bytes("-n", ns, "exec", "quiet", "--", "echo", "still fine")
    assert ok.stdout == b"still fine\n"


# --- the kubernetes Python client ---------------------------------------------------------------
def _python_api(cluster: Cluster) -> Any:
    import kubernetes

    conf = kubernetes.client.Configuration()
    loader = kubernetes.config.kube_config.KubeConfigLoader(  # type: ignore[no-untyped-call]
        yaml.safe_load(cluster.srv.kubeconfig.read_text())
    )
    loader.load_and_set(conf)  # type: ignore[no-untyped-call]
    return kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(conf))


def test_python_client_exec_and_port_forward(cluster: Cluster, ns: str) -> None:
    from kubernetes.stream import portforward, stream

    cluster.run(ns, "py", HTTPD)
    api = _python_api(cluster)
    resp = stream(
        api.connect_get_namespaced_pod_exec, "py", ns,
        command=["sh", "-c", "echo to out; echo to err >&2; exit 4"],
        stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False,
    )  # fmt: skip
    resp.run_forever(timeout=20)
    assert resp.read_stdout() == "to out\n"
    assert resp.read_stderr() == "to err\n"
    assert resp.returncode == 4
    interactive = stream(
        api.connect_get_namespaced_pod_exec, "py", ns, command=["cat"],
        stdout=True, stderr=True, stdin=True, tty=False, _preload_content=False,
    )  # fmt: skip
    interactive.write_stdin("ping\n")
    assert interactive.readline_stdout(timeout=10) == "ping"
    interactive.close()

    _wait_for_httpd(cluster, ns, "py")
    pf = portforward(api.connect_get_namespaced_pod_portforward, "py", ns, ports="8080")
    sock = pf.socket(8080)
    sock.setblocking(True)
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    answer = b""
    while data := sock.recv(65536):
        answer += data
    sock.close()
    assert b" 200 OK" in answer.split(b"\r\n")[0] and answer.endswith(b"served by py\n")
    assert pf.error(8080) is None
    pf.close()
