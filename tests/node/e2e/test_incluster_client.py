"""A pod's own identity, end to end with real containers (issue 15).

A pod running as a ServiceAccount that a Role lets ``list pods`` runs the
``kubernetes`` Python client with ``load_incluster_config()`` — the token, CA and
namespace the agent mounted at ``/var/run/secrets/kubernetes.io/serviceaccount`` —
lists the pods of its namespace, and is refused ``list secrets`` with upstream's
message. Once the pod is deleted its token is refused (401).

The image is this machine's own Python with the ``kubernetes`` package (no registry
on the internet). The API server listens on all addresses and advertises this
machine's address, so the ``kubernetes`` Service has an endpoint pods can reach; the
client finds it as every in-cluster client does, through the ``KUBERNETES_SERVICE_HOST``
the agent sets (the Service's virtual IP, 10.43.0.1, carried by the node's proxy) and the
serving certificate that names that IP.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import testing
from pilothouse.node.runtime.images import pythonimage

from .conftest import Leftovers
from .realcluster import Cluster

pytestmark = [pytest.mark.root, pytest.mark.containers, pytest.mark.netns, pytest.mark.kubectl]

IMAGE_REPO = "library/python-client:test"
PROGRAM = """
import json, sys
from kubernetes import client, config
from kubernetes.client.rest import ApiException
config.load_incluster_config()
v1 = client.CoreV1Api()
ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
out = {"namespace": ns, "pods": sorted(p.metadata.name for p in v1.list_namespaced_pod(ns).items)}
try:
    v1.list_namespaced_secret(ns)
    out["secrets"] = "allowed"
except ApiException as exc:
    out["secrets"] = {**json.loads(exc.body), "http": exc.status}
print("RESULT " + json.dumps(out), flush=True)
"""


def _address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))
        return str(s.getsockname()[0])


@pytest.fixture(scope="module")
def python_image(local_registry: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    layout = tmp_path_factory.mktemp("python-image") / "layout"
    pythonimage.build_python_oci(layout, packages=["kubernetes"])
    asyncio.run(local_registry.push(layout, IMAGE_REPO))
    return f"{local_registry.host}/{IMAGE_REPO}"


@pytest.fixture(scope="module")
def reachable_cluster(
    tmp_path_factory: pytest.TempPathFactory, local_registry: Any, machine_leftovers: Leftovers
) -> Iterator[tuple[Cluster, str]]:
    """A cluster whose API server pods can reach (all addresses, this machine's address)."""
    address = _address()
    data = tmp_path_factory.mktemp("incluster") / "data"
    srv = testing.ServerProcess(
        data, agent=True, extra_args=["--bind-address", "0.0.0.0", "--advertise-address", address]
    ).start(timeout=60)
    c = Cluster(srv, local_registry.busybox)
    try:
        c.wait(
            lambda: (
                "Ready" in c.kubectl("get", "nodes", "--no-headers", check=False).stdout.split()
            ),
            timeout=60,
            what="the node to be Ready",
        )
        yield c, address
    finally:
        for ns in c.kubectl("get", "ns", "-o", "name", check=False).stdout.split():
            if ns.startswith("namespace/e2e-"):
                c.kubectl("delete", ns, "--wait=false", check=False)
        try:
            c.wait(
                lambda: (
                    not [
                        line
                        for line in c.kubectl(
                            "get", "pods", "-A", "--no-headers", check=False
                        ).stdout.splitlines()
                        if line.startswith("e2e-")
                    ]
                ),
                timeout=90,
                what="test pods to go",
            )
        finally:
            srv.stop()
        left = machine_leftovers(data, c.uids)
        assert not left, f"left behind on the machine: {left}"


def _token_works(url: str, ca: Path, token: str, ns: str) -> int:
    ctx = ssl.create_default_context(cafile=str(ca))
    req = urllib.request.Request(
        f"{url}/api/v1/namespaces/{ns}/pods", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_incluster_client_lists_pods_is_refused_secrets_and_loses_its_token(
    reachable_cluster: tuple[Cluster, str], python_image: str
) -> None:
    cluster, _ = reachable_cluster
    ns = "e2e-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("create", "serviceaccount", "lister", "-n", ns)
    cluster.kubectl("create", "role", "pod-lister", "--verb=list", "--resource=pods", "-n", ns)
    cluster.kubectl(
        "create",
        "rolebinding",
        "lister",
        "--role=pod-lister",
        f"--serviceaccount={ns}:lister",
        "-n",
        ns,
    )
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client"},
        "spec": {
            "serviceAccountName": "lister",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": python_image,
                    "command": ["sh", "-c", f"python3 -c '{PROGRAM}' && sleep 3600"],
                }
            ],
        },
    }
    cluster.apply(ns, manifest)
    pod = cluster.running(ns, "client", timeout=120)
    # ServiceAccount admission added the projected token volume.
    volumes = pod["spec"]["volumes"]
    assert [v["name"][:16] for v in volumes] == ["kube-api-access-"]
    sources = volumes[0]["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}

    def result() -> dict[str, Any] | None:
        logs = cluster.kubectl("logs", "client", "-n", ns, check=False).stdout
        for line in logs.splitlines():
            if line.startswith("RESULT "):
                return dict(json.loads(line[len("RESULT ") :]))
        return None

    got = cluster.wait(result, timeout=90, what="the client's result")
    # The client went through the kubernetes Service, as every in-cluster client does.
    host = cluster.kubectl(
        "exec", "client", "-n", ns, "--",
        "python3", "-c", "import os; print(os.environ['KUBERNETES_SERVICE_HOST'])",
    ).stdout.strip()  # fmt: skip
    assert host == "10.43.0.1"
    assert got["namespace"] == ns
    assert got["pods"] == ["client"]
    refused = got["secrets"]
    assert refused["http"] == 403 and refused["code"] == 403 and refused["reason"] == "Forbidden"
    assert refused["message"] == (
        f'secrets is forbidden: User "system:serviceaccount:{ns}:lister" cannot list resource '
        f'"secrets" in API group "" in the namespace "{ns}"'
    )
    token = cluster.kubectl(
        "exec",
        "client",
        "-n",
        ns,
        "--",
        "cat",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
    ).stdout.strip()
    ca = cluster.srv.data_dir / "pki" / "ca.crt"
    assert _token_works(cluster.srv.url, ca, token, ns) == 200
    cluster.kubectl("delete", "pod", "client", "-n", ns, "--wait=true", timeout=120)
    # The pod is gone: the token bound to it is refused.
    assert _token_works(cluster.srv.url, ca, token, ns) == 401
