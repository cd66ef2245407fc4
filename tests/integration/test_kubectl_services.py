"""The real kubectl and Services: expose, create service …, get svc/ep/endpointslices,
describe svc, and the errors upstream gives — against a server running the
controllers (the EndpointSlice, Endpoints and ServiceLB controllers among them)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tests.conftest import Kubectl

pytestmark = pytest.mark.kubectl


def ready_pod(kubectl: Kubectl, ns: str, name: str, ip: str) -> None:
    """A pod of the web Deployment's labels, reported Running and Ready (no node here)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                                 "ports": [{"name": "http", "containerPort": 8080}]}]},
    }  # fmt: skip
    kubectl("-n", ns, "create", "-f", "-", input=json.dumps(pod))
    status = {
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    }
    kubectl("-n", ns, "patch", "pod", name, "--subresource=status", "--type=merge",
            "-p", json.dumps(status))  # fmt: skip


def wait(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out: last {last!r}")


def test_expose_get_and_describe(cluster_kubectl: Kubectl, cluster_namespace: str) -> None:
    k, ns = cluster_kubectl, cluster_namespace
    k("-n", ns, "create", "deployment", "web", "--image=busybox:1.36", "--replicas=2",
      "--port=8080", "--", "httpd", "-f", "-p", "8080")  # fmt: skip
    assert k("-n", ns, "expose", "deployment", "web", "--port=80", "--target-port=8080").stdout \
        == "service/web exposed\n"  # fmt: skip
    ready_pod(k, ns, "web-a", "10.42.9.11")
    ready_pod(k, ns, "web-b", "10.42.9.12")
    wide = wait(lambda: _with(k("-n", ns, "get", "svc", "web", "-o", "wide").stdout, "app=web"))
    header, row = wide.splitlines()
    assert header.split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE",
                              "SELECTOR"]  # fmt: skip
    cells = row.split()
    assert cells[:2] == ["web", "ClusterIP"] and cells[2].startswith("10.43.")
    assert cells[3:5] == ["<none>", "80/TCP"] and cells[6] == "app=web"
    ep = wait(lambda: _with(k("-n", ns, "get", "endpoints", "web").stdout, "10.42.9.12"))
    assert ep.splitlines()[1].split()[1] == "10.42.9.11:8080,10.42.9.12:8080"
    slices = k("-n", ns, "get", "endpointslices", "-l", "kubernetes.io/service-name=web").stdout
    row = slices.splitlines()[1].split()
    assert row[0].startswith("web-") and row[1:3] == ["IPv4", "8080"]
    assert sorted(row[3].split(",")) == ["10.42.9.11", "10.42.9.12"]
    described = k("-n", ns, "describe", "svc", "web").stdout
    lines = {ln.split(":", 1)[0]: ln.split(":", 1)[1].strip() for ln in described.splitlines()
             if ":" in ln}  # fmt: skip
    assert lines["Selector"] == "app=web" and lines["Type"] == "ClusterIP"
    assert lines["TargetPort"] == "8080/TCP"
    # In the slice's order, which follows the pods' events (as upstream's).
    assert sorted(lines["Endpoints"].split(",")) == ["10.42.9.11:8080", "10.42.9.12:8080"]
    assert lines["Session Affinity"] == "None"


def _with(text: str, needle: str) -> str | None:
    return text if needle in text else None


def test_create_service_kinds_and_their_columns(
    cluster_kubectl: Kubectl, cluster_namespace: str
) -> None:
    k, ns = cluster_kubectl, cluster_namespace
    assert k("-n", ns, "create", "service", "clusterip", "cs", "--tcp=5678:8080").stdout == (
        "service/cs created\n"
    )
    k("-n", ns, "create", "service", "nodeport", "np", "--tcp=5678:8080", "--node-port=30777")
    k("-n", ns, "create", "service", "loadbalancer", "lb", "--tcp=5678:8080")
    k("-n", ns, "create", "service", "externalname", "en", "--external-name", "bar.example.com")
    k("-n", ns, "create", "service", "clusterip", "hl", "--clusterip=None")
    rows = {ln.split()[0]: ln.split() for ln in k("-n", ns, "get", "svc").stdout.splitlines()[1:]}
    assert rows["cs"][1] == "ClusterIP" and rows["cs"][4] == "5678/TCP"
    assert rows["np"][1] == "NodePort" and rows["np"][4] == "5678:30777/TCP"
    assert rows["lb"][1] == "LoadBalancer" and rows["lb"][3] == "<pending>"
    assert rows["lb"][4].startswith("5678:") and rows["lb"][4].endswith("/TCP")
    assert rows["en"][1:5] == ["ExternalName", "<none>", "bar.example.com", "<none>"]
    assert rows["hl"][2] == "None"
    # A Service selecting nothing: an empty placeholder slice and Endpoints without subsets.
    slice_of_cs = ["-n", ns, "get", "endpointslices", "-l", "kubernetes.io/service-name=cs"]
    placeholder = wait(lambda: k(*slice_of_cs, "--no-headers").stdout.strip())
    assert placeholder.split()[1:4] == ["IPv4", "<unset>", "<unset>"]
    ep = wait(lambda: k("-n", ns, "get", "endpoints", "cs", "--no-headers", check=False).stdout)
    assert ep.split()[1] == "<none>"


def test_bad_service_input_is_answered_as_upstream(
    cluster_kubectl: Kubectl, cluster_namespace: str
) -> None:
    k, ns = cluster_kubectl, cluster_namespace
    out = k("-n", ns, "create", "service", "nodeport", "low", "--tcp=80:80", "--node-port=80",
            check=False)  # fmt: skip
    assert out.returncode == 1
    assert out.stderr == (
        'error: failed to create NodePort service: Service "low" is invalid: '
        "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. "
        "The range of valid ports is 30000-32767\n"
    )
    k("-n", ns, "create", "service", "nodeport", "first", "--tcp=80:80", "--node-port=30778")
    out = k("-n", ns, "create", "service", "nodeport", "second", "--tcp=80:80",
            "--node-port=30778", check=False)  # fmt: skip
    assert out.stderr == (
        'error: failed to create NodePort service: Service "second" is invalid: '
        "spec.ports[0].nodePort: Invalid value: 30778: provided port is already allocated\n"
    )
    # ClusterIP -> NodePort -> ClusterIP with kubectl patch: ports come and go.
    k("-n", ns, "create", "service", "clusterip", "flip", "--tcp=80:8080")
    k("-n", ns, "patch", "svc", "flip", "-p", '{"spec":{"type":"NodePort"}}')
    spec = json.loads(k("-n", ns, "get", "svc", "flip", "-o", "json").stdout)["spec"]
    assert spec["type"] == "NodePort" and 30000 <= spec["ports"][0]["nodePort"] <= 32767
    k("-n", ns, "patch", "svc", "flip", "-p", '{"spec":{"type":"ClusterIP"}}')
    spec = json.loads(k("-n", ns, "get", "svc", "flip", "-o", "json").stdout)["spec"]
    assert spec["type"] == "ClusterIP" and "nodePort" not in spec["ports"][0]
    out = k("-n", ns, "patch", "svc", "flip", "--type=json", "-p",
            '[{"op":"add","path":"/spec/ports/0/nodePort","value":30779}]', check=False)  # fmt: skip
    assert out.returncode == 1 and (
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        in out.stderr
    )
