"""Fixtures shared by the whole suite: a running API server and ways to talk to it."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml

from pilothouse import supervisor as supervision
from pilothouse import testing

KUBECTL = shutil.which("kubectl")

# Informers check that nobody changes a cached object in place (see client/informer.py);
# the cluster fixture below fails the session when one did.
os.environ.setdefault("PILOTHOUSE_CACHE_MUTATION_DETECTOR", "true")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if KUBECTL is None:
        skip = pytest.mark.skip(
            reason="kubectl is not installed on this machine (install kubectl 1.32 to run these)"
        )
        for item in items:
            if "kubectl" in item.keywords:
                item.add_marker(skip)
    if os.geteuid() != 0:
        skip_root = pytest.mark.skip(reason="needs root (CI runs as root)")
        for item in items:
            if "root" in item.keywords:
                item.add_marker(skip_root)


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Print a failure as it happens, not only in the summary at the end: a run stopped
    from outside (CI's time limit) prints no summary, and then this is all it says."""
    if not report.failed:
        return
    config = _SESSION.get("config")
    reporter = config and config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    text = report.longreprtext
    reporter.write_line("")
    reporter.write_line(f"--- {report.nodeid} failed in {report.when} ({report.duration:.1f} s)")
    if text in _SEEN:  # a module fixture's error, raised again for each of its tests
        reporter.write_line(f"    the same error as {_SEEN[text]}")
        return
    _SEEN[text] = report.nodeid
    for line in text.splitlines()[-60:]:
        reporter.write_line(f"    {line}")
    for title, content in report.sections:
        if "stderr" in title or "log" in title:
            reporter.write_line(f"    {title}, last lines:")
            for line in content.splitlines()[-15:]:
                reporter.write_line(f"    | {line}")


_SESSION: dict[str, pytest.Config] = {}
_SEEN: dict[str, str] = {}  # failure text → the first test that printed it


def pytest_configure(config: pytest.Config) -> None:
    _SESSION["config"] = config


@pytest.fixture
async def supervisor() -> AsyncIterator[supervision.Supervisor]:
    """A supervisor for the loops a test starts (informers, recorders, …), stopped after it."""
    sup = supervision.Supervisor("test")
    yield sup
    await sup.stop()


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[Any]:
    """One real etcd (Debian's etcd-server, from `make install-test`) on loopback ports
    for the session; tests keep apart with key prefixes of their own."""
    from pilothouse.storage.etcd import testing as etcd_testing

    if not etcd_testing.available():
        pytest.fail("etcd is not installed: run `make install-test` (Debian's etcd-server)")
    with etcd_testing.EtcdProcess() as etcd:
        yield etcd


@pytest.fixture(scope="session")
def api_server() -> Iterator[testing.ServerThread]:
    """One API server (SQLite store) for the whole session; tests use their own namespaces."""
    with (
        tempfile.TemporaryDirectory(prefix="pilothouse-test-") as tmp,
        testing.server_thread(Path(tmp) / "data") as srv,
    ):
        yield srv


@pytest.fixture(scope="session")
def cluster_server() -> Iterator[testing.ServerThread]:
    """A second server that also runs the controller manager (GC, namespaces, …)."""
    with (
        tempfile.TemporaryDirectory(prefix="pilothouse-cluster-") as tmp,
        testing.server_thread(Path(tmp) / "data", controllers=True) as srv,
    ):
        yield srv
        informers = srv.cluster.informers
        mutated = {
            inf.name: inf.mutations
            for inf in (informers.informers() if informers is not None else [])
            if inf.mutations
        }
        assert not mutated, f"cached objects changed in place by their consumers: {mutated}"


class Kubectl:
    """Runs the real kubectl against a server."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBECTL_EXTERNAL_DIFF": ""}

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        proc = subprocess.run(
            [KUBECTL, *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        assert KUBECTL is not None
        return subprocess.Popen(
            [KUBECTL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env()
        )


@pytest.fixture(scope="session")
def kubectl(api_server: testing.ServerThread) -> Kubectl:
    return Kubectl(api_server.kubeconfig)


@pytest.fixture(scope="session")
def cluster_kubectl(cluster_server: testing.ServerThread) -> Kubectl:
    return Kubectl(cluster_server.kubeconfig)


@pytest.fixture(scope="session")
def kubectl_as() -> type[Kubectl]:
    """Kubectl itself, for tests that run it with kubeconfigs of their own (other users)."""
    return Kubectl


@pytest.fixture
def cluster_namespace(cluster_kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace on the controller-running server."""
    name = "t-" + uuid.uuid4().hex[:10]
    cluster_kubectl("create", "namespace", name)
    yield name
    cluster_kubectl("delete", "namespace", name, "--wait=false", check=False)


def wait_for_namespace_setup(api: API, name: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    for path in (
        f"/api/v1/namespaces/{name}/serviceaccounts/default",
        f"/api/v1/namespaces/{name}/configmaps/kube-root-ca.crt",
    ):
        while api.request("GET", path).status != 200:
            assert time.monotonic() < deadline, f"namespace {name} not set up: {path}"
            time.sleep(0.02)


class API:
    """A small raw HTTPS client with the admin certificate, for exact protocol checks."""

    def __init__(self, server: testing.ServerThread) -> None:
        cfg = yaml.safe_load(server.kubeconfig.read_text())
        pki = server.server.pki
        assert pki is not None
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self.base = cfg["clusters"][0]["cluster"]["server"]
        self.pool = urllib3.PoolManager(ssl_context=ctx, retries=False, timeout=30)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        preload: bool = True,
    ) -> urllib3.BaseHTTPResponse:
        data = raw
        if data is None and body is not None:
            data = json.dumps(body).encode()
        hdrs = {"Content-Type": content_type, **(headers or {})}
        return self.pool.request(
            method, self.base + path, body=data, headers=hdrs, preload_content=preload
        )

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        resp = self.request(method, path, body, **kw)
        try:
            return resp.status, json.loads(resp.data)
        except ValueError:
            return resp.status, resp.data.decode(errors="replace")


@pytest.fixture(scope="session")
def api(api_server: testing.ServerThread) -> API:
    return API(api_server)


@pytest.fixture(scope="session")
def api_client() -> type[API]:
    """The raw client class, for tests that run servers of their own."""
    return API


@pytest.fixture
def namespace(api: API) -> Iterator[str]:
    """A fresh namespace for one test, once its default ServiceAccount and
    kube-root-ca.crt exist (as upstream's e2e framework waits for them)."""
    name = "t-" + uuid.uuid4().hex[:10]
    status, body = api.json("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201, body
    wait_for_namespace_setup(api, name)
    yield name
    api.request("DELETE", f"/api/v1/namespaces/{name}")
