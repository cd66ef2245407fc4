"""A throwaway etcd on loopback ports, for tests and benchmarks.

Runs Debian's ``etcd`` binary (package ``etcd-server``) as a child process with
its own data directory, client and peer ports picked free on 127.0.0.1, and
waits until it answers. :meth:`EtcdProcess.stop` kills it (by its pid) and
:meth:`EtcdProcess.start` again reuses the data, so tests can take etcd away
and bring it back.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def available() -> bool:
    return os.access(ETCD, os.X_OK)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class TLS:
    """Serve clients over TLS and require certificates signed by ``ca``."""

    ca: pathlib.Path
    cert: pathlib.Path
    key: pathlib.Path
    client_cert: pathlib.Path
    client_key: pathlib.Path


class EtcdProcess:
    """One etcd member; ``endpoint`` is its client URL."""

    def __init__(
        self,
        data_dir: pathlib.Path | None = None,
        *,
        unsafe_no_fsync: bool = False,
        tls: TLS | None = None,
        name: str = "default",
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or pathlib.Path(tempfile.mkdtemp(prefix="pilothouse-etcd-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.client_port = _free_port()
        self.peer_port = _free_port()
        self.unsafe_no_fsync = unsafe_no_fsync
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "etcd.log"
        self.name = name
        self.initial_cluster = ""  # "name=peer-url,…" of a cluster (EtcdCluster sets it)

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    def _health_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        ctx = ssl.create_default_context(cafile=str(self.tls.ca))
        ctx.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return ctx

    def start(self, timeout: float = 20.0) -> EtcdProcess:
        self.launch()
        self.wait_healthy(timeout)
        return self

    def launch(self) -> None:
        """Start the process without waiting (members of a new cluster wait for quorum)."""
        peer = self.peer_url
        args = [
            ETCD,
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir / "member-data"),
            "--listen-client-urls",
            self.endpoint,
            "--advertise-client-urls",
            self.endpoint,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            self.initial_cluster or f"{self.name}={peer}",
            "--log-level",
            "warn",
            "--logger",
            "zap",
        ]
        if self.unsafe_no_fsync:
            args.append("--unsafe-no-fsync")
        if self.tls is not None:
            args += [
                "--cert-file",
                str(self.tls.cert),
                "--key-file",
                str(self.tls.key),
                "--client-cert-auth",
                "--trusted-ca-file",
                str(self.tls.ca),
            ]
        log = open(self.log_path, "ab")  # noqa: SIM115  (the child keeps it open)
        try:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()

    def wait_healthy(self, timeout: float = 20.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited at start: {self.log_path.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(
                    self.endpoint + "/health", timeout=1, context=self._health_context()
                ) as resp,
            ):
                if b'"true"' in resp.read():
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"etcd did not become healthy in {timeout}s")

    def stop(self) -> None:
        """Kill etcd (SIGKILL to its pid: the data stays for a later start)."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def close(self) -> None:
        """Stop etcd and remove its data directory if this object made it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EtcdProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class EtcdCluster:
    """``size`` etcd members on loopback forming one cluster; ``endpoint`` names them all
    (comma-separated, as ``--datastore-endpoint`` takes them). ``members[i].stop()`` kills
    one, ``members[i].start()`` brings it back with its data."""

    def __init__(self, size: int = 3, *, unsafe_no_fsync: bool = False) -> None:
        self.directory = pathlib.Path(tempfile.mkdtemp(prefix="pilothouse-etcd-cluster-"))
        self.members = [
            EtcdProcess(self.directory / f"m{i}", unsafe_no_fsync=unsafe_no_fsync, name=f"m{i}")
            for i in range(size)
        ]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.initial_cluster = initial

    @property
    def endpoint(self) -> str:
        return ",".join(m.endpoint for m in self.members)

    def start(self, timeout: float = 30.0) -> EtcdCluster:
        try:
            for m in self.members:
                m.launch()
            for m in self.members:
                m.wait_healthy(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for m in self.members:
            m.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
