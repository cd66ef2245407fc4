"""The real kubectl against a real server: the verbs a newcomer uses first."""

from __future__ import annotations

import json
import os
import select
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.kubectl

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: frontend}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox:1.36
        command: [httpd, -f, -p, "8080"]
        ports:
        - containerPort: 8080
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  labels: {{color: {color}}}
data:
  greeting: hello
"""


def test_version_reports_server_minor_32(kubectl) -> None:
    out = json.loads(kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["major"] == "1"
    assert out["serverVersion"]["minor"] == "32"
    assert out["clientVersion"]["minor"].startswith("32")  # the bundled kubectl says "32+"


def test_api_resources_lists_kinds_with_short_names(kubectl) -> None:
    out = kubectl("api-resources", "--no-headers").stdout
    rows: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.strip():  # the first of a name wins: pods, then metrics.k8s.io's pods
            rows.setdefault(line.split()[0], line.split())
    assert "po" in rows["pods"]
    assert "deploy" in rows["deployments"]
    assert "apps/v1" in rows["deployments"]
    assert "coordination.k8s.io/v1" in rows["leases"]
    cluster = kubectl("api-resources", "--namespaced=false", "-o", "name").stdout.split()
    assert "nodes" in cluster and "namespaces" in cluster and "pods" not in cluster


def test_get_namespaces_lists_the_system_namespaces(kubectl) -> None:
    out = kubectl("get", "namespaces").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "AGE"]
    names = {line.split()[0] for line in lines[1:]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


def test_create_from_file_then_get_yaml(kubectl, namespace: str, tmp_path: Path) -> None:
    f = tmp_path / "cm.yaml"
    f.write_text(CONFIGMAP.format(name="greeting", color="blue"))
    out = kubectl("-n", namespace, "create", "-f", str(f)).stdout
    assert out.strip() == "configmap/greeting created"
    got = kubectl("-n", namespace, "get", "configmap", "greeting", "-o", "yaml").stdout
    assert "greeting: hello" in got
    assert "resourceVersion:" in got and "uid:" in got and "creationTimestamp:" in got
    again = kubectl("-n", namespace, "create", "-f", str(f), check=False)
    assert again.returncode != 0
    assert "Error from server (AlreadyExists)" in again.stderr
    assert 'configmaps "greeting" already exists' in again.stderr


def test_apply_creates_then_get_shows_upstream_columns(
    kubectl, namespace: str, tmp_path: Path
) -> None:
    f = tmp_path / "deploy.yaml"
    f.write_text(DEPLOYMENT)
    out = kubectl("-n", namespace, "apply", "-f", str(f)).stdout
    assert out.strip() == "deployment.apps/web created"
    table = kubectl("-n", namespace, "get", "deployments").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["web", "0/3", "0", "0"]
    wide = kubectl("-n", namespace, "get", "deploy", "web", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ]
    assert wide[1].split()[5:] == ["web", "busybox:1.36", "app=web"]
    obj = kubectl.json("-n", namespace, "get", "deployment", "web")
    # Upstream defaults that users read back.
    spec = obj["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    container = spec["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["ports"][0]["protocol"] == "TCP"
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always"
    assert pod_spec["dnsPolicy"] == "ClusterFirst"
    assert pod_spec["schedulerName"] == "default-scheduler"
    assert pod_spec["terminationGracePeriodSeconds"] == 30
    assert obj["metadata"]["generation"] == 1
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]


def test_get_jsonpath_labels_fields_and_all_namespaces(
    kubectl, namespace: str, tmp_path: Path
) -> None:
    for name, color in (("a", "red"), ("b", "blue"), ("c", "red")):
        f = tmp_path / f"{name}.yaml"
        f.write_text(CONFIGMAP.format(name=name, color=color))
        kubectl("-n", namespace, "create", "-f", str(f))
    names = kubectl(
        "-n", namespace, "get", "cm", "-l", "color=red", "-o", "jsonpath={.items[*].metadata.name}"
    ).stdout
    assert names.split() == ["a", "c"]
    names = kubectl("-n", namespace, "get", "cm", "-l", "color!=red,color", "-o", "name").stdout
    assert names.split() == ["configmap/b"]
    one = kubectl(
        "-n", namespace, "get", "cm", "--field-selector", "metadata.name=b", "-o", "name"
    ).stdout
    assert one.split() == ["configmap/b"]
    everywhere = kubectl("get", "cm", "-A", "-l", "color=red").stdout.splitlines()
    assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert {(line.split()[0], line.split()[1]) for line in everywhere[1:]} == {
        (namespace, "a"),
        (namespace, "c"),
    }
    bad = kubectl(
        "-n", namespace, "get", "cm", "--field-selector", "data.greeting=hello", check=False
    )
    assert bad.returncode != 0 and "BadRequest" in bad.stderr


def test_get_watch_prints_changes(kubectl, namespace: str, tmp_path: Path) -> None:
    watcher = kubectl.popen("-n", namespace, "get", "configmaps", "-w", "--request-timeout=30s")
    try:
        time.sleep(1.0)  # let the watch start before the change
        f = tmp_path / "w.yaml"
        f.write_text(CONFIGMAP.format(name="watched", color="green"))
        kubectl("-n", namespace, "create", "-f", str(f))
        assert watcher.stdout is not None
        fd = watcher.stdout.fileno()
        seen = b""
        deadline = time.monotonic() + 20
        while b"watched" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                seen += os.read(fd, 65536)
        assert b"watched" in seen, seen
    finally:
        watcher.kill()
        watcher.wait()


def test_describe_shows_object(kubectl, namespace: str, tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text(DEPLOYMENT)
    kubectl("-n", namespace, "apply", "-f", str(f))
    out = kubectl("-n", namespace, "describe", "deployment", "web").stdout
    assert "Name:" in out and "web" in out
    assert "Replicas:" in out and "3 desired" in out
    assert "StrategyType:" in out and "RollingUpdate" in out
    assert "RollingUpdateStrategy:  25% max unavailable, 25% max surge" in out


def test_explain_reads_openapi(kubectl) -> None:
    out = kubectl("explain", "deployment.spec.replicas").stdout
    assert "KIND:       Deployment" in out
    assert "FIELD: replicas <integer>" in out
    out = kubectl("explain", "pods.spec.containers").stdout
    assert "FIELD: containers <[]Container>" in out
    assert "image\t<string>" in out


def test_delete_removes_object(kubectl, namespace: str, tmp_path: Path) -> None:
    f = tmp_path / "gone.yaml"
    f.write_text(CONFIGMAP.format(name="gone", color="grey"))
    kubectl("-n", namespace, "create", "-f", str(f))
    out = kubectl("-n", namespace, "delete", "configmap", "gone").stdout
    assert out.strip() == 'configmap "gone" deleted'
    missing = kubectl("-n", namespace, "get", "configmap", "gone", check=False)
    assert missing.returncode == 1
    assert 'Error from server (NotFound): configmaps "gone" not found' in missing.stderr


def test_create_with_unknown_field_is_refused_strictly(
    kubectl, namespace: str, tmp_path: Path
) -> None:
    f = tmp_path / "typo.yaml"
    f.write_text(DEPLOYMENT.replace("replicas: 3", "replica: 3"))
    out = kubectl("-n", namespace, "create", "-f", str(f), check=False)
    assert out.returncode == 1
    assert 'strict decoding error: unknown field "spec.replica"' in out.stderr
    assert "BadRequest" in out.stderr
